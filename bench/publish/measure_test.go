package main

import (
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p100", ms(1, 2, 3), 1, 3 * time.Millisecond},
		{"p0", ms(1, 2, 3), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.xs); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
			}
		})
	}
}

func TestMakeValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 29, 30, 31, 1024} {
		if got := len(makeValue(rng, size)); got != size {
			t.Errorf("len(makeValue(%d)) = %d", size, got)
		}
	}
}

func TestBatchStaysInPool(t *testing.T) {
	p := newValuePool(32)
	for _, n := range []int{1, 10, poolSize} {
		for i := range uint64(3 * poolSize) {
			if got := len(p.batch(i, n)); got != n {
				t.Fatalf("len(batch(%d, %d)) = %d", i, n, got)
			}
		}
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := cpuTime("self"); err != nil {
		t.Fatal(err)
	}
	if kib, err := statusKiB(os.Getpid(), "VmRSS"); err != nil || kib <= 0 {
		t.Fatalf("VmRSS = %d, %v", kib, err)
	}
	if busy, total, err := hostTicks(); err != nil || total <= 0 || busy > total {
		t.Fatalf("hostTicks = %d, %d, %v", busy, total, err)
	}
}

func TestScenarioSlugs(t *testing.T) {
	r := &rig{o: options{concurrency: 1, inFlight: 1, streams: 1}, values: newValuePool(32), kb: &kbridgeProc{}}
	var got []string
	for _, sc := range r.scenarios() {
		got = append(got, sc.slug)
	}
	if !slices.Equal(got, scenarioSlugs) {
		t.Errorf("scenarios %q, scenarioSlugs %q", got, scenarioSlugs)
	}
}
