package bridge

import (
	"bufio"
	"bytes"
	"cmp"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// FuzzWebhookRequest builds requests from arbitrary keys, values, header
// names and values, and checks the contract's invariants:
//   - any record yields a request, without error;
//   - every header name and value is one Go's client sends unchanged (valid
//     per httpguts, no surrounding whitespace);
//   - plain percent-decoding gives back the key (absent exactly for a null
//     key), Idempotency-Key and every record header, each name's values in
//     record order, in the role the contract gives it: Content-Type or trace
//     context verbatim for the last usable one, ce-<attr> in a CloudEvent,
//     Kafka-Header-<name> otherwise; and no header appears that the record
//     did not cause;
//   - written to the wire and parsed back by net/http, every header value
//     and the body arrive unchanged.
func FuzzWebhookRequest(f *testing.F) {
	f.Add([]byte("k"), false, []byte(`{"a":1}`), "x", []byte("y"), "content-type", []byte("application/json"), uint8(0), "g", "")
	f.Add([]byte{}, false, []byte{}, "", []byte(""), " ", []byte(" "), uint8(15), "my group", "t y")
	f.Add([]byte(nil), true, []byte(nil), "ce_subject", []byte(`"a" %+`), "traceparent", []byte("00-ab-cd-01"), uint8(15), "g", "")
	f.Add([]byte("\x00\r\n\xff %+ "), false, []byte("\x00\xff"), "n\x00:é%", []byte("\r\n "), "tracestate", []byte("\x00"), uint8(7), "g+%", "\n")
	f.Add([]byte(" "), false, []byte(" "), "ce_", []byte("  "), "CE_ID", []byte("x"), uint8(14), "g", "kbridge.record")
	f.Add([]byte("k"), false, []byte("v"), "content-type", []byte("a/b"), "tracestate", []byte("c/d"), uint8(0), "g", "")
	f.Add([]byte("k"), false, []byte("v"), "traceparent", []byte("00-ab-cd-01"), "traceparent", []byte("\n"), uint8(0), "g", "")
	f.Fuzz(func(t *testing.T, key []byte, nullKey bool, value []byte, name1 string, value1 []byte,
		name2 string, value2 []byte, ceMask uint8, group, ceType string) {
		if nullKey {
			key = nil
		}
		if group == "" {
			group = "g"
		}
		rec := &kgo.Record{
			Topic: "fuzz", Partition: 1, Offset: 7, Key: key, Value: value,
			Timestamp: time.UnixMilli(1700000000123),
			Headers: []kgo.RecordHeader{
				{Key: name1, Value: value1}, {Key: name2, Value: value2}, {Key: name1, Value: value2},
			},
		}
		for i, ce := range []string{"ce_id", "ce_source", "ce_type", "ce_specversion"} {
			if ceMask&(1<<i) != 0 {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: ce, Value: []byte(ce + "-value")})
			}
		}
		s := WebhookRequestSettings{Group: group, CloudEventType: ceType}
		req, err := NewWebhookRequest(t.Context(), "http://app/hook", rec, 1, s)
		if err != nil {
			t.Fatalf("NewWebhookRequest: %v", err)
		}
		checkValidHeader(t, req.Header)
		checkDecodes(t, req.Header, rec, s)
		checkWire(t, req, rec.Value)
	})
}

// checkDecodes compares the decoded request with a reference model of the
// contract, written per record header name rather than per header.
func checkDecodes(t *testing.T, h http.Header, rec *kgo.Record, s WebhookRequestSettings) {
	t.Helper()
	unescape := func(what, v string) string {
		d, err := url.PathUnescape(v)
		if err != nil {
			t.Fatalf("%s: PathUnescape(%q): %v", what, v, err)
		}
		return d
	}
	if vs, ok := h["Kafka-Key"]; ok != (rec.Key != nil) || ok && unescape("Kafka-Key", vs[0]) != string(rec.Key) {
		t.Errorf("Kafka-Key = %q (present %v), want %q (present %v)", vs, ok, rec.Key, rec.Key != nil)
	}
	if got, want := unescape("Idempotency-Key", h["Idempotency-Key"][0]), s.Group+"/fuzz/1/7"; got != want {
		t.Errorf("Idempotency-Key decodes to %q, want %q", got, want)
	}

	// The model: per name, values in record order.
	values := map[string][]string{}
	var names []string
	cloudEvent := true
	for _, rh := range rec.Headers {
		if _, ok := values[rh.Key]; !ok {
			names = append(names, rh.Key)
		}
		values[rh.Key] = append(values[rh.Key], string(rh.Value))
	}
	for _, required := range []string{"ce_id", "ce_source", "ce_type", "ce_specversion"} {
		_, ok := values[required]
		cloudEvent = cloudEvent && ok
	}
	roles := map[string]string{"content-type": "Content-Type", "traceparent": "traceparent", "tracestate": "tracestate"}
	seen := 0 // record headers the model expects in the request
	contentType := cmp.Or(s.DefaultContentType, DefaultWebhookContentType)
	for _, name := range names {
		vs := values[name]
		if role, ok := roles[name]; ok {
			last := vs[len(vs)-1]
			if trimmed := strings.Trim(last, " "); trimmed != "" && isPrintableASCII(last) {
				if got := h[role]; !slices.Equal(got, []string{trimmed}) {
					t.Errorf("%s = %q, want [%q]", role, got, trimmed)
				}
				if role == "Content-Type" {
					contentType = trimmed
				}
				vs, seen = vs[:len(vs)-1], seen+1
			}
		}
		if len(vs) == 0 {
			continue
		}
		prefix, suffix := "Kafka-Header-", name
		if rest, ok := strings.CutPrefix(name, "ce_"); ok && cloudEvent && rest != "" {
			prefix, suffix = "ce-", rest
		}
		httpName := prefix + EncodeHeaderName(suffix)
		if got := unescape("name", httpName[len(prefix):]); got != suffix {
			t.Errorf("header name %q decodes to %q, want %q", httpName, got, suffix)
		}
		var decoded []string
		for _, v := range h[httpName] {
			decoded = append(decoded, unescape(httpName, v))
		}
		if !slices.Equal(decoded, vs) {
			t.Errorf("%s decodes to %q, want %q", httpName, decoded, vs)
		}
		seen += len(vs)
	}
	if got := h["Content-Type"]; !slices.Equal(got, []string{contentType}) {
		t.Errorf("Content-Type = %q, want [%q]", got, contentType)
	}

	// Nothing else: every Kafka-Header-*, and every ce-* of a CloudEvent,
	// stands for a record header.
	sent := 0
	for name, vs := range h {
		if strings.HasPrefix(name, "Kafka-Header-") || cloudEvent && strings.HasPrefix(name, "ce-") {
			sent += len(vs)
		}
	}
	for _, role := range []string{"traceparent", "tracestate"} {
		if _, ok := h[role]; ok {
			sent++
		}
	}
	if vs := values["content-type"]; len(vs) > 0 {
		if last := vs[len(vs)-1]; strings.Trim(last, " ") != "" && isPrintableASCII(last) {
			sent++
		}
	}
	if sent != seen || seen != len(rec.Headers) {
		t.Errorf("request carries %d record headers, the model found %d, the record has %d", sent, seen, len(rec.Headers))
	}
	if !cloudEvent {
		want := s.CloudEventType
		if want == "" {
			want = DefaultCloudEventType
		}
		//lint:ignore SA1008 kbridge writes ce-* in lower case on purpose (the CloudEvents spelling), bypassing canonicalization
		if got := unescape("ce-type", h["ce-type"][0]); got != want {
			t.Errorf("ce-type decodes to %q, want %q", got, want)
		}
	}
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// checkWire writes the request as Go's client does and parses it back as
// Go's server does: each canonical name carries the same values (as a
// multiset: names differing only in case merge), and the body arrives whole.
func checkWire(t *testing.T, req *http.Request, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatalf("write request: %v", err)
	}
	parsed, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatalf("read request back: %v", err)
	}
	want := map[string][]string{}
	for name, vs := range req.Header {
		c := textproto.CanonicalMIMEHeaderKey(name)
		want[c] = append(want[c], vs...)
	}
	for name, vs := range want {
		got := slices.Clone(parsed.Header[name])
		slices.Sort(got)
		slices.Sort(vs)
		if !slices.Equal(got, vs) {
			t.Errorf("%s arrives as %q, want %q", name, got, vs)
		}
	}
	if got, err := io.ReadAll(parsed.Body); err != nil || !bytes.Equal(got, body) {
		t.Errorf("body arrives as %q, %v; want %q", got, err, body)
	}
	if parsed.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, want %d (%s)", parsed.ContentLength, len(body), strconv.Quote(parsed.Header.Get("Transfer-Encoding")))
	}
}
