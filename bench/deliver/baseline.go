package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

// baseline delivers the backlog without Kafka: a plain Go http.Client with
// one goroutine per partition holding the backlog, each POSTing its partition's records in
// offset order, one request in flight at a time — the concurrency kbridge
// uses with ordering "partition" (max_in_flight 1). It sends the bodies of
// the backlog and only the headers the webhook tallies by; kbridge's
// CloudEvents and Kafka headers are part of what kbridge adds.
type baseline struct {
	partitions, records, keys int
	url                       string
	values                    *benchkit.ValuePool
	client                    *http.Client
}

func newBaseline(o options, url string, values *benchkit.ValuePool) *baseline {
	// An idle connection kept for each goroutine, as kbridge's webhook
	// client keeps one for each request it may have in flight.
	return &baseline{partitions: o.loaded(), records: o.records, keys: o.keys, url: url, values: values,
		client: benchkit.KeepAliveClient(o.loaded())}
}

func (b *baseline) close() { b.client.CloseIdleConnections() }

// measure delivers every record once and times it from the first request
// until the webhook has acknowledged every record. A request that fails
// is not retried: it is counted, and the round fails.
func (b *baseline) measure(ctx context.Context, o options, hook *webhook) sample {
	t := newTally(b.partitions, b.records, b.keys)
	hook.measure(t)
	cpu0, err := benchkit.CPUTimes(0)
	if err != nil {
		return sample{failed: err}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for p := range b.partitions {
		g.Go(func() error { return b.deliverPartition(gctx, t, p) })
	}
	err = g.Wait()
	var s sample
	switch {
	case err != nil:
		s.failed = err
	case !t.complete():
		s.failed = fmt.Errorf("%d of %d records acknowledged", t.snapshot().distinct, b.records)
	default:
		cpu1, err := benchkit.CPUTimes(0)
		if err != nil {
			return sample{failed: err}
		}
		s.selfCPU, s.hostBusy = cpu1.Self-cpu0.Self, cpu1.HostBusySince(cpu0)
	}
	s.tallied(t, start)
	return s
}

// deliverPartition POSTs partition p's records in offset order. It returns
// an error only when ctx ended.
func (b *baseline) deliverPartition(ctx context.Context, t *tally, p int) error {
	for i := p; i < b.records; i += b.partitions {
		if err := b.post(ctx, p, int64(i/b.partitions), b.values.Value(uint64(i))); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.fail(err)
		}
	}
	return nil
}

func (b *baseline) post(ctx context.Context, partition int, offset int64, body []byte) error {
	return benchkit.Post(ctx, b.client, b.url, body, http.Header{
		"Content-Type":    {"application/octet-stream"},
		"Kafka-Partition": {strconv.Itoa(partition)},
		"Kafka-Offset":    {strconv.FormatInt(offset, 10)},
	})
}
