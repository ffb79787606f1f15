package bridge

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestRetryPolicyDefaults(t *testing.T) {
	p := DefaultRetryPolicy()
	want := RetryPolicy{
		InitialBackoff: 200 * time.Millisecond,
		Multiplier:     2,
		MaxBackoff:     30 * time.Second,
		Jitter:         1,
		AttemptTimeout: 30 * time.Second,
		MaxAttempts:    10,
	}
	if p != want {
		t.Errorf("DefaultRetryPolicy() = %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy RetryPolicy
		want   []string // substrings of the error, one per problem
	}{
		{
			name:   "zero value reports every problem",
			policy: RetryPolicy{MaxElapsed: -time.Second, Jitter: 1.5},
			want:   []string{"initial backoff", "backoff multiplier", "max backoff", "jitter", "attempt timeout", "max attempts", "max elapsed"},
		},
		{
			name:   "max below initial",
			policy: RetryPolicy{InitialBackoff: time.Second, Multiplier: 2, MaxBackoff: time.Millisecond, AttemptTimeout: time.Second, MaxAttempts: 1},
			want:   []string{"max backoff"},
		},
		{
			name:   "multiplier below 1 and not a number",
			policy: RetryPolicy{InitialBackoff: time.Second, Multiplier: math.NaN(), MaxBackoff: time.Second, AttemptTimeout: time.Second, MaxAttempts: 1},
			want:   []string{"backoff multiplier"},
		},
		{
			name:   "jitter not a number",
			policy: RetryPolicy{InitialBackoff: time.Second, Multiplier: 1, MaxBackoff: time.Second, Jitter: math.NaN(), AttemptTimeout: time.Second, MaxAttempts: 1},
			want:   []string{"jitter"},
		},
		{
			name:   "multiplier 1 (constant backoff) and a max elapsed are fine",
			policy: RetryPolicy{InitialBackoff: time.Second, Multiplier: 1, MaxBackoff: time.Second, AttemptTimeout: time.Second, MaxAttempts: 1, MaxElapsed: time.Hour},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("Validate() reported %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestBackoffBounds draws many samples per attempt from a seeded source:
// each lies in [0, min(max, initial·2^(n-1))], and they spread over that
// whole range (full jitter, not a fixed or half-jittered wait).
func TestBackoffBounds(t *testing.T) {
	p := DefaultRetryPolicy()
	rnd := rand.New(rand.NewPCG(1, 2))
	const samples = 4000
	for attempt := 1; attempt <= 12; attempt++ {
		ceiling := min(p.MaxBackoff, p.InitialBackoff<<(attempt-1))
		var sum, top time.Duration
		low := ceiling
		for range samples {
			d := p.Backoff(attempt, 0, rnd)
			if d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, want within [0, %v]", attempt, d, ceiling)
			}
			sum += d
			top, low = max(top, d), min(low, d)
		}
		mean := float64(sum) / samples / float64(ceiling)
		if mean < 0.45 || mean > 0.55 {
			t.Errorf("attempt %d: mean backoff is %.3f of the ceiling, want about 0.5", attempt, mean)
		}
		if float64(top) < 0.98*float64(ceiling) || float64(low) > 0.02*float64(ceiling) {
			t.Errorf("attempt %d: samples span [%v, %v], want nearly [0, %v]", attempt, low, top, ceiling)
		}
	}
}

// TestBackoffPartialJitter checks that Jitter bounds the random part: with
// 0.25 every wait lies in [0.75·c, c], and with 0 it is exactly c.
func TestBackoffPartialJitter(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	for _, jitter := range []float64{0, 0.25} {
		p := DefaultRetryPolicy()
		p.Jitter = jitter
		for attempt := 1; attempt <= 10; attempt++ {
			ceiling := p.ceiling(attempt)
			floor := time.Duration(float64(ceiling) * (1 - jitter))
			low, top := ceiling, time.Duration(0)
			for range 500 {
				d := p.Backoff(attempt, 0, rnd)
				if d < floor || d > ceiling {
					t.Fatalf("jitter %v: Backoff(%d) = %v, want within [%v, %v]", jitter, attempt, d, floor, ceiling)
				}
				low, top = min(low, d), max(top, d)
			}
			if jitter > 0 && top-low < (ceiling-floor)/2 {
				t.Errorf("jitter %v attempt %d: samples span only [%v, %v] of [%v, %v]", jitter, attempt, low, top, floor, ceiling)
			}
		}
	}
}

func TestBackoffCap(t *testing.T) {
	p := DefaultRetryPolicy()
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, attempt := range []int{9, 10, 64, 1000, math.MaxInt} {
		if c := p.ceiling(attempt); c != p.MaxBackoff {
			t.Errorf("ceiling(%d) = %v, want the max %v", attempt, c, p.MaxBackoff)
		}
		for range 1000 {
			if d := p.Backoff(attempt, 0, rnd); d < 0 || d > p.MaxBackoff {
				t.Fatalf("Backoff(%d) = %v, want within [0, %v]", attempt, d, p.MaxBackoff)
			}
		}
	}
	for _, attempt := range []int{math.MinInt, -1, 0, 1} {
		if c := p.ceiling(attempt); c != p.InitialBackoff {
			t.Errorf("ceiling(%d) = %v, want the initial %v", attempt, c, p.InitialBackoff)
		}
	}
	// nil uses the global source, within the same bounds.
	for range 1000 {
		if d := p.Backoff(3, 0, nil); d < 0 || d > 800*time.Millisecond {
			t.Fatalf("Backoff(3, nil rand) = %v, want within [0, 800ms]", d)
		}
	}
}

func TestBackoffCeilingMonotone(t *testing.T) {
	for _, mult := range []float64{1, 1.5, 2, 10} {
		p := DefaultRetryPolicy()
		p.Multiplier = mult
		prev := time.Duration(0)
		for attempt := 1; attempt <= 500; attempt++ {
			c := p.ceiling(attempt)
			if c < prev || c > p.MaxBackoff || c < p.InitialBackoff {
				t.Fatalf("multiplier %v: ceiling(%d) = %v after %v, want non-decreasing within [%v, %v]",
					mult, attempt, c, prev, p.InitialBackoff, p.MaxBackoff)
			}
			prev = c
		}
		want := p.MaxBackoff
		if mult == 1 {
			want = p.InitialBackoff
		}
		if prev != want {
			t.Errorf("multiplier %v: ceiling settles at %v, want %v", mult, prev, want)
		}
	}
}

func TestBackoffRetryAfter(t *testing.T) {
	p := DefaultRetryPolicy()
	rnd := rand.New(rand.NewPCG(5, 6))
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"used as is, instead of the jitter", 1, 5 * time.Second, 5 * time.Second},
		{"used even above the attempt's ceiling", 1, 20 * time.Second, 20 * time.Second},
		{"capped at the max backoff", 3, 10 * time.Minute, 30 * time.Second},
		{"huge, capped", 3, time.Duration(math.MaxInt64), 30 * time.Second},
		{"sub-second", 7, 1500 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Backoff(tt.attempt, tt.retryAfter, rnd); got != tt.want {
				t.Errorf("Backoff(%d, %v) = %v, want %v", tt.attempt, tt.retryAfter, got, tt.want)
			}
		})
	}
	t.Run("absent falls back to the jitter", func(t *testing.T) {
		for range 1000 {
			if d := p.Backoff(1, 0, rnd); d > p.InitialBackoff {
				t.Fatalf("Backoff(1, 0) = %v, want at most %v", d, p.InitialBackoff)
			}
		}
	})
}

func TestRetryPolicyExhausted(t *testing.T) {
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	withElapsed := DefaultRetryPolicy()
	withElapsed.MaxElapsed = time.Minute
	tests := []struct {
		name    string
		policy  RetryPolicy
		counted int
		now     time.Time
		want    bool
	}{
		{"no counted attempt yet (app not up)", withElapsed, 0, first.Add(time.Hour), false},
		{"one attempt", DefaultRetryPolicy(), 1, first, false},
		{"one short of max", DefaultRetryPolicy(), 9, first.Add(time.Hour), false},
		{"max attempts reached", DefaultRetryPolicy(), 10, first, true},
		{"past max attempts", DefaultRetryPolicy(), 11, first, true},
		{"no elapsed limit by default", DefaultRetryPolicy(), 2, first.Add(1000 * time.Hour), false},
		{"elapsed just under the limit", withElapsed, 2, first.Add(time.Minute - time.Nanosecond), false},
		{"elapsed at the limit", withElapsed, 2, first.Add(time.Minute), true},
		{"max attempts 1", RetryPolicy{MaxAttempts: 1}, 1, first, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Exhausted(tt.counted, first, tt.now); got != tt.want {
				t.Errorf("Exhausted(%d, first, first+%v) = %v, want %v", tt.counted, tt.now.Sub(first), got, tt.want)
			}
		})
	}
}
