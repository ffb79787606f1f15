package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// run starts kbridge, builds the clients and topics, measures every
// scenario o.rounds times, tears everything down in reverse order, and
// returns the report. kbridge is stopped last, after its clients closed,
// and anything but a clean exit 0 fails the run.
func run(ctx context.Context, o options, progress io.Writer) (rep *report, err error) {
	kb, err := benchkit.StartKbridge(ctx, o.Kbridge([]string{
		"--compression", o.Compression, "--linger", o.linger.String(),
		"--stream-max-in-flight", strconv.Itoa(o.streamInFlight()),
	}, nil))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "kbridge pid %d ready in %s (grpc %s, http %s, admin %s)\n",
		kb.PID(), kb.ReadyAfter.Round(time.Millisecond), kb.GRPCAddr, kb.HTTPAddr, kb.AdminAddr)
	defer func() { err = finish(kb, rep, err, progress) }()

	r, err := newRig(o, kb)
	if err != nil {
		return nil, err
	}
	defer r.close()
	scs, err := selectScenarios(r.scenarios(), o.only)
	if err != nil {
		return nil, err
	}
	topics := make([]string, len(scs))
	for i, sc := range scs {
		topics[i] = r.topic(sc.slug)
	}
	if err := benchkit.CreateTopics(ctx, r.adm, o.Partitions, topics); err != nil {
		return nil, err
	}
	if !o.KeepTopics {
		defer func() {
			err = errors.Join(err, benchkit.Cleanup(func(ctx context.Context) error { return benchkit.DeleteTopics(ctx, r.adm, topics) }))
		}()
	}

	samples, err := measureRounds(ctx, o, scs, kb.PID(), progress)
	if err != nil {
		return nil, err
	}
	hwm, err := kb.PeakRSSKiB()
	if err != nil {
		return nil, err
	}
	return newReport(o, kb.ReadyAfter, hwm, scs, samples), nil
}

// finish stops kbridge, keeping its log if anything failed, and records in
// rep whether kbridge exited cleanly. It returns err joined with the stop's.
func finish(kb *benchkit.Kbridge, rep *report, err error, progress io.Writer) error {
	failed := err != nil
	if rep != nil {
		errs, rounds := rep.failures()
		failed = failed || errs > 0 || rounds > 0
	}
	stopErr := kb.StopReporting(failed, progress)
	if rep != nil {
		rep.cleanExit = stopErr == nil
	}
	return errors.Join(err, stopErr)
}

// measureRounds measures each scenario once per round. Rounds interleave
// the scenarios, so that drift on the machine touches every row alike.
func measureRounds(ctx context.Context, o options, scs []scenario, kbridgePID int, progress io.Writer) ([][]sample, error) {
	samples := make([][]sample, len(scs))
	for round := range o.Rounds {
		for i, sc := range scs {
			s, err := measure(ctx, o, sc, kbridgePID)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, sc.name, err)
			}
			samples[i] = append(samples[i], s)
			if s.failed != nil {
				fmt.Fprintf(progress, "round %d/%d  %-52s FAILED: %v\n", round+1, o.Rounds, sc.name, s.failed)
				continue
			}
			fmt.Fprintf(progress, "round %d/%d  %-52s %9.0f records/s  p50 %-9s p99 %-9s errors %d\n",
				round+1, o.Rounds, sc.name, s.rate(), benchkit.FmtDur(s.p50), benchkit.FmtDur(s.p99), s.errs)
		}
	}
	return samples, nil
}

// rig holds the clients of every scenario; close releases them in reverse
// order of creation.
type rig struct {
	o       options
	values  *benchkit.ValuePool
	prefix  string
	kb      *benchkit.Kbridge
	adm     *kadm.Client
	syncCl  *kgo.Client
	asyncCl *kgo.Client
	grpc    kbridgev1.ProducerServiceClient
	http    *http.Client
	closers []func()
}

func newRig(o options, kb *benchkit.Kbridge) (*rig, error) {
	r := &rig{o: o, values: benchkit.NewValuePool(o.ValueSize), prefix: "kbench-" + time.Now().Format("20060102-150405") + "-", kb: kb}
	var err error
	if r.syncCl, err = r.kafkaClient(50_000); err != nil { // kbridge's default buffer
		return nil, err
	}
	if r.asyncCl, err = r.kafkaClient(o.inFlight); err != nil {
		r.close()
		return nil, err
	}
	r.adm = kadm.NewClient(r.syncCl)
	conn, err := grpc.NewClient(kb.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		r.close()
		return nil, fmt.Errorf("grpc client: %w", err)
	}
	r.closers = append(r.closers, func() { _ = conn.Close() })
	r.grpc = kbridgev1.NewProducerServiceClient(conn)
	r.http = benchkit.KeepAliveClient(64)
	r.closers = append(r.closers, r.http.CloseIdleConnections)
	return r, nil
}

func (r *rig) kafkaClient(maxBuffered int) (*kgo.Client, error) {
	cl, err := benchkit.NewProducerClient(r.o.Producer(r.o.linger, maxBuffered))
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, cl.Close)
	return cl, nil
}

func (r *rig) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

func (r *rig) topic(slug string) string { return r.prefix + slug }

// scenarioSlugs name the scenarios of the table, in order.
var scenarioSlugs = []string{"sync", "unary", "async", "stream1", "stream10", "rest"}

// scenarios are the table's rows, in order (scenarioSlugs). Each compares with the row
// named by baseline.
func (r *rig) scenarios() []scenario {
	o, v := r.o, r.values
	inFlight := o.streamInFlight()
	return []scenario{
		{name: fmt.Sprintf("A: franz-go ProduceSync, %d goroutines", o.concurrency), slug: "sync",
			load: syncProduce(r.syncCl, r.topic("sync"), o.concurrency, v)},
		{name: fmt.Sprintf("kbridge gRPC Publish, %d callers, 1 rec/call", o.concurrency), slug: "unary", baseline: "sync", kbridge: true,
			load: unaryPublish(r.grpc, r.topic("unary"), o.concurrency, v)},
		{name: fmt.Sprintf("B: franz-go Produce async, %d in flight", o.inFlight), slug: "async",
			load: asyncProduce(r.asyncCl, r.topic("async"), v)},
		{name: fmt.Sprintf("kbridge PublishStream, %d streams, 1 rec/req", o.streams), slug: "stream1", baseline: "async", kbridge: true,
			load: streamPublish(r.grpc, r.topic("stream1"), o.streams, 1, inFlight, v)},
		{name: fmt.Sprintf("kbridge PublishStream, %d streams, 10 rec/req", o.streams), slug: "stream10", baseline: "async", kbridge: true,
			load: streamPublish(r.grpc, r.topic("stream10"), o.streams, 10, inFlight, v)},
		{name: fmt.Sprintf("kbridge REST raw POST, %d callers", o.concurrency), slug: "rest", baseline: "unary", kbridge: true,
			load: restPublish(r.http, "http://"+r.kb.HTTPAddr+"/v1/topics/"+r.topic("rest"), o.concurrency, v)},
	}
}

// selectScenarios keeps the scenarios named in only, in table order; all of
// them if only is empty.
func selectScenarios(all []scenario, only []string) ([]scenario, error) {
	if len(only) == 0 {
		return all, nil
	}
	var out []scenario
	for _, sc := range all {
		if slices.Contains(only, sc.slug) {
			out = append(out, sc)
		}
	}
	if len(out) != len(only) {
		return nil, fmt.Errorf("scenarios: %q: each must be one of %s, once", only, strings.Join(scenarioSlugs, ","))
	}
	return out, nil
}
