package benchkit

import (
	"errors"
	"math/rand/v2"
	"os"
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
			if got := Percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.q, got, tt.want)
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
			if got := Median(tt.xs); got != tt.want {
				t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
			}
		})
	}
}

func TestMakeValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 29, 30, 31, 1024} {
		if got := len(MakeValue(rng, size)); got != size {
			t.Errorf("len(MakeValue(%d)) = %d", size, got)
		}
	}
}

func TestBatchStaysInPool(t *testing.T) {
	p := NewValuePool(32)
	for _, n := range []int{1, 10, PoolSize} {
		for i := range uint64(3 * PoolSize) {
			if got := len(p.Batch(i, n)); got != n {
				t.Fatalf("len(Batch(%d, %d)) = %d", i, n, got)
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
	if kib, err := StatusKiB(os.Getpid(), "VmRSS"); err != nil || kib <= 0 {
		t.Fatalf("VmRSS = %d, %v", kib, err)
	}
	if busy, total, err := hostTicks(); err != nil || total <= 0 || busy > total {
		t.Fatalf("hostTicks = %d, %d, %v", busy, total, err)
	}
}

func TestAtLeastOne(t *testing.T) {
	errs := AtLeastOne(map[string]int{"b": 0, "a": -1, "c": 1})
	if got := errors.Join(errs...).Error(); got != "a: must be at least 1, got -1\nb: must be at least 1, got 0" {
		t.Errorf("AtLeastOne = %q", got)
	}
}

func TestKbridgeArgsKeepOrder(t *testing.T) {
	c := Common{KbridgeArgs: []string{"--x=1"}}
	own := make([]string, 1, 4)
	own[0] = "--a"
	got := c.Kbridge(own, nil).Args
	if len(got) != 2 || got[0] != "--a" || got[1] != "--x=1" {
		t.Errorf("Args = %q", got)
	}
	if more := append(own, "--b"); more[1] != "--b" || got[1] != "--x=1" {
		t.Errorf("appending to the caller's args changed the config: %q", got)
	}
}
