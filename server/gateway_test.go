package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRESTBadJSON: bodies the gateway cannot decode are 400 with a message
// naming the problem, and never reach the publisher.
func TestRESTBadJSON(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		contains string
	}{
		{"unknown field", `{"records":[{"vaule":"x"}]}`, "vaule"},
		{"unknown top-level field", `{"record":[]}`, "record"},
		{"invalid JSON", `{"records":[`, "not valid JSON"},
		{"form-encoded body", `a=1&b=2`, "not valid JSON"},
		{"XML body", `<records/>`, "not valid JSON"},
		{"not an object", `[1,2]`, "unexpected"},
		{"wrong type", `{"records":[{"partition":"three"}]}`, "partition"},
		{"records not a list", `{"records":{"value":"x"}}`, "line 1:12"},
		// protojson names the field by its JSON name.
		{"invalid base64", `{"records":[{"value_bytes":"!!!"}]}`, "valueBytes"},
		{"invalid UTF-8", "{\"records\":[{\"value\":\"\xff\xfe\"}]}", "UTF-8"},
		{"partition out of range", `{"records":[{"partition":4294967296}]}`, "partition"},
	}
	h := newHarness(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post(t, "/v1/topics/t/records", tt.body)
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", r.status, r.body)
			}
			e := decodeError(t, r)
			if codes.Code(*e.Code) != codes.InvalidArgument || !strings.Contains(e.Message, tt.contains) {
				t.Errorf("error = %d %q, want InvalidArgument containing %q", *e.Code, e.Message, tt.contains)
			}
			if n := len(h.pub.takeCalls()); n != 0 {
				t.Errorf("publisher got %d calls", n)
			}
		})
	}
}

// TestRESTTrailingJSONRefused: a body must be exactly one JSON document.
// grpc-gateway's decoder read the first and ignored the rest, so a second
// request in the same body was dropped while the caller got 200.
func TestRESTTrailingJSONRefused(t *testing.T) {
	h := newHarness(t)
	for name, body := range map[string]string{
		"two documents":  `{"records":[{"value":"a"}]} {"records":[{"value":"b"}]}`,
		"trailing text":  `{"records":[{"value":"a"}]} trailing`,
		"trailing brace": `{"records":[{"value":"a"}]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := h.post(t, "/v1/topics/t/records", body)
			e := decodeError(t, r)
			if r.status != http.StatusBadRequest || codes.Code(*e.Code) != codes.InvalidArgument ||
				!(strings.Contains(e.Message, "one document") || strings.Contains(e.Message, "not valid JSON")) {
				t.Errorf("status %d, error %q; want 400 saying the body is not one JSON document", r.status, e.Message)
			}
			if n := len(h.pub.takeCalls()); n != 0 {
				t.Errorf("publisher got %d calls", n)
			}
		})
	}
	// Whitespace around the document is fine.
	if r := h.post(t, "/v1/topics/t/records", "\n {\"records\":[{\"value\":\"a\"}]} \r\n"); r.status != http.StatusOK {
		t.Errorf("a document with surrounding whitespace: status %d: %s", r.status, r.body)
	}
}

// TestRESTMissingBody: an empty body is a request without records. The
// server passes it on (it is bridge's validation that refuses it, and the
// fake answers with bridge's error); the caller gets 400.
func TestRESTMissingBody(t *testing.T) {
	h := newHarness(t)
	for name, body := range map[string]string{"no body": "", "empty object": "{}", "empty list": `{"records":[]}`} {
		t.Run(name, func(t *testing.T) {
			r := h.post(t, "/v1/topics/orders/records", body)
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", r.status, r.body)
			}
			if e := decodeError(t, r); !strings.Contains(e.Message, "at least one record") {
				t.Errorf("message = %q, want it to say at least one record is needed", e.Message)
			}
			call := h.pub.onlyCall(t)
			if call.topic != "orders" || len(call.records) != 0 {
				t.Errorf("publisher got topic %q with %d records, want orders with none", call.topic, len(call.records))
			}
		})
	}
}

// TestRESTBodyLimit: a body over the limit is refused, never with 429 (a
// status clients retry).
func TestRESTBodyLimit(t *testing.T) {
	h := newHarness(t)
	big := `{"records":[{"value":"` + strings.Repeat("x", testMaxRequestBytes) + `"}]}`

	t.Run("declared length", func(t *testing.T) {
		r := h.post(t, "/v1/topics/t/records", big)
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413: %s", r.status, r.body)
		}
		if e := decodeError(t, r); !strings.Contains(e.Message, "limit") {
			t.Errorf("message = %q, want it to name the limit", e.Message)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		// io.MultiReader hides the length, so the body is sent chunked and
		// the limit is found while reading: 400 or 413, never 429.
		r := h.do(t, http.MethodPost, "/v1/topics/t/records", io.MultiReader(strings.NewReader(big)), nil)
		if r.status != http.StatusBadRequest && r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 400 or 413: %s", r.status, r.body)
		}
		decodeError(t, r)
	})
	t.Run("just under", func(t *testing.T) {
		const envelope = `{"records":[{"value":""}]}`
		body := `{"records":[{"value":"` + strings.Repeat("x", testMaxRequestBytes-len(envelope)) + `"}]}`
		r := h.post(t, "/v1/topics/t/records", body)
		if r.status != http.StatusOK {
			t.Errorf("status %d for a body of exactly the limit, want 200: %.200s", r.status, r.body)
		}
	})
	if n := len(h.pub.takeCalls()); n != 1 {
		t.Errorf("publisher got %d calls, want only the one under the limit", n)
	}
}

// TestRESTRouting: unknown paths are 404 and other methods 405, both JSON.
func TestRESTRouting(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v1/topics/t/records", http.StatusMethodNotAllowed},
		{http.MethodPut, "/v1/topics/t/records", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/topics/t", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1/topics/t", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/nope", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodPost, "/v1/topics/t/records/extra", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := h.do(t, tt.method, tt.path, bytes.NewReader(nil), nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			e := decodeError(t, r)
			if !strings.Contains(e.Message, tt.path) {
				t.Errorf("message %q does not name the path", e.Message)
			}
			if tt.status == http.StatusMethodNotAllowed {
				if allow := r.header.Get("Allow"); allow != http.MethodPost {
					t.Errorf("Allow = %q, want POST", allow)
				}
			}
		})
	}
	if n := len(h.pub.takeCalls()); n != 0 {
		t.Errorf("publisher got %d calls", n)
	}
}

// TestRESTResponse checks the success body: one result per record, with
// partition, offset (a string, as proto JSON writes int64) and timestamp.
func TestRESTResponse(t *testing.T) {
	h := newHarness(t)
	r := h.post(t, "/v1/topics/t/records", `{"records":[{"value":"a","partition":3},{"value":"b"}]}`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	rs := decodeResults(t, r)
	if len(rs) != 2 {
		t.Fatalf("results: %s", r.body)
	}
	if rs[0].Partition != 3 || rs[0].Offset != "0" || rs[1].Offset != "1" || rs[0].Timestamp != "2024-05-06T07:08:09Z" || rs[0].Error != nil {
		t.Errorf("results = %s", r.body)
	}
}

// TestRESTDeadlineRaceAnswers504 is the regression test for a REST call
// whose Grpc-Timeout ran out and was answered with grpc-go's "stream
// terminated by RST_STREAM with error code: CANCEL": when the gRPC server
// notices the deadline before the gateway's client does, that is the error the
// gateway sees. Whatever the error, a call past its deadline is 504
// DEADLINE_EXCEEDED with a message that says so; a call within it keeps its
// own answer.
func TestRESTDeadlineRaceAnswers504(t *testing.T) {
	mux := runtime.NewServeMux()
	reset := status.Error(codes.Canceled, "stream terminated by RST_STREAM with error code: CANCEL")
	tests := []struct {
		name     string
		deadline time.Duration // from now; 0 for none
		err      error
		status   int
		contains string
	}{
		{"reset after the deadline", -time.Millisecond, reset, http.StatusGatewayTimeout, "deadline exceeded"},
		{"deadline exceeded without the word", -time.Millisecond, status.Error(codes.DeadlineExceeded, "stream terminated by RST_STREAM with error code: CANCEL"), http.StatusGatewayTimeout, "deadline exceeded"},
		{"unavailable after the deadline", -time.Millisecond, status.Error(codes.Unavailable, "connection refused"), http.StatusGatewayTimeout, "deadline exceeded"},
		{"reset within the deadline", time.Minute, reset, 499, "RST_STREAM"},
		{"no deadline", 0, status.Error(codes.Unavailable, "kbridge is shutting down"), http.StatusServiceUnavailable, "shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.deadline != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, time.Now().Add(tt.deadline))
				defer cancel()
			}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/topics/t/records", nil)
			deadlineAwareError(ctx, mux, &runtime.JSONPb{}, w, r, tt.err)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
				t.Errorf("answer %d %s, want %d containing %q", w.Code, w.Body, tt.status, tt.contains)
			}
		})
	}
}
