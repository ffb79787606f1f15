package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// resources is one sample of an instance's memory and goroutines.
type resources struct {
	at         time.Duration // since the run began
	rssKiB     int64
	goroutines int
}

// Soak margins: generous, because RSS moves with the garbage collector's
// pacing and goroutines with connections in flight; a leak grows without
// bound over ten minutes and still shows.
const (
	soakRSSGrowth       = 1.5      // end may be 1.5× the start…
	soakRSSSlackKiB     = 16 << 10 // …plus 16 MiB
	soakGoroutineGrowth = 20       // end may be start + 20 + start/5
)

// soak runs one instance under steady load without disturbances, samples
// its RSS and goroutines after a warm-up and at the end, and checks they
// stayed flat, as well as everything the chaos run checks.
func (r *run) soak() {
	stopChecker := r.startChecker()
	defer stopChecker()
	pub := newPublisher(r.topic, r.fleet, r.s, r.began, r.t.Logf)
	published := make(chan struct{})
	go func() {
		defer close(published)
		pub.run(r.work, 0, r.s.rate)
	}()
	defer pub.halt()
	work, cancel := context.WithTimeout(r.work, r.s.soak)
	defer cancel()

	inst := r.fleet.all[0] // the only one: nothing disturbs a soak
	warm := min(time.Minute, r.s.soak/6)
	last := r.s.soak - 2*time.Second
	var samples []resources
	for _, at := range sampleTimes(warm, last, 6) {
		timer := time.NewTimer(time.Until(r.began.Add(at)))
		select {
		case <-work.Done():
		case <-timer.C:
		}
		if work.Err() != nil {
			break
		}
		rss, err1 := inst.rssKiB()
		g, err2 := inst.goroutines(work)
		if err1 != nil || err2 != nil {
			r.t.Fatalf("sample %s: %v %v", inst.name, err1, err2)
		}
		samples = append(samples, resources{at: time.Since(r.began), rssKiB: rss, goroutines: g})
		r.t.Logf("%6.1fs %s: RSS %d KiB, %d goroutines", time.Since(r.began).Seconds(), inst.name, rss, g)
	}
	pub.halt() // calls in flight finish
	<-published
	if r.failed() {
		return
	}
	end := r.drain()
	shutdownErrs := r.fleet.stopAll(shutdownTimeout + time.Second)
	stopChecker()
	r.checker.sample(context.Background())
	committed, err := r.kafka.committed(context.Background(), r.group, r.topic)
	if err != nil {
		r.t.Fatalf("committed offsets after the stop: %v", err)
	}
	sum := r.verify(pub, end, committed)
	for _, err := range shutdownErrs {
		if err != nil {
			sum.tally.shutdownFailures = append(sum.tally.shutdownFailures, "final stop: "+err.Error())
		}
	}
	r.report("%s%s", sum.format(), formatResources(samples))
	sum.assert(r.t)
	r.assertFlat(samples)
}

// sampleTimes is n times from first to last, evenly spaced.
func sampleTimes(first, last time.Duration, n int) []time.Duration {
	out := []time.Duration{first}
	for i := 1; i < n; i++ {
		out = append(out, first+(last-first)*time.Duration(i)/time.Duration(n-1))
	}
	return out
}

func (r *run) assertFlat(samples []resources) {
	if len(samples) < 2 {
		r.t.Fatalf("only %d resource samples: the soak ended early", len(samples))
	}
	start, end := samples[0], samples[len(samples)-1]
	if limit := int64(float64(start.rssKiB)*soakRSSGrowth) + soakRSSSlackKiB; end.rssKiB > limit {
		r.t.Errorf("RSS grew from %d KiB to %d KiB (limit %d KiB): a leak?", start.rssKiB, end.rssKiB, limit)
	}
	if limit := start.goroutines + soakGoroutineGrowth + start.goroutines/5; end.goroutines > limit {
		r.t.Errorf("goroutines grew from %d to %d (limit %d): a leak?", start.goroutines, end.goroutines, limit)
	}
}

func formatResources(samples []resources) string {
	var b strings.Builder
	b.WriteString("  resources (after warm-up … end):\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "    %7.1fs  RSS %7d KiB  goroutines %4d\n", s.at.Seconds(), s.rssKiB, s.goroutines)
	}
	if len(samples) > 1 {
		first, last := samples[0], samples[len(samples)-1]
		fmt.Fprintf(&b, "  RSS start %d KiB → end %d KiB (%+.1f%%); goroutines start %d → end %d\n",
			first.rssKiB, last.rssKiB, 100*float64(last.rssKiB-first.rssKiB)/float64(first.rssKiB), first.goroutines, last.goroutines)
	}
	return b.String()
}
