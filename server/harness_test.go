package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// The harness runs the real API stack in process: the gRPC server from
// NewGRPC on a loopback port, and the gateway from NewGateway reaching it
// through a real client connection, served by httptest. Only the Publisher
// is fake: these tests are about mapping and transport; the Kafka side is
// covered by the bridge and end-to-end tests.

// harness is one running API stack.
type harness struct {
	pub    *fakePublisher
	grpc   *GRPC
	reg    *prometheus.Registry
	conn   *grpc.ClientConn
	client kbridgev1.ProducerServiceClient
	url    string // base URL of the REST gateway
	http   *http.Client
}

type harnessConfig struct {
	streamMaxInFlight int
	maxRequestBytes   int
	publisher         Publisher // nil: the harness's fake
}

// testMaxRequestBytes is the harness's request limit, small enough that
// tests can exceed it cheaply.
const testMaxRequestBytes = 64 << 10

func withStreamMaxInFlight(n int) func(*harnessConfig) {
	return func(c *harnessConfig) { c.streamMaxInFlight = n }
}

// withPublisher serves p instead of the fake (h.pub then sees no calls).
func withPublisher(p Publisher) func(*harnessConfig) {
	return func(c *harnessConfig) { c.publisher = p }
}

// newHarness starts the stack; everything stops in tb.Cleanup.
func newHarness(tb testing.TB, opts ...func(*harnessConfig)) *harness {
	tb.Helper()
	cfg := harnessConfig{streamMaxInFlight: 100, maxRequestBytes: testMaxRequestBytes}
	for _, o := range opts {
		o(&cfg)
	}
	h := &harness{pub: newFakePublisher(), reg: prometheus.NewRegistry()}

	var pub Publisher = h.pub
	if cfg.publisher != nil {
		pub = cfg.publisher
	}
	svc := NewProducerService(pub, ProducerServiceConfig{StreamMaxInFlight: cfg.streamMaxInFlight, MaxRequestBytes: cfg.maxRequestBytes}, nil)
	g, err := NewGRPC(GRPCConfig{MaxRequestBytes: cfg.maxRequestBytes}, svc, nil, h.reg)
	if err != nil {
		tb.Fatalf("NewGRPC: %v", err)
	}
	h.grpc = g
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Stop(ctx)
		if err := <-served; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(CallCodec()))
	if err != nil {
		tb.Fatalf("grpc client: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	h.conn = conn
	h.client = kbridgev1.NewProducerServiceClient(conn)

	gw, err := NewGateway(context.Background(), conn, cfg.maxRequestBytes)
	if err != nil {
		tb.Fatalf("NewGateway: %v", err)
	}
	ts := httptest.NewServer(gw)
	tb.Cleanup(ts.Close)
	h.url, h.http = ts.URL, ts.Client()
	return h
}

// restResponse is one answer of the REST gateway.
type restResponse struct {
	status int
	header http.Header
	body   []byte
}

// do sends an HTTP request to the gateway. A nil header sends the JSON
// content type.
func (h *harness) do(tb testing.TB, method, path string, body io.Reader, header http.Header) restResponse {
	tb.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	if header == nil {
		header = http.Header{"Content-Type": {"application/json"}}
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := h.http.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read response: %v", err)
	}
	return restResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// post sends body to path with the JSON content type.
func (h *harness) post(tb testing.TB, path, body string) restResponse {
	tb.Helper()
	return h.do(tb, http.MethodPost, path, bytes.NewReader([]byte(body)), nil)
}

// restError is the gateway's JSON error shape (google.rpc.Status).
type restError struct {
	Code    *int   `json:"code"`
	Message string `json:"message"`
}

// decodeError checks that r is a JSON error with both fields.
func decodeError(tb testing.TB, r restResponse) restError {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e restError
	if err := json.Unmarshal(r.body, &e); err != nil {
		tb.Fatalf("error body is not JSON: %v: %q", err, r.body)
	}
	if e.Code == nil || e.Message == "" {
		tb.Fatalf("error body lacks code or message: %q", r.body)
	}
	return e
}

// restResult is one result of a REST publish response (int64 offsets are
// strings in proto JSON).
type restResult struct {
	Partition int32  `json:"partition"`
	Offset    string `json:"offset"`
	Timestamp string `json:"timestamp"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeResults(tb testing.TB, r restResponse) []restResult {
	tb.Helper()
	var out struct {
		Results []restResult `json:"results"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		tb.Fatalf("response body is not JSON: %v: %q", err, r.body)
	}
	return out.Results
}

// publishCall is one call the fake publisher received.
type publishCall struct {
	method  string // "Publish" or "Send"
	topic   string
	records []bridge.Record
}

// fakePublisher records every call and answers as scripted: by default each
// record succeeds at partition 0 (or its explicit partition) with the next
// offset; like bridge.Producer it refuses an empty record list. Send answers
// like Publish, with a Pending that is already done (bridge offers no way to
// build an unfinished one; the back-pressure test uses the real producer).
type fakePublisher struct {
	mu         sync.Mutex
	calls      []publishCall
	nextOffset int64
	respond    func(ctx context.Context, topic string, records []bridge.Record) ([]bridge.Result, error)
	gate       chan struct{} // when set, Publish waits for it to close
}

// fakeTime is the timestamp the fake reports for records without their own.
var fakeTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func newFakePublisher() *fakePublisher { return &fakePublisher{} }

func (f *fakePublisher) Publish(ctx context.Context, topic string, records []bridge.Record) ([]bridge.Result, error) {
	return f.call(ctx, "Publish", topic, records)
}

func (f *fakePublisher) Send(ctx context.Context, topic string, records []bridge.Record) (*bridge.Pending, error) {
	results, err := f.call(ctx, "Send", topic, records)
	if err != nil {
		return nil, err
	}
	return bridge.NewPending(results), nil
}

func (f *fakePublisher) call(ctx context.Context, method, topic string, records []bridge.Record) ([]bridge.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, publishCall{method: method, topic: topic, records: records})
	respond, gate := f.respond, f.gate
	f.mu.Unlock()

	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, bridge.ErrDeadline
		}
	}
	if len(records) == 0 {
		// The same error bridge's validation gives; the server relies on it.
		return nil, &bridge.ValidationError{Record: -1, Field: "records", Reason: "at least one record is required"}
	}
	if respond != nil {
		return respond(ctx, topic, records)
	}
	return f.succeed(records)
}

func (f *fakePublisher) succeed(records []bridge.Record) ([]bridge.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]bridge.Result, len(records))
	for i, r := range records {
		out[i] = bridge.Result{Partition: r.Partition, Offset: f.nextOffset, Timestamp: fakeTime}
		f.nextOffset++
	}
	return out, nil
}

// script makes every later call answer with fn.
func (f *fakePublisher) script(fn func(ctx context.Context, topic string, records []bridge.Record) ([]bridge.Result, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = fn
}

// failWith makes every later call fail with err.
func (f *fakePublisher) failWith(err error) {
	f.script(func(context.Context, string, []bridge.Record) ([]bridge.Result, error) { return nil, err })
}

// block makes later calls wait until the returned release is called (or
// their context ends). release may be called more than once.
func (f *fakePublisher) block() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// takeCalls returns the calls so far and forgets them.
func (f *fakePublisher) takeCalls() []publishCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakePublisher) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// onlyCall returns the one call received so far, failing otherwise.
func (f *fakePublisher) onlyCall(tb testing.TB) publishCall {
	tb.Helper()
	calls := f.takeCalls()
	if len(calls) != 1 {
		tb.Fatalf("publisher got %d calls, want 1", len(calls))
	}
	return calls[0]
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronization
	}
}
