package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

// drainTimeout bounds how long a load may take, after its end, to finish
// what it started; a load that outlasts it has hung and fails the run.
const drainTimeout = 30 * time.Second

// loadFunc starts work until end, then waits for everything it started, and
// records each finished call or record in rec.
type loadFunc func(ctx context.Context, end time.Time, rec *recorder) error

// recorder collects what a load finished. Loads call it from many
// goroutines (and from franz-go's promise goroutines), hence the mutex.
type recorder struct {
	mu       sync.Mutex
	records  int64
	lat      []time.Duration
	errs     int64
	firstErr error
}

// ok records n records acknowledged after waiting d.
func (r *recorder) ok(n int, d time.Duration) {
	r.mu.Lock()
	r.records += int64(n)
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

// fail records n records (or one call) that failed with err.
func (r *recorder) fail(n int, err error) {
	r.mu.Lock()
	r.errs += int64(n)
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

// closedLoop runs workers goroutines that each call op back to back until
// end, recording recordsPerCall records and the latency of each successful
// call. Failed calls are recorded and the loop goes on. op's seq numbers the
// calls of the loop, each once.
func closedLoop(ctx context.Context, end time.Time, workers, recordsPerCall int, rec *recorder, op func(ctx context.Context, seq uint64) error) error {
	g, ctx := errgroup.WithContext(ctx)
	var seq atomic.Uint64
	for range workers {
		g.Go(func() error {
			for time.Now().Before(end) {
				if err := timedCall(ctx, seq.Add(1), recordsPerCall, rec, op); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// timedCall makes one call; it returns an error only when ctx ended.
func timedCall(ctx context.Context, seq uint64, records int, rec *recorder, op func(context.Context, uint64) error) error {
	callCtx, cancel := context.WithTimeout(ctx, benchkit.CallTimeout)
	defer cancel()
	start := time.Now()
	err := op(callCtx, seq)
	switch {
	case err == nil:
		rec.ok(records, time.Since(start))
	case ctx.Err() != nil:
		return ctx.Err() // the run was cancelled: not a failure of the call
	default:
		rec.fail(records, err)
	}
	return nil
}

// scenario is one row of the table.
type scenario struct {
	name     string
	slug     string // names the topic, and the row others compare with
	baseline string // slug of the row this one is compared with; "" for none
	kbridge  bool   // served by kbridge: its CPU and RSS are measured
	load     loadFunc
}

// sample is one measurement of one scenario.
type sample struct {
	failed        error // the load itself failed (a stream broke, a drain hung): nothing else is set
	records, errs int64
	firstErr      error
	elapsed       time.Duration
	p50, p99      time.Duration
	kbridgeCPU    time.Duration // CPU time of the kbridge process
	selfCPU       time.Duration // CPU time of this process (the clients)
	peakRSSKiB    int64         // kbridge's largest sampled VmRSS
	hostBusy      float64       // share of the machine's CPU time that was busy
}

func (s sample) rate() float64 { return float64(s.records) / s.elapsed.Seconds() }

// measure warms the scenario up, then measures it for o.duration. The
// elapsed time runs until everything started in the window finished, so
// records/s never counts work left in flight. A load that fails comes back
// as a failed sample, so that the other rows still get measured; measure
// itself fails only when ctx ends or /proc cannot be read.
func measure(ctx context.Context, o options, sc scenario, kbridgePID int) (sample, error) {
	if o.warmup > 0 {
		warm := &recorder{}
		if err := sc.load(ctx, time.Now().Add(o.warmup), warm); err != nil {
			return failedSample(ctx, fmt.Errorf("warm-up: %w", err))
		}
		if warm.records == 0 {
			return failedSample(ctx, fmt.Errorf("warm-up: no record published: %w", warm.firstErr))
		}
	}
	cpu0, err := benchkit.CPUTimes(kbridgePID)
	if err != nil {
		return sample{}, err
	}
	var stopRSS func() int64
	if sc.kbridge {
		stopRSS = benchkit.WatchRSS(kbridgePID, 50*time.Millisecond)
	}
	rec := &recorder{}
	start := time.Now()
	err = sc.load(ctx, start.Add(o.duration), rec)
	elapsed := time.Since(start)
	var peak int64
	if stopRSS != nil {
		peak = stopRSS()
	}
	if err != nil {
		return failedSample(ctx, err)
	}
	cpu1, err := benchkit.CPUTimes(kbridgePID)
	if err != nil {
		return sample{}, err
	}
	slices.Sort(rec.lat)
	return sample{
		records: rec.records, errs: rec.errs, firstErr: rec.firstErr, elapsed: elapsed,
		p50: benchkit.Percentile(rec.lat, 0.50), p99: benchkit.Percentile(rec.lat, 0.99),
		kbridgeCPU: cpu1.Kbridge - cpu0.Kbridge, selfCPU: cpu1.Self - cpu0.Self,
		peakRSSKiB: peak,
		hostBusy:   cpu1.HostBusySince(cpu0),
	}, nil
}

// failedSample records a failed load, unless the run itself was cancelled.
func failedSample(ctx context.Context, err error) (sample, error) {
	if ctx.Err() != nil {
		return sample{}, ctx.Err()
	}
	return sample{failed: err}, nil
}
