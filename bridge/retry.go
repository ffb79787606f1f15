package bridge

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Defaults of RetryPolicy, as DESIGN.md's webhook contract gives them.
const (
	DefaultInitialBackoff    = 200 * time.Millisecond
	DefaultBackoffMultiplier = 2.0
	DefaultMaxBackoff        = 30 * time.Second
	DefaultAttemptTimeout    = 30 * time.Second
	DefaultMaxAttempts       = 10
)

// RetryPolicy says how long to wait between webhook attempts and when a
// record's attempts are exhausted. Use DefaultRetryPolicy and override
// fields; the zero value is not valid.
//
// A delivery loop keeps two counters per record:
//   - tries, every attempt made, which drives Backoff, so that the waits
//     grow while the app is down as much as while it fails;
//   - counted, the attempts that were not Unreachable, which drives
//     Exhausted. An Unreachable attempt (the app is not up yet) waits the
//     same capped backoff but is not counted, and the first counted
//     attempt's start is what Exhausted measures MaxElapsed from.
//
// A Cancelled outcome is neither: the loop stops without a verdict.
type RetryPolicy struct {
	// InitialBackoff is the ceiling of the wait after the first try.
	InitialBackoff time.Duration
	// Multiplier grows the ceiling after each further try; at least 1.
	Multiplier float64
	// MaxBackoff caps the ceiling and any Retry-After.
	MaxBackoff time.Duration
	// Jitter is the part of the ceiling that is random: the wait is drawn
	// from [ceiling·(1-Jitter), ceiling]. 1 is "full jitter" (the default),
	// which spreads records that failed together the most; 0 waits exactly
	// the ceiling.
	Jitter float64
	// AttemptTimeout bounds one attempt, from dial to the end of the reply
	// (WebhookClientConfig.AttemptTimeout should be set from it).
	AttemptTimeout time.Duration
	// MaxAttempts is how many counted attempts exhaust a record.
	MaxAttempts int
	// MaxElapsed, if positive, also exhausts a record once that long has
	// passed since its first counted attempt. Zero means no limit.
	MaxElapsed time.Duration
}

// DefaultRetryPolicy returns DESIGN.md's defaults: 200 ms initial, ×2, 30 s
// max backoff, 30 s per attempt, 10 attempts, no elapsed-time limit.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		InitialBackoff: DefaultInitialBackoff,
		Multiplier:     DefaultBackoffMultiplier,
		MaxBackoff:     DefaultMaxBackoff,
		Jitter:         1,
		AttemptTimeout: DefaultAttemptTimeout,
		MaxAttempts:    DefaultMaxAttempts,
	}
}

// Validate reports every problem of p at once.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.InitialBackoff <= 0 {
		errs = append(errs, fmt.Errorf("initial backoff %v: must be positive", p.InitialBackoff))
	}
	if math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) || p.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("backoff multiplier %v: must be a finite number of at least 1", p.Multiplier))
	}
	if p.MaxBackoff <= 0 || p.MaxBackoff < p.InitialBackoff {
		errs = append(errs, fmt.Errorf("max backoff %v: must be positive and at least the initial backoff (%v)", p.MaxBackoff, p.InitialBackoff))
	}
	if math.IsNaN(p.Jitter) || p.Jitter < 0 || p.Jitter > 1 {
		errs = append(errs, fmt.Errorf("jitter %v: must be between 0 and 1", p.Jitter))
	}
	if p.AttemptTimeout <= 0 {
		errs = append(errs, fmt.Errorf("attempt timeout %v: must be positive", p.AttemptTimeout))
	}
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: must be 1 or more", p.MaxAttempts))
	}
	if p.MaxElapsed < 0 {
		errs = append(errs, fmt.Errorf("max elapsed %v: must be zero (no limit) or positive", p.MaxElapsed))
	}
	return errors.Join(errs...)
}

// Backoff returns how long to wait after try number attempt (1 for the
// first) failed. A positive retryAfter (Outcome.RetryAfter) is used as it
// is, capped at MaxBackoff. Otherwise the wait is drawn uniformly from
// [c·(1-Jitter), c] with c = min(MaxBackoff,
// InitialBackoff·Multiplier^(attempt-1)), so that records failing together
// do not retry together.
//
// rnd is the source of jitter; a *rand.Rand is not safe for concurrent use,
// so give each goroutine its own, or pass nil for the global source.
func (p RetryPolicy) Backoff(attempt int, retryAfter time.Duration, rnd *rand.Rand) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.MaxBackoff)
	}
	ceiling := p.ceiling(attempt)
	spread := time.Duration(float64(ceiling) * min(max(p.Jitter, 0), 1))
	if ceiling <= 0 || spread <= 0 {
		return max(ceiling, 0)
	}
	if rnd == nil {
		return ceiling - spread + time.Duration(rand.Int64N(int64(spread)+1))
	}
	return ceiling - spread + time.Duration(rnd.Int64N(int64(spread)+1))
}

// ceiling is the upper bound of the jittered wait after try attempt. It is
// computed in floating point so that a large attempt cannot overflow.
func (p RetryPolicy) ceiling(attempt int) time.Duration {
	attempt = max(attempt, 1)
	c := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(attempt-1))
	if math.IsNaN(c) || c >= float64(p.MaxBackoff) {
		return p.MaxBackoff
	}
	return time.Duration(c)
}

// Exhausted reports whether a record whose counted attempts (Unreachable
// ones left out) number counted, the first of them starting at first, has
// run out of attempts at now: MaxAttempts reached, or MaxElapsed (if set)
// passed since first. A record with no counted attempt is never exhausted.
func (p RetryPolicy) Exhausted(counted int, first, now time.Time) bool {
	if counted <= 0 {
		return false
	}
	if counted >= p.MaxAttempts {
		return true
	}
	return p.MaxElapsed > 0 && now.Sub(first) >= p.MaxElapsed
}
