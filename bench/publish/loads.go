package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// Every load publishes keyless records whose values it takes in turn from
// the pool: the work measured is the publish path, not building records.

// syncProduce is baseline A: franz-go's ProduceSync from workers goroutines.
func syncProduce(cl *kgo.Client, topic string, workers int, values *benchkit.ValuePool) loadFunc {
	return func(ctx context.Context, end time.Time, rec *recorder) error {
		return closedLoop(ctx, end, workers, 1, rec, func(ctx context.Context, seq uint64) error {
			return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: values.Value(seq)}).FirstErr()
		})
	}
}

// asyncProduce is baseline B: one goroutine calling franz-go's Produce as
// fast as it returns. The client's MaxBufferedRecords bounds the records in
// flight: Produce blocks while that many wait for Kafka.
func asyncProduce(cl *kgo.Client, topic string, values *benchkit.ValuePool) loadFunc {
	return func(ctx context.Context, end time.Time, rec *recorder) error {
		ctx, cancel := context.WithDeadline(ctx, end.Add(drainTimeout))
		defer cancel()
		for seq := uint64(0); time.Now().Before(end) && ctx.Err() == nil; seq++ {
			start := time.Now()
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: values.Value(seq)}, func(_ *kgo.Record, err error) {
				if err != nil {
					rec.fail(1, err)
					return
				}
				rec.ok(1, time.Since(start))
			})
		}
		// Flush returns after the last promise ran.
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return nil
	}
}

// unaryPublish calls kbridge's Publish with one record per call from
// workers goroutines sharing one connection.
func unaryPublish(client kbridgev1.ProducerServiceClient, topic string, workers int, values *benchkit.ValuePool) loadFunc {
	return func(ctx context.Context, end time.Time, rec *recorder) error {
		return closedLoop(ctx, end, workers, 1, rec, func(ctx context.Context, seq uint64) error {
			req := &kbridgev1.PublishRequest{Topic: topic, Records: values.Batch(seq, 1)}
			resp, err := client.Publish(ctx, req)
			if err != nil {
				return err
			}
			return firstResultError(resp.GetResults())
		})
	}
}

// restPublish POSTs the value as the raw body to /v1/topics/{topic} from
// workers goroutines sharing one keep-alive client.
func restPublish(client *http.Client, url string, workers int, values *benchkit.ValuePool) loadFunc {
	return func(ctx context.Context, end time.Time, rec *recorder) error {
		return closedLoop(ctx, end, workers, 1, rec, func(ctx context.Context, seq uint64) error {
			return benchkit.Post(ctx, client, url, values.Value(seq), jsonBody)
		})
	}
}

// jsonBody is the header of the REST publishes.
var jsonBody = http.Header{"Content-Type": {"application/json"}}

// streamPublish runs streams PublishStreams on one connection, each sending
// requests of batch records and keeping at most maxInFlight records
// outstanding (kbridge's own per-stream budget, so kbridge never has to
// hold the client back).
func streamPublish(client kbridgev1.ProducerServiceClient, topic string, streams, batch, maxInFlight int, values *benchkit.ValuePool) loadFunc {
	maxRequests := max(maxInFlight/batch, 1)
	return func(ctx context.Context, end time.Time, rec *recorder) error {
		g, ctx := errgroup.WithContext(ctx)
		for i := range streams {
			// Each stream starts elsewhere in the pool.
			next := func(seq uint64) *kbridgev1.PublishStreamRequest {
				return &kbridgev1.PublishStreamRequest{Topic: topic, Records: values.Batch(seq+uint64(i)*benchkit.PoolSize/uint64(streams), batch)}
			}
			g.Go(func() error { return runStream(ctx, client, next, batch, maxRequests, end, rec) })
		}
		return g.Wait()
	}
}

// runStream sends req until end, then half-closes and reads the responses
// to the last one. The sender and the receiver share sent, which holds the
// send time of each request in flight and, being full, stops the sender.
func runStream(ctx context.Context, client kbridgev1.ProducerServiceClient, next func(seq uint64) *kbridgev1.PublishStreamRequest, batch, maxRequests int, end time.Time, rec *recorder) error {
	ctx, cancel := context.WithDeadline(ctx, end.Add(drainTimeout))
	defer cancel()
	// The group's context is the stream's, so that a failing side tears
	// the stream down and unblocks the other.
	g, ctx := errgroup.WithContext(ctx)
	stream, err := client.PublishStream(ctx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	sent := make(chan time.Time, maxRequests) // the in-flight bound, see above
	g.Go(func() error {
		for seq := uint64(0); time.Now().Before(end); seq++ {
			select {
			case sent <- time.Now():
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := stream.Send(next(seq)); err != nil {
				return fmt.Errorf("stream send: %w", err)
			}
		}
		return stream.CloseSend()
	})
	g.Go(func() error {
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("stream receive: %w", err)
			}
			recordStreamResponse(rec, resp, batch, <-sent)
		}
	})
	return g.Wait()
}

func recordStreamResponse(rec *recorder, resp *kbridgev1.PublishStreamResponse, records int, sent time.Time) {
	if e := resp.GetError(); e != nil {
		rec.fail(records, fmt.Errorf("%s: %s", e.GetCode(), e.GetMessage()))
		return
	}
	failed := 0
	for _, r := range resp.GetResults() {
		if e := r.GetError(); e != nil {
			failed++
			rec.fail(1, fmt.Errorf("%s: %s", e.GetCode(), e.GetMessage()))
		}
	}
	if ok := records - failed; ok > 0 {
		rec.ok(ok, time.Since(sent))
	}
}

func firstResultError(results []*kbridgev1.PublishResult) error {
	for _, r := range results {
		if e := r.GetError(); e != nil {
			return fmt.Errorf("%s: %s", e.GetCode(), e.GetMessage())
		}
	}
	return nil
}
