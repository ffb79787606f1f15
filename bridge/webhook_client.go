package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of WebhookClientConfig, applied when a field is zero.
const (
	DefaultWebhookConcurrency = 16
	// DefaultWebhookIdleTimeout is kept below the keep-alive timeouts of
	// common app servers (Node 5 s, uvicorn 5 s, Puma 20 s), so that kbridge
	// rarely reuses a connection the app is about to close.
	DefaultWebhookIdleTimeout = 4 * time.Second
	DefaultWebhookDialTimeout = 5 * time.Second
)

// DefaultPermanentStatuses returns DESIGN.md's permanent statuses (400,
// 410, 413, 415, 422): replies that no retry can change.
func DefaultPermanentStatuses() []int {
	return []int{
		http.StatusBadRequest, http.StatusGone, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity,
	}
}

// maxDrain bounds how much of a reply is read to keep its connection
// reusable; a longer reply costs a connection, not memory.
const maxDrain = 64 << 10

// maxErrorText bounds Outcome.ErrorText, which travels in a DLQ header.
const maxErrorText = 200

// WebhookClientConfig shapes a WebhookClient. The zero value is usable.
type WebhookClientConfig struct {
	// MaxConcurrency is the most attempts in flight at once; the pool keeps
	// that many idle connections so that none is closed and redialled
	// between attempts. Zero means DefaultWebhookConcurrency.
	MaxConcurrency int
	// AttemptTimeout bounds one attempt; set it from
	// RetryPolicy.AttemptTimeout. Zero means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// PermanentStatuses are the statuses classified Permanent. Nil means
	// DefaultPermanentStatuses(); an empty non-nil slice, none.
	PermanentStatuses []int
	// IdleTimeout closes a pooled connection idle that long. Zero means
	// DefaultWebhookIdleTimeout.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to the app. Zero means
	// DefaultWebhookDialTimeout.
	DialTimeout time.Duration
}

// Validate reports every problem of c at once.
func (c WebhookClientConfig) Validate() error {
	var errs []error
	if c.MaxConcurrency < 0 {
		errs = append(errs, fmt.Errorf("max concurrency %d: must be zero (default) or positive", c.MaxConcurrency))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"attempt timeout", c.AttemptTimeout}, {"idle timeout", c.IdleTimeout}, {"dial timeout", c.DialTimeout}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be zero (default) or positive", f.name, f.d))
		}
	}
	for _, s := range c.PermanentStatuses {
		if s < 300 || s > 599 {
			errs = append(errs, fmt.Errorf("permanent status %d: must be within 300-599 (2xx always acks)", s))
		}
	}
	return errors.Join(errs...)
}

// WebhookClient makes webhook attempts to a local app: one attempt per
// call, never a redirect followed, never a request replayed behind the
// caller's back, so that every attempt the app sees is one the caller
// counted. It is safe for concurrent use.
type WebhookClient struct {
	// transport is used directly, not through an http.Client: the client's
	// redirect machinery (which would turn the POST into a GET elsewhere)
	// is not wanted, and it clones every request's headers for it, 5% of
	// delivery's CPU. A 3xx is returned as it is: a failure of the app's
	// contract.
	transport      *http.Transport
	rt             http.RoundTripper
	attemptTimeout time.Duration
	permanent      map[int]bool
}

// NewWebhookClient returns a client for cfg, or cfg's problems.
func NewWebhookClient(cfg WebhookClientConfig) (*WebhookClient, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook client config: %w", err)
	}
	conns := cmp.Or(cfg.MaxConcurrency, DefaultWebhookConcurrency)
	dialer := &net.Dialer{Timeout: cmp.Or(cfg.DialTimeout, DefaultWebhookDialTimeout), KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		// The app is on loopback: an HTTP(S)_PROXY meant for egress must
		// not capture it.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     cmp.Or(cfg.IdleTimeout, DefaultWebhookIdleTimeout),
		// The app's reply is drained and dropped; asking for gzip would
		// only make it bigger to read.
		DisableCompression: true,
	}
	statuses := cfg.PermanentStatuses
	if statuses == nil {
		statuses = DefaultPermanentStatuses()
	}
	permanent := make(map[int]bool, len(statuses))
	for _, s := range statuses {
		permanent[s] = true
	}
	return &WebhookClient{
		transport:      transport,
		rt:             noReplayTransport{transport},
		attemptTimeout: cmp.Or(cfg.AttemptTimeout, DefaultAttemptTimeout),
		permanent:      permanent,
	}, nil
}

// CloseIdleConnections closes the pooled connections; call it at shutdown.
func (c *WebhookClient) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// noReplayTransport stops http.Transport from replaying a request on a new
// connection when a kept-alive one fails after the request was written.
// Transport replays only requests it deems idempotent (its doc: GET-like
// methods, or a Header map with an "Idempotency-Key" or
// "X-Idempotency-Key" entry) and whose body it can rewind. A request with
// a body has no GetBody (NewWebhookRequest sees to that), so it is never
// replayed; one with no body (http.NoBody) would be. For those, the
// headers are moved to lower-case map entries: the wire carries the same
// header (names are case-insensitive; apps see Idempotency-Key as before)
// but Transport no longer finds the exact entry. A request nothing of
// which was written may still be retried by Transport; the app never saw
// that one, so the attempt is still seen once. The no-replay test proves
// this against the Go in use.
type noReplayTransport struct{ base http.RoundTripper }

var idempotencyHeaders = []string{"Idempotency-Key", "X-Idempotency-Key"}

func (t noReplayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		return t.base.RoundTrip(req)
	}
	if !slices.ContainsFunc(idempotencyHeaders, func(k string) bool { _, ok := req.Header[k]; return ok }) {
		return t.base.RoundTrip(req)
	}
	// A RoundTripper must not modify the caller's request.
	r := req.Clone(req.Context())
	for _, k := range idempotencyHeaders {
		if v, ok := r.Header[k]; ok {
			delete(r.Header, k)
			lower := strings.ToLower(k)
			r.Header[lower] = append(r.Header[lower], v...)
		}
	}
	return t.base.RoundTrip(r)
}

// OutcomeKind classifies one webhook attempt.
type OutcomeKind int

// The kinds of outcome. The zero value is not one of them.
const (
	// Acked: the app replied 2xx; the record is done.
	Acked OutcomeKind = iota + 1
	// Permanent: the app replied with a permanent status; retrying will not
	// help (the subscription's policy decides between DLQ and retrying).
	Permanent
	// Retryable: any other status (3xx included), a timeout, a reset, a
	// connection closed without a reply. Counts towards exhaustion.
	Retryable
	// Unreachable: the app could not be connected to (refused, no route):
	// it is not up. Never counts towards exhaustion.
	Unreachable
	// Cancelled: the caller's context ended (shutdown, revoked partition).
	// No verdict on the record; never dead-lettered.
	Cancelled
)

func (k OutcomeKind) String() string {
	switch k {
	case Acked:
		return "acked"
	case Permanent:
		return "permanent"
	case Retryable:
		return "retryable"
	case Unreachable:
		return "unreachable"
	case Cancelled:
		return "cancelled"
	}
	return "OutcomeKind(" + strconv.Itoa(int(k)) + ")"
}

// Outcome is the result of one webhook attempt.
type Outcome struct {
	Kind OutcomeKind
	// Status is the reply's status code, 0 when there was no reply.
	Status int
	// RetryAfter is the Retry-After of a 429 or 503 reply (either form),
	// when it asks for a positive wait; 0 when absent, invalid or past.
	RetryAfter time.Duration
	// ErrorText says what went wrong in at most 200 printable ASCII bytes,
	// fit for a DLQ header and logs; it never holds the URL (which may
	// carry credentials) or the reply body. Empty for Acked.
	ErrorText string
	// Err is the transport error, with the URL stripped; nil when there
	// was a reply.
	Err error
}

// Throttled reports whether the app asked kbridge to slow down (429 or
// 503): that slows the whole subscription, not just the record.
func (o Outcome) Throttled() bool {
	return o.Status == http.StatusTooManyRequests || o.Status == http.StatusServiceUnavailable
}

// errAttemptTimeout is the cause of an attempt's context ending on its own
// timeout, which tells it from the caller's context ending.
var errAttemptTimeout = errors.New("attempt timed out")

// Deliver makes one attempt to send req, within the attempt timeout, and
// classifies it. req's own context is replaced by one derived from ctx,
// whose end (shutdown, revoke) makes the outcome Cancelled. req's body is
// consumed: build a new request for each attempt (NewWebhookRequest, with
// the attempt number). The reply body is drained (up to 64 KiB) and closed
// before Deliver returns, so the connection can be reused.
func (c *WebhookClient) Deliver(ctx context.Context, req *http.Request) Outcome {
	out, _ := c.DeliverReading(ctx, req, 0)
	return out
}

// DeliverReading is Deliver for a request whose 2xx reply says more than
// its status (a batch's list of failed events): it also returns the body of
// a 2xx reply, at most limit bytes (none for a limit of 0). A longer body is
// a failure of the attempt (Retryable), never a truncated verdict.
func (c *WebhookClient) DeliverReading(ctx context.Context, req *http.Request, limit int) (Outcome, []byte) {
	actx, cancel := context.WithTimeoutCause(ctx, c.attemptTimeout, errAttemptTimeout)
	defer cancel() // after the body is drained: the context governs reading it too
	resp, err := c.rt.RoundTrip(req.WithContext(actx))
	if err != nil {
		return c.classifyError(ctx, actx, err), nil
	}
	defer resp.Body.Close()
	out := c.classifyReply(resp, time.Now())
	if limit <= 0 || out.Kind != Acked {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		return out, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	switch {
	case err != nil:
		return c.classifyError(ctx, actx, err), nil
	case len(body) > limit:
		return Outcome{Kind: Retryable, Status: resp.StatusCode,
			ErrorText: fmt.Sprintf("HTTP %d with a reply body over %d bytes", resp.StatusCode, limit)}, nil
	}
	return out, body
}

// statusKind classifies a reply status: 2xx acks; the permanent statuses
// are Permanent; anything else is Retryable.
func (c *WebhookClient) statusKind(status int) OutcomeKind {
	switch {
	case status >= 200 && status <= 299:
		return Acked
	case c.permanent[status]:
		return Permanent
	}
	return Retryable
}

func (c *WebhookClient) classifyReply(resp *http.Response, now time.Time) Outcome {
	o := Outcome{Status: resp.StatusCode, Kind: c.statusKind(resp.StatusCode)}
	if o.Kind == Acked {
		return o
	}
	o.ErrorText = "HTTP " + strconv.Itoa(resp.StatusCode)
	if text := http.StatusText(resp.StatusCode); text != "" {
		o.ErrorText += " " + text
	}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		o.ErrorText += " (redirect not followed)"
	}
	if o.Throttled() {
		o.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return o
}

func (c *WebhookClient) classifyError(ctx, actx context.Context, err error) Outcome {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its text holds the URL, which may hold secrets
	}
	o := Outcome{Err: err}
	var oerr *net.OpError
	switch {
	case ctx.Err() != nil:
		o.Kind, o.ErrorText = Cancelled, "cancelled: "+context.Cause(ctx).Error()
	case context.Cause(actx) == errAttemptTimeout:
		o.Kind, o.ErrorText = Retryable, "timeout: no reply within "+c.attemptTimeout.String()
	case errors.As(err, &oerr) && oerr.Op == "dial" && (errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)):
		// Only a failed dial: the app cannot have seen the request.
		o.Kind, o.ErrorText = Unreachable, "unreachable: "+err.Error()
	case errors.Is(err, syscall.ECONNRESET):
		o.Kind, o.ErrorText = Retryable, "connection reset: "+err.Error()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		o.Kind, o.ErrorText = Retryable, "connection closed without a reply: "+err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		o.Kind, o.ErrorText = Retryable, "timeout: "+err.Error()
	default:
		o.Kind, o.ErrorText = Retryable, err.Error()
	}
	o.ErrorText = boundText(o.ErrorText)
	return o
}

// boundText makes s printable ASCII of at most maxErrorText bytes.
func boundText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			b[i] = '?'
		}
	}
	if len(b) > maxErrorText {
		b = append(b[:maxErrorText-3], "..."...)
	}
	return string(b)
}

// parseRetryAfter reads a Retry-After value in either form (delta-seconds
// or HTTP-date) as a wait from now; 0 when absent, invalid or not in the
// future.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var nerr *strconv.NumError
			if errors.As(err, &nerr) && nerr.Err == strconv.ErrRange {
				return time.Duration(1<<63 - 1) // valid but huge: the caller caps it
			}
			return 0
		}
		if secs > uint64((1<<63-1)/time.Second) {
			return time.Duration(1<<63 - 1)
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(t.Sub(now), 0)
}
