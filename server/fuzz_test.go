package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pctEncode is the webhook's value encoding (DESIGN, "The webhook
// contract"): every byte outside 0x20–0x7E, and '%' and '+', as %XX.
func pctEncode(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '%' || c == '+' {
			fmt.Fprintf(&sb, "%%%02X", c)
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// FuzzRawHeaders feeds one arbitrary request header to rawHeaders.
//
// Invariants: it never panics; one request header value gives at most one
// record header; and when it succeeds, a Kafka-Header-* or ce-* value
// round-trips: encoding the decoded bytes as the webhook does yields a
// header value (printable ASCII only) that decodes to the same bytes, so
// what kbridge delivers can be published back unchanged.
func FuzzRawHeaders(f *testing.F) {
	f.Add("Kafka-Header-X-Foo", "bar")
	f.Add("Kafka-Header-Bin", "%00%ff%25%2B+ x")
	f.Add("Kafka-Header-Odd%25Name", "%")
	f.Add("Kafka-Header-", "x")
	f.Add("kafka-header-lower", "%zz")
	f.Add("Ce-Id", "%E2%82%AC")
	f.Add("Ce-", "x")
	f.Add("Content-Type", "application/json")
	f.Add("X-Other", "\x00\r\n")
	f.Fuzz(func(t *testing.T, name, value string) {
		in := http.Header{}
		in.Add(name, value) // canonicalizes the name as net/http's server does
		out, err := rawHeaders(in)
		if err != nil {
			return
		}
		if len(out) > 1 {
			t.Fatalf("one header %q: %q gave %d record headers", name, value, len(out))
		}
		var canonical string
		for k := range in {
			canonical = k
		}
		lower := strings.ToLower(canonical)
		if len(out) == 0 || !(strings.HasPrefix(lower, kafkaHeaderPrefix) || strings.HasPrefix(lower, "ce-")) {
			return
		}
		decoded := out[0].Value
		encoded := pctEncode(decoded)
		for i := 0; i < len(encoded); i++ {
			if c := encoded[i]; c < 0x20 || c > 0x7e {
				t.Fatalf("encoding of %q has byte %#x, not valid in a header value", decoded, c)
			}
		}
		again, err := rawHeaders(http.Header{canonical: {encoded}})
		if err != nil {
			t.Fatalf("re-encoded value %q refused: %v", encoded, err)
		}
		if len(again) != 1 || again[0].Key != out[0].Key || !bytes.Equal(again[0].Value, decoded) {
			t.Fatalf("round trip of %q: %q => %q => %v, want %s=%q", canonical, value, encoded, again, out[0].Key, decoded)
		}
	})
}

// FuzzRESTBody posts arbitrary bytes as the JSON body of a publish.
//
// Invariants: never a 5xx and never a panic; every answer is JSON; a request
// reaches the publisher at most once, for the path's topic, with records
// the API allows (no timestamp before 1970); and the answer is 200
// exactly when a non-empty request reached it, with one result per record.
func FuzzRESTBody(f *testing.F) {
	for _, seed := range []string{
		oneRecordJSON,
		`{"records":[{"key":"42","value":"{\"a\":1}","headers":[{"key":"h","value":"AAE="}],"partition":0,"timestamp":"2024-01-01T00:00:00Z"}]}`,
		`{"records":[{"key_bytes":"","value_bytes":"AA=="},{}]}`,
		`{"topic":"other","records":[{"value":"x"}]}`,
		`{"records":[{"key":"a","key_bytes":"YQ=="}]}`,
		`{"records":[{"timestamp":"1969-12-31T23:59:59Z"}]}`,
		`{"records":[null]}`,
		`{"records":[{"headers":[null]}]}`,
		`{"records":[]}`,
		`{"vaule":1}`,
		``,
		`{`,
		"\xff",
	} {
		f.Add([]byte(seed))
	}
	h := newHarness(f)
	epoch := time.Unix(0, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := h.do(t, http.MethodPost, "/v1/topics/t/records", bytes.NewReader(body), nil)
		if r.status >= 500 {
			t.Fatalf("status %d for %q: %s", r.status, body, r.body)
		}
		if !json.Valid(r.body) {
			t.Fatalf("answer is not JSON: %q", r.body)
		}
		calls := h.pub.takeCalls()
		if len(calls) > 1 {
			t.Fatalf("one request reached the publisher %d times", len(calls))
		}
		if len(calls) == 0 {
			if r.status == http.StatusOK {
				t.Fatalf("200 without reaching the publisher: %s", r.body)
			}
			return
		}
		c := calls[0]
		if c.topic != "t" {
			t.Fatalf("publisher got topic %q, want the path's", c.topic)
		}
		for i, rec := range c.records {
			if !rec.Timestamp.IsZero() && rec.Timestamp.Before(epoch) {
				t.Fatalf("record %d has timestamp %v before 1970", i, rec.Timestamp)
			}
		}
		if wantOK := len(c.records) > 0; (r.status == http.StatusOK) != wantOK {
			t.Fatalf("status %d for %d records: %s", r.status, len(c.records), r.body)
		}
		if r.status == http.StatusOK {
			if n := len(decodeResults(t, r)); n != len(c.records) {
				t.Fatalf("%d results for %d records", n, len(c.records))
			}
		}
	})
}
