package bridge

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// secretQuery is in every test URL: no ErrorText may echo it.
const secretQuery = "?token=s3cret"

// newDeliverRequest builds a webhook request for offset off of a test record.
func newDeliverRequest(t *testing.T, url string, off int64, value []byte) *http.Request {
	t.Helper()
	rec := &kgo.Record{Topic: "orders", Partition: 1, Offset: off, Value: value, Timestamp: time.UnixMilli(1700000000000)}
	req, err := NewWebhookRequest(context.Background(), url, rec, 1, WebhookRequestSettings{Group: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func newTestWebhookClient(t *testing.T, cfg WebhookClientConfig) *WebhookClient {
	t.Helper()
	c, err := NewWebhookClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func replyWith(status int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "reply body that must be drained")
	}
}

// closedPortURL returns a loopback URL nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/hook" + secretQuery
}

func TestDeliverClassification(t *testing.T) {
	redirectTargetHits := new(atomic.Int32)
	// arrived is closed by the blocking handlers once the request is in,
	// so that cancelling the caller's context races with nothing.
	type blockHandler struct {
		arrived chan struct{}
		once    sync.Once
	}
	blocking := func(b *blockHandler) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			b.once.Do(func() { close(b.arrived) })
			<-r.Context().Done() // the client gave up and closed the connection
		}
	}
	hijack := func(reset bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			if reset {
				_ = conn.(*net.TCPConn).SetLinger(0) // close with RST, not FIN
			}
			_ = conn.Close()
		}
	}
	retryAt := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)

	tests := []struct {
		name    string
		handler http.HandlerFunc
		cfg     WebhookClientConfig
		block   *blockHandler // if set, handler blocks; the caller's ctx is cancelled on arrival
		url     func(t *testing.T) string
		want    OutcomeKind
		status  int
		// retryAfter bounds Outcome.RetryAfter: [lo, hi].
		retryAfterLo, retryAfterHi time.Duration
		errText                    string // substring of ErrorText
	}{
		{name: "200 acks", handler: replyWith(200), want: Acked, status: 200},
		{name: "204 acks", handler: replyWith(204), want: Acked, status: 204},
		{name: "299 acks", handler: replyWith(299), want: Acked, status: 299},
		{name: "301 not followed", handler: replyWith(301, "Location", "/target"), want: Retryable, status: 301, errText: "HTTP 301 Moved Permanently (redirect not followed)"},
		{name: "302 not followed", handler: replyWith(302, "Location", "/target"), want: Retryable, status: 302, errText: "redirect not followed"},
		{name: "400 permanent", handler: replyWith(400), want: Permanent, status: 400, errText: "HTTP 400 Bad Request"},
		{name: "410 permanent", handler: replyWith(410), want: Permanent, status: 410, errText: "HTTP 410"},
		{name: "413 permanent", handler: replyWith(413), want: Permanent, status: 413, errText: "HTTP 413"},
		{name: "415 permanent", handler: replyWith(415), want: Permanent, status: 415, errText: "HTTP 415"},
		{name: "422 permanent", handler: replyWith(422), want: Permanent, status: 422, errText: "HTTP 422"},
		{name: "500 retryable", handler: replyWith(500), want: Retryable, status: 500, errText: "HTTP 500 Internal Server Error"},
		{name: "502 retryable", handler: replyWith(502), want: Retryable, status: 502, errText: "HTTP 502"},
		{name: "418 retryable (unknown to the permanent set)", handler: replyWith(418), want: Retryable, status: 418},
		{name: "599 retryable, no status text", handler: replyWith(599), want: Retryable, status: 599, errText: "HTTP 599"},
		{
			name: "custom permanent set", handler: replyWith(409), cfg: WebhookClientConfig{PermanentStatuses: []int{409}},
			want: Permanent, status: 409,
		},
		{
			name: "400 retryable when the permanent set is empty", handler: replyWith(400), cfg: WebhookClientConfig{PermanentStatuses: []int{}},
			want: Retryable, status: 400,
		},
		{
			name: "429 with delta-seconds Retry-After", handler: replyWith(429, "Retry-After", "7"),
			want: Retryable, status: 429, retryAfterLo: 7 * time.Second, retryAfterHi: 7 * time.Second, errText: "HTTP 429 Too Many Requests",
		},
		{
			name: "503 with delta-seconds Retry-After", handler: replyWith(503, "Retry-After", "120"),
			want: Retryable, status: 503, retryAfterLo: 2 * time.Minute, retryAfterHi: 2 * time.Minute,
		},
		{
			name: "429 with HTTP-date Retry-After", handler: replyWith(429, "Retry-After", retryAt),
			want: Retryable, status: 429, retryAfterLo: time.Minute, retryAfterHi: 2 * time.Minute,
		},
		{
			name: "503 with HTTP-date Retry-After", handler: replyWith(503, "Retry-After", retryAt),
			want: Retryable, status: 503, retryAfterLo: time.Minute, retryAfterHi: 2 * time.Minute,
		},
		{name: "429 with invalid Retry-After", handler: replyWith(429, "Retry-After", "soon"), want: Retryable, status: 429},
		{name: "503 with past Retry-After", handler: replyWith(503, "Retry-After", "Mon, 02 Jan 2006 15:04:05 GMT"), want: Retryable, status: 503},
		{name: "Retry-After ignored on 500", handler: replyWith(500, "Retry-After", "7"), want: Retryable, status: 500},
		{
			name: "no reply within the attempt timeout", block: &blockHandler{}, cfg: WebhookClientConfig{AttemptTimeout: 50 * time.Millisecond},
			want: Retryable, errText: "timeout: no reply within 50ms",
		},
		{name: "connection closed after reading the request", handler: hijack(false), want: Retryable, errText: "connection closed without a reply"},
		{name: "connection reset after reading the request", handler: hijack(true), want: Retryable, errText: "connection reset"},
		{name: "closed port", url: closedPortURL, want: Unreachable, errText: "unreachable: dial tcp"},
		{name: "caller cancels mid-attempt", block: &blockHandler{}, want: Cancelled, errText: "cancelled: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handler := tt.handler
			if handler == nil {
				handler = replyWith(200) // not reached: the case has its own url
			}
			if tt.block != nil {
				tt.block.arrived = make(chan struct{})
				handler = blocking(tt.block)
			}
			mux := http.NewServeMux()
			mux.Handle("/hook", handler)
			mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { redirectTargetHits.Add(1) })
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			url := srv.URL + "/hook" + secretQuery
			if tt.url != nil {
				url = tt.url(t)
			}
			client := newTestWebhookClient(t, tt.cfg)

			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			if tt.block != nil && tt.cfg.AttemptTimeout == 0 {
				go func() {
					select {
					case <-tt.block.arrived:
						cancel()
					case <-ctx.Done():
					}
				}()
			}
			got := client.Deliver(ctx, newDeliverRequest(t, url, 42, []byte(`{"id":42}`)))

			if got.Kind != tt.want || got.Status != tt.status {
				t.Fatalf("Deliver() = %v %d (%q, %v), want %v %d", got.Kind, got.Status, got.ErrorText, got.Err, tt.want, tt.status)
			}
			if got.RetryAfter < tt.retryAfterLo || got.RetryAfter > tt.retryAfterHi {
				t.Errorf("RetryAfter = %v, want within [%v, %v]", got.RetryAfter, tt.retryAfterLo, tt.retryAfterHi)
			}
			if got.Throttled() != (tt.status == 429 || tt.status == 503) {
				t.Errorf("Throttled() = %v for status %d", got.Throttled(), tt.status)
			}
			checkErrorText(t, got, tt.errText)
			if got.Status != 0 && got.Err != nil {
				t.Errorf("Err = %v with a reply", got.Err)
			}
			if got.Status == 0 && got.Err == nil {
				t.Error("Err = nil without a reply")
			}
		})
	}
	if n := redirectTargetHits.Load(); n != 0 {
		t.Errorf("redirect target hit %d times; redirects must not be followed", n)
	}
}

func checkErrorText(t *testing.T, got Outcome, want string) {
	t.Helper()
	if got.Kind == Acked {
		if got.ErrorText != "" {
			t.Errorf("ErrorText = %q for an ack, want empty", got.ErrorText)
		}
		return
	}
	if got.ErrorText == "" || !strings.Contains(got.ErrorText, want) {
		t.Errorf("ErrorText = %q, want it to contain %q", got.ErrorText, want)
	}
	if strings.Contains(got.ErrorText, "s3cret") || strings.Contains(got.ErrorText, "/hook") {
		t.Errorf("ErrorText = %q leaks the URL", got.ErrorText)
	}
	if len(got.ErrorText) > maxErrorText || !isPrintableASCII(got.ErrorText) {
		t.Errorf("ErrorText = %q: want at most %d printable ASCII bytes", got.ErrorText, maxErrorText)
	}
}

func TestDeliverCancelledBeforeStart(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	client := newTestWebhookClient(t, WebhookClientConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	// Cancelled wins over what the dial would have said, too: shutdown is
	// never a verdict on the record.
	for _, url := range []string{srv.URL, closedPortURL(t)} {
		if got := client.Deliver(ctx, newDeliverRequest(t, url, 1, nil)); got.Kind != Cancelled {
			t.Errorf("Deliver(%s) with a cancelled context = %v (%q), want cancelled", url, got.Kind, got.ErrorText)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("app hit %d times, want 0", n)
	}
}

// TestDeliverDrainsReply: a reply read to the end (up to 64 KiB) leaves its
// connection to be reused; a longer one is cut off, and the next attempt
// still works.
func TestDeliverDrainsReply(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("big") {
			_, _ = w.Write(make([]byte, 4*maxDrain))
			return
		}
		_, _ = w.Write(make([]byte, maxDrain/2))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	client := newTestWebhookClient(t, WebhookClientConfig{MaxConcurrency: 1})

	for i := range 5 {
		if got := client.Deliver(t.Context(), newDeliverRequest(t, srv.URL, int64(i), []byte("x"))); got.Kind != Acked {
			t.Fatalf("attempt %d = %v (%q), want acked", i, got.Kind, got.ErrorText)
		}
	}
	if got := client.Deliver(t.Context(), newDeliverRequest(t, srv.URL+"?big", 9, []byte("x"))); got.Kind != Acked {
		t.Fatalf("big reply = %v (%q), want acked", got.Kind, got.ErrorText)
	}
	// Connection reuse is the Transport's to decide and may lag the body's
	// close, so only a generous bound: five small replies did not take five
	// connections.
	if n := conns.Load(); n >= 5 {
		t.Errorf("%d connections for 6 sequential attempts; drained replies should reuse them", n)
	}
}

type connRequestsKey struct{}

// TestWebhookClientNoReplay: the app reads a request that came on a
// kept-alive connection and drops the connection without replying, as an
// app server closing an idle connection does at an unlucky moment. The
// attempt must fail and the app must have seen it exactly once: Go's
// Transport must not replay it on a fresh connection, with a body or
// without (an empty value, which Transport could otherwise rewind). The
// bare Transport case shows that the test can see a replay.
func TestWebhookClientNoReplay(t *testing.T) {
	tests := []struct {
		name       string
		value      []byte
		bare       bool // plain http.Client: Go's behaviour, for contrast
		wantReplay bool
	}{
		{name: "with a body", value: []byte(`{"id":1}`)},
		{name: "empty body", value: nil},
		{name: "empty body, bare Transport replays", value: nil, bare: true, wantReplay: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]int{} // Idempotency-Key → times the app saw it
			dropped := make(chan string, 100)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := r.Context().Value(connRequestsKey{}).(*atomic.Int32).Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				key := r.Header.Get("Idempotency-Key")
				mu.Lock()
				seen[key]++
				mu.Unlock()
				if n == 1 {
					return // 200; the connection goes back to the pool
				}
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				dropped <- key // before the close, so the client's error happens after it
				_ = conn.Close()
			}))
			srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, connRequestsKey{}, new(atomic.Int32))
			}
			srv.Start()
			t.Cleanup(srv.Close)
			client := newTestWebhookClient(t, WebhookClientConfig{})
			bare := &http.Client{Transport: &http.Transport{}}
			t.Cleanup(bare.CloseIdleConnections)

			// Attempts go one after another until one lands on a reused
			// connection (the Transport may dial afresh while the previous
			// connection is on its way back to the pool).
			var key string
			var got Outcome
			for off := int64(0); off < 50 && key == ""; off++ {
				req := newDeliverRequest(t, srv.URL, off, tt.value)
				if tt.bare {
					resp, err := bare.Do(req)
					got = Outcome{Kind: Acked, Err: err}
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
					}
				} else {
					got = client.Deliver(t.Context(), req)
					if _, ok := req.Header["Idempotency-Key"]; !ok {
						t.Fatal("Deliver changed the caller's request headers")
					}
				}
				select {
				case key = <-dropped:
					if want := "billing/orders/1/" + strconv.FormatInt(off, 10); key != want {
						t.Fatalf("the app dropped Idempotency-Key %q, want %q", key, want)
					}
				default:
				}
			}
			if key == "" {
				t.Fatal("no attempt was sent on a kept-alive connection in 50 tries")
			}
			mu.Lock()
			times := seen[key]
			mu.Unlock()
			switch {
			case tt.wantReplay && times < 2:
				t.Errorf("bare Transport: the app saw %s %d times; Go no longer replays, so this test no longer proves anything", key, times)
			case !tt.wantReplay && times != 1:
				t.Errorf("the app saw %s %d times, want exactly 1", key, times)
			case !tt.wantReplay && got.Kind != Retryable:
				t.Errorf("dropped attempt = %v (%q), want retryable", got.Kind, got.ErrorText)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-1", 0},
		{"+5", 0},
		{"1.5", 0},
		{"5s", 0},
		{"soon", 0},
		{"99999999999999999999999", time.Duration(1<<63 - 1)},
		{"9223372036", 9223372036 * time.Second},
		{"9223372037", time.Duration(1<<63 - 1)},
		{"Fri, 27 Nov 2026 12:01:30 GMT", 90 * time.Second},  // IMF-fixdate
		{"Friday, 27-Nov-26 12:00:10 GMT", 10 * time.Second}, // RFC 850
		{"Fri Nov 27 12:00:20 2026", 20 * time.Second},       // ANSI C asctime
		{"Fri, 27 Nov 2026 11:59:00 GMT", 0},                 // past
		{"Fri, 27 Nov 2026 12:01:30 +0100", 0},               // not an HTTP-date
		{"Fri, 32 Nov 2026 12:01:30 GMT", 0},                 // no such day
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.value, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

func TestBoundText(t *testing.T) {
	if got := boundText("short\ttext\xff"); got != "short?text?" {
		t.Errorf("boundText = %q, want control and non-ASCII bytes replaced", got)
	}
	long := boundText(strings.Repeat("x", 1000))
	if len(long) != maxErrorText || !strings.HasSuffix(long, "...") {
		t.Errorf("boundText(1000 bytes) = %d bytes ending %q, want %d ending ...", len(long), long[len(long)-5:], maxErrorText)
	}
}

func TestWebhookClientConfigValidate(t *testing.T) {
	if err := (WebhookClientConfig{}).Validate(); err != nil {
		t.Errorf("zero config: Validate() = %v, want nil", err)
	}
	bad := WebhookClientConfig{
		MaxConcurrency: -1, AttemptTimeout: -1, IdleTimeout: -1, DialTimeout: -1,
		PermanentStatuses: []int{200, 99, 600, 404},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want every problem")
	}
	for _, want := range []string{"max concurrency", "attempt timeout", "idle timeout", "dial timeout", "permanent status 200", "permanent status 99", "permanent status 600"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "404") {
		t.Errorf("Validate() = %q, 404 is a valid permanent status", err)
	}
	if _, err := NewWebhookClient(bad); err == nil {
		t.Error("NewWebhookClient(bad) = nil error")
	}
}

func TestOutcomeKindString(t *testing.T) {
	for k, want := range map[OutcomeKind]string{
		Acked: "acked", Permanent: "permanent", Retryable: "retryable", Unreachable: "unreachable",
		Cancelled: "cancelled", 0: "OutcomeKind(0)",
	} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}
