package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kbridge/kbridge/bridge"
)

// rawPost posts body to the raw endpoint with the given headers.
func (h *harness) rawPost(t *testing.T, pathAndQuery string, body []byte, header http.Header) restResponse {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	return h.do(t, http.MethodPost, pathAndQuery, bytes.NewReader(body), header)
}

// TestRawBody: the request body is the value byte for byte, whatever the
// Content-Type, and the Content-Type is kept as a header.
func TestRawBody(t *testing.T) {
	tests := []struct {
		name, contentType string
		body              []byte
	}{
		{"form", "application/x-www-form-urlencoded", []byte("a=1&b=%20x+y&a=2")},
		{"json", "application/json", []byte(`{"event":"signup","id":42}` + "\n")},
		{"octet-stream", "application/octet-stream", []byte{0xde, 0xad, 0xbe, 0xef}},
		{"binary with NULs", "application/octet-stream", []byte{0, 0, 'x', 0, 0xff, 0}},
		{"no content type", "", []byte("plain")},
		{"empty", "text/plain", []byte{}},
	}
	h := newHarness(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			if tt.contentType != "" {
				header.Set("Content-Type", tt.contentType)
			}
			r := h.rawPost(t, "/v1/topics/events", tt.body, header)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			call := h.pub.onlyCall(t)
			if call.topic != "events" || len(call.records) != 1 {
				t.Fatalf("publisher got %+v", call)
			}
			rec := call.records[0]
			checkBytes(t, "value", rec.Value, tt.body)
			checkBytes(t, "key", rec.Key, nil)
			var want []bridge.Header
			if tt.contentType != "" {
				want = []bridge.Header{{Key: "content-type", Value: []byte(tt.contentType)}}
			}
			checkHeaders(t, rec.Headers, want)
		})
	}

	t.Run("form with method override", func(t *testing.T) {
		// grpc-gateway parses form bodies when X-HTTP-Method-Override is
		// set; the raw endpoint must still get the body untouched.
		body := []byte("a=1&b=2")
		r := h.rawPost(t, "/v1/topics/events", body, http.Header{
			"Content-Type":           {"application/x-www-form-urlencoded"},
			"X-Http-Method-Override": {"POST"},
		})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		checkBytes(t, "value", h.pub.onlyCall(t).records[0].Value, body)
	})
}

func TestRawQuery(t *testing.T) {
	h := newHarness(t)
	t.Run("key and partition", func(t *testing.T) {
		r := h.rawPost(t, "/v1/topics/t?key=user%2F42&partition=0", []byte("v"), nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		rec := h.pub.onlyCall(t).records[0]
		checkBytes(t, "key", rec.Key, []byte("user/42"))
		if !rec.HasPartition || rec.Partition != 0 {
			t.Errorf("partition = %d (HasPartition %v), want explicit 0", rec.Partition, rec.HasPartition)
		}
	})
	t.Run("empty key", func(t *testing.T) {
		if r := h.rawPost(t, "/v1/topics/t?key=", []byte("v"), nil); r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		checkBytes(t, "key", h.pub.onlyCall(t).records[0].Key, []byte{})
	})
	tests := []struct {
		name, query, contains string
	}{
		{"unknown parameter", "?kye=1", `"kye"`},
		{"bad partition", "?partition=one", "partition"},
		{"partition out of range", "?partition=4294967296", "partition"},
		{"malformed key", "?key=a%zz", "%zz"},
		{"semicolon", "?key=a;b", "semicolon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.rawPost(t, "/v1/topics/t"+tt.query, []byte("v"), nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", r.status, r.body)
			}
			if e := decodeError(t, r); !strings.Contains(e.Message, tt.contains) {
				t.Errorf("message %q does not contain %q", e.Message, tt.contains)
			}
			if n := len(h.pub.takeCalls()); n != 0 {
				t.Errorf("publisher got %d calls", n)
			}
		})
	}
}

// TestRawHeaders: Kafka-Header-*, ce-* and trace context become record
// headers; names and values are percent-decoded.
func TestRawHeaders(t *testing.T) {
	h := newHarness(t)
	header := http.Header{}
	header.Set("Content-Type", "application/json; charset=utf-8")
	header.Add("Kafka-Header-X-Foo", "bar")
	header.Add("Kafka-Header-Repeat", "1")
	header.Add("Kafka-Header-Repeat", "2")
	header.Add("Kafka-Header-Repeat", "3")
	header.Add("Kafka-Header-Bin", "%00%ff%25 +")
	header.Add("Kafka-Header-Odd%25Name%3a", "x")
	header.Add("Ce-Id", "id-1")
	header.Add("Ce-Source", "%2Fmyapp")
	header.Add("Ce-Type", "com.example.signup")
	header.Add("Ce-Specversion", "1.0")
	header.Add("Traceparent", traceparent)
	header.Add("Tracestate", tracestate)
	header.Add("X-Unrelated", "dropped")

	r := h.rawPost(t, "/v1/topics/t", []byte("{}"), header)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	// content-type first, then the request headers by name, each name's
	// values in request order, then the trace context.
	want := []bridge.Header{
		{Key: "content-type", Value: []byte("application/json; charset=utf-8")},
		{Key: "ce_id", Value: []byte("id-1")},
		{Key: "ce_source", Value: []byte("/myapp")},
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_type", Value: []byte("com.example.signup")},
		{Key: "bin", Value: []byte{0, 0xff, '%', ' ', '+'}},
		{Key: "odd%name:", Value: []byte("x")},
		{Key: "repeat", Value: []byte("1")},
		{Key: "repeat", Value: []byte("2")},
		{Key: "repeat", Value: []byte("3")},
		{Key: "x-foo", Value: []byte("bar")},
		{Key: "traceparent", Value: []byte(traceparent)},
		{Key: "tracestate", Value: []byte(tracestate)},
	}
	checkHeaders(t, h.pub.onlyCall(t).records[0].Headers, want)

	t.Run("own traceparent header", func(t *testing.T) {
		r := h.rawPost(t, "/v1/topics/t", nil, http.Header{"Kafka-Header-Traceparent": {"own"}, "Traceparent": {traceparent}})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		checkHeaders(t, h.pub.onlyCall(t).records[0].Headers, []bridge.Header{{Key: "traceparent", Value: []byte("own")}})
	})

	for name, hd := range map[string]http.Header{
		"malformed value": {"Kafka-Header-X": {"50%zz"}},
		"lone percent":    {"Kafka-Header-X": {"100%"}},
		"malformed name":  {"Kafka-Header-X%zz": {"v"}},
		"malformed ce":    {"Ce-Id": {"%g0"}},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.rawPost(t, "/v1/topics/t", []byte("v"), hd)
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", r.status, r.body)
			}
			if e := decodeError(t, r); !strings.Contains(e.Message, "percent-encoding") {
				t.Errorf("message %q does not explain the encoding", e.Message)
			}
			if n := len(h.pub.takeCalls()); n != 0 {
				t.Errorf("publisher got %d calls", n)
			}
		})
	}
}

// TestRawHeaderWithoutName: "Kafka-Header-" alone names no header; it is
// refused rather than silently dropped.
func TestRawHeaderWithoutName(t *testing.T) {
	h := newHarness(t)
	r := h.rawPost(t, "/v1/topics/t", []byte("v"), http.Header{"Kafka-Header-": {"v"}})
	if r.status != http.StatusBadRequest || !strings.Contains(decodeError(t, r).Message, "Kafka-Header-<name>") {
		t.Errorf("status %d %s, want 400 explaining Kafka-Header-<name>", r.status, r.body)
	}
	if n := len(h.pub.takeCalls()); n != 0 {
		t.Errorf("publisher got %d calls", n)
	}
}

func TestRawResponse(t *testing.T) {
	h := newHarness(t)
	r := h.rawPost(t, "/v1/topics/t?partition=5", []byte("v"), nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var resp struct {
		Results []struct {
			Partition *int32  `json:"partition"`
			Offset    *string `json:"offset"`
		} `json:"results"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
	if len(resp.Results) != 1 || resp.Results[0].Partition == nil || *resp.Results[0].Partition != 5 ||
		resp.Results[0].Offset == nil || *resp.Results[0].Offset != "0" {
		t.Errorf("response = %s, want partition 5 and offset 0", r.body)
	}

	h.pub.failWith(bridge.ErrBufferFull)
	r = h.rawPost(t, "/v1/topics/t", []byte("v"), nil)
	if r.status != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429 for a full buffer: %s", r.status, r.body)
	}
	decodeError(t, r)
}

// TestRawBodyLimit: the raw body is limited like the JSON one: 413, never
// 429, even when the body is within the limit but the record built from it
// (body plus headers) is not.
func TestRawBodyLimit(t *testing.T) {
	h := newHarness(t)
	over := bytes.Repeat([]byte{'x'}, testMaxRequestBytes+1)
	if r := h.rawPost(t, "/v1/topics/t", over, nil); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length: status %d, want 413: %s", r.status, r.body)
	}
	r := h.do(t, http.MethodPost, "/v1/topics/t", io.MultiReader(bytes.NewReader(over)), http.Header{})
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: status %d, want 413: %s", r.status, r.body)
	}
	decodeError(t, r)

	atLimit := bytes.Repeat([]byte{'x'}, testMaxRequestBytes)
	r = h.rawPost(t, "/v1/topics/t", atLimit, http.Header{"Content-Type": {"application/octet-stream"}})
	if r.status == http.StatusTooManyRequests || r.status >= 500 {
		t.Errorf("body of exactly the limit: status %d, want 2xx, 400 or 413 (never 429): %s", r.status, r.body)
	}
	if r.status != http.StatusOK {
		decodeError(t, r)
	}
}
