package bridge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/net/http/httpguts"
)

// testRecord is a consumed record without headers: orders/3/42, a create
// timestamp with milliseconds, a null key and a JSON value.
func testRecord() *kgo.Record {
	return &kgo.Record{
		Topic:     "orders",
		Partition: 3,
		Offset:    42,
		Timestamp: time.UnixMilli(1700000000123), // 2023-11-14T22:13:20.123Z
		Value:     []byte(`{"a":1}`),
	}
}

func headers(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

// checkValidHeader fails unless Go's client would send every header as it
// is: a valid name, a valid value, and no surrounding space or tab that HTTP
// would strip.
func checkValidHeader(t testing.TB, h http.Header) {
	t.Helper()
	for name, values := range h {
		if !httpguts.ValidHeaderFieldName(name) {
			t.Errorf("invalid header name %q", name)
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				t.Errorf("header %s: invalid value %q", name, v)
			}
			if v != strings.Trim(v, " \t") {
				t.Errorf("header %s: value %q would lose surrounding whitespace", name, v)
			}
		}
	}
}

// TestNewWebhookRequestBaseHeaders pins the complete header set of a plain
// record: nothing more, nothing less.
func TestNewWebhookRequestBaseHeaders(t *testing.T) {
	req, err := NewWebhookRequest(t.Context(), "http://app/hook", testRecord(), 1, WebhookRequestSettings{Group: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"Content-Type":         {"application/octet-stream"},
		"ce-specversion":       {"1.0"},
		"ce-id":                {"orders/3/42"},
		"ce-source":            {"kafka:orders"},
		"ce-type":              {"kbridge.record"},
		"ce-time":              {"2023-11-14T22:13:20.123Z"},
		"Idempotency-Key":      {"billing/orders/3/42"},
		"Kafka-Topic":          {"orders"},
		"Kafka-Partition":      {"3"},
		"Kafka-Offset":         {"42"},
		"Kafka-Timestamp":      {"1700000000123"},
		"Kafka-Timestamp-Type": {"create"},
		"Delivery-Attempt":     {"1"},
	}
	if !reflect.DeepEqual(req.Header, want) {
		t.Errorf("headers:\n got %v\nwant %v", req.Header, want)
	}
	if req.Method != http.MethodPost || req.URL.String() != "http://app/hook" {
		t.Errorf("request line = %s %s, want POST http://app/hook", req.Method, req.URL)
	}
}

// TestNewWebhookRequestHeaders covers each row of DESIGN.md's webhook table
// and the decisions taken where it is silent. want holds exact map entries
// (raw keys, as sent); absent holds raw keys that must not be there.
func TestNewWebhookRequestHeaders(t *testing.T) {
	tests := []struct {
		name     string
		rec      func(*kgo.Record)
		settings func(*WebhookRequestSettings)
		attempt  int
		want     http.Header
		absent   []string
	}{
		{
			name:   "null key: no Kafka-Key",
			absent: []string{"Kafka-Key"},
		},
		{
			name: "empty key: empty Kafka-Key",
			rec:  func(r *kgo.Record) { r.Key = []byte{} },
			want: http.Header{"Kafka-Key": {""}},
		},
		{
			name: "binary key is percent-encoded",
			rec:  func(r *kgo.Record) { r.Key = []byte("\x00a b%+\xff\r\n~") },
			want: http.Header{"Kafka-Key": {"%00a b%25%2B%FF%0D%0A~"}},
		},
		{
			name: "spaces at the ends of a key are encoded, inner ones not",
			rec:  func(r *kgo.Record) { r.Key = []byte("  a b  ") },
			want: http.Header{"Kafka-Key": {"%20 a b %20"}},
		},
		{
			name:   "content-type from the record",
			rec:    func(r *kgo.Record) { r.Headers = headers("content-type", "application/json") },
			want:   http.Header{"Content-Type": {"application/json"}},
			absent: []string{"Kafka-Header-content-type"},
		},
		{
			name: "content-type is verbatim, '+' included, surrounding spaces trimmed",
			rec: func(r *kgo.Record) {
				r.Headers = headers("content-type", " application/cloudevents+json; charset=utf-8 ")
			},
			want: http.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}},
		},
		{
			name:     "default content-type from the settings",
			settings: func(s *WebhookRequestSettings) { s.DefaultContentType = "text/plain" },
			want:     http.Header{"Content-Type": {"text/plain"}},
		},
		{
			name: "unusable content-type: default, and the original as Kafka-Header",
			rec:  func(r *kgo.Record) { r.Headers = headers("content-type", "text/plain\r\nX-Evil: 1") },
			want: http.Header{
				"Content-Type":              {"application/octet-stream"},
				"Kafka-Header-content-type": {"text/plain%0D%0AX-Evil: 1"},
			},
			absent: []string{"X-Evil"},
		},
		{
			name: "blank content-type: default, and the original as Kafka-Header",
			rec:  func(r *kgo.Record) { r.Headers = headers("content-type", "") },
			want: http.Header{"Content-Type": {"application/octet-stream"}, "Kafka-Header-content-type": {""}},
		},
		{
			name: "repeated content-type: the last wins, the others as Kafka-Header",
			rec: func(r *kgo.Record) {
				r.Headers = headers("content-type", "a/b", "content-type", "c/d", "content-type", "e/f")
			},
			want: http.Header{"Content-Type": {"e/f"}, "Kafka-Header-content-type": {"a/b", "c/d"}},
		},
		{
			name: "Content-Type spelled otherwise is an ordinary header",
			rec:  func(r *kgo.Record) { r.Headers = headers("Content-Type", "text/html") },
			want: http.Header{"Content-Type": {"application/octet-stream"}, "Kafka-Header-Content-Type": {"text/html"}},
		},
		{
			name:     "custom CloudEvent type",
			settings: func(s *WebhookRequestSettings) { s.CloudEventType = "com.example.order created" },
			want:     http.Header{"ce-type": {"com.example.order%20created"}},
		},
		{
			name: "whole-second timestamp has no fraction",
			rec:  func(r *kgo.Record) { r.Timestamp = time.UnixMilli(1700000000000).In(time.FixedZone("X", 3600)) },
			want: http.Header{"ce-time": {"2023-11-14T22:13:20Z"}, "Kafka-Timestamp": {"1700000000000"}},
		},
		{
			name:   "no timestamp (-1): Kafka-Timestamp -1, no ce-time",
			rec:    func(r *kgo.Record) { r.Timestamp = time.UnixMilli(-1) },
			want:   http.Header{"Kafka-Timestamp": {"-1"}},
			absent: []string{"ce-time"},
		},
		{
			name: "log-append timestamp",
			rec:  func(r *kgo.Record) { r.Attrs = kgo.NewRecordAttrs(kgo.RecordAttrsOpts{TimestampType: 1}) },
			want: http.Header{"Kafka-Timestamp-Type": {"log-append"}},
		},
		{
			name:   "no timestamp type (pre-0.10 message set): no Kafka-Timestamp-Type",
			rec:    func(r *kgo.Record) { r.Attrs = kgo.NewRecordAttrs(kgo.RecordAttrsOpts{TimestampType: -1}) },
			absent: []string{"Kafka-Timestamp-Type"},
		},
		{
			name: "CloudEvent kept: all its ce_* as ce-*, encoded per the CloudEvents binding",
			rec: func(r *kgo.Record) {
				r.Headers = headers("ce_specversion", "1.0", "ce_id", "abc", "ce_source", "/src/é",
					"ce_type", "t", "ce_subject", `a "b" 100%+`, "ce_My Ext", "x", "other", "y")
			},
			want: http.Header{
				"ce-specversion":     {"1.0"},
				"ce-id":              {"abc"},
				"ce-source":          {"/src/%C3%A9"},
				"ce-type":            {"t"},
				"ce-subject":         {"a%20%22b%22%20100%25%2B"},
				"ce-My%20Ext":        {"x"},
				"Kafka-Header-other": {"y"},
			},
			absent: []string{"ce-time", "Kafka-Header-ce_id", "Kafka-Header-ce_subject"},
		},
		{
			name: "partial CloudEvent: kbridge's attributes; the record's ce_* as Kafka-Header",
			rec: func(r *kgo.Record) {
				r.Headers = headers("ce_id", "x", "ce_source", "y", "ce_type", "z", "ce_foo", "bar")
			},
			want: http.Header{
				"ce-id":                  {"orders/3/42"},
				"ce-source":              {"kafka:orders"},
				"ce-type":                {"kbridge.record"},
				"ce-specversion":         {"1.0"},
				"Kafka-Header-ce_id":     {"x"},
				"Kafka-Header-ce_source": {"y"},
				"Kafka-Header-ce_type":   {"z"},
				"Kafka-Header-ce_foo":    {"bar"},
			},
			absent: []string{"ce-foo"},
		},
		{
			name: "upper-case CE_ID does not make a CloudEvent",
			rec: func(r *kgo.Record) {
				r.Headers = headers("CE_ID", "x", "ce_source", "y", "ce_type", "z", "ce_specversion", "1.0")
			},
			want: http.Header{"ce-id": {"orders/3/42"}, "Kafka-Header-CE_ID": {"x"}, "Kafka-Header-ce_specversion": {"1.0"}},
		},
		{
			name: "a bare ce_ in a CloudEvent is an ordinary header",
			rec: func(r *kgo.Record) {
				r.Headers = headers("ce_specversion", "1.0", "ce_id", "i", "ce_source", "s", "ce_type", "t", "ce_", "v")
			},
			want:   http.Header{"Kafka-Header-ce_": {"v"}},
			absent: []string{"ce-"},
		},
		{
			name: "repeated headers repeat in order",
			rec:  func(r *kgo.Record) { r.Headers = headers("a", "1", "b", "x", "a", "2", "a", "", "a", "3") },
			want: http.Header{"Kafka-Header-a": {"1", "2", "", "3"}, "Kafka-Header-b": {"x"}},
		},
		{
			name:   "header names keep their case",
			rec:    func(r *kgo.Record) { r.Headers = headers("userId", "7", "X-Request-ID", "r") },
			want:   http.Header{"Kafka-Header-userId": {"7"}, "Kafka-Header-X-Request-ID": {"r"}},
			absent: []string{"Kafka-Header-Userid", "Kafka-Header-X-Request-Id"},
		},
		{
			name: "header names are percent-encoded",
			rec:  func(r *kgo.Record) { r.Headers = headers("my key:1%+é\x00", "v") },
			want: http.Header{"Kafka-Header-my%20key%3A1%25%2B%C3%A9%00": {"v"}},
		},
		{
			name: "an empty header name is kept as Kafka-Header-",
			rec:  func(r *kgo.Record) { r.Headers = headers("", "v") },
			want: http.Header{"Kafka-Header-": {"v"}},
		},
		{
			name: "header values are percent-encoded",
			rec:  func(r *kgo.Record) { r.Headers = headers("v", " x\x00\t%+ \"y\" \x7f ") },
			want: http.Header{"Kafka-Header-v": {`%20x%00%09%25%2B "y" %7F%20`}},
		},
		{
			name: "trace context passes verbatim",
			rec: func(r *kgo.Record) {
				r.Headers = headers("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
					"tracestate", "congo=t61rcWkgMzE,vendor=a%2B+b")
			},
			want: http.Header{
				"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
				"tracestate":  {"congo=t61rcWkgMzE,vendor=a%2B+b"},
			},
			absent: []string{"Kafka-Header-traceparent", "Kafka-Header-tracestate"},
		},
		{
			name:   "unusable trace context travels as Kafka-Header",
			rec:    func(r *kgo.Record) { r.Headers = headers("traceparent", "\x00bad", "tracestate", "é") },
			want:   http.Header{"Kafka-Header-traceparent": {"%00bad"}, "Kafka-Header-tracestate": {"%C3%A9"}},
			absent: []string{"traceparent", "tracestate"},
		},
		{
			name: "extra static headers",
			settings: func(s *WebhookRequestSettings) {
				s.ExtraHeaders = http.Header{"Authorization": {"Bearer t"}, "X-Multi": {"1", "2"}}
			},
			want: http.Header{"Authorization": {"Bearer t"}, "X-Multi": {"1", "2"}},
		},
		{
			name:    "Delivery-Attempt",
			attempt: 3,
			want:    http.Header{"Delivery-Attempt": {"3"}},
		},
		{
			name:     "Idempotency-Key is scoped by the group",
			settings: func(s *WebhookRequestSettings) { s.Group = "my group+1" },
			want:     http.Header{"Idempotency-Key": {"my group%2B1/orders/3/42"}},
		},
		{
			name: "an odd topic is encoded everywhere",
			rec:  func(r *kgo.Record) { r.Topic = "t\n" },
			want: http.Header{
				"Kafka-Topic":     {"t%0A"},
				"ce-source":       {"kafka:t%0A"},
				"ce-id":           {"t%0A/3/42"},
				"Idempotency-Key": {"billing/t%0A/3/42"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := testRecord()
			if tt.rec != nil {
				tt.rec(rec)
			}
			s := WebhookRequestSettings{Group: "billing"}
			if tt.settings != nil {
				tt.settings(&s)
			}
			attempt := tt.attempt
			if attempt == 0 {
				attempt = 1
			}
			req, err := NewWebhookRequest(t.Context(), "http://app/hook", rec, attempt, s)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got := req.Header[name]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			for _, name := range tt.absent {
				if got, ok := req.Header[name]; ok {
					t.Errorf("%s = %q, want it absent", name, got)
				}
			}
			checkValidHeader(t, req.Header)
		})
	}
}

func TestNewWebhookRequestBody(t *testing.T) {
	tests := []struct {
		name  string
		value []byte
	}{
		{"null value", nil},
		{"empty value", []byte{}},
		{"JSON", []byte(`{"a":1}`)},
		{"binary", []byte("\x00\r\n\xff%+ ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := testRecord()
			rec.Value = tt.value
			req, err := NewWebhookRequest(t.Context(), "http://app/hook", rec, 1, WebhookRequestSettings{Group: "g"})
			if err != nil {
				t.Fatal(err)
			}
			if req.ContentLength != int64(len(tt.value)) {
				t.Errorf("ContentLength = %d, want %d", req.ContentLength, len(tt.value))
			}
			if len(tt.value) == 0 && req.Body != http.NoBody {
				t.Errorf("Body = %T, want http.NoBody", req.Body)
			}
			if req.GetBody != nil {
				t.Error("GetBody is set; Go's Transport could replay the request")
			}
			got, err := io.ReadAll(req.Body)
			if err != nil || !bytes.Equal(got, tt.value) {
				t.Errorf("body = %q, %v; want %q", got, err, tt.value)
			}
		})
	}
}

func TestNewWebhookRequestErrors(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		rec      *kgo.Record
		attempt  int
		settings WebhookRequestSettings
		want     string
	}{
		{"nil record", "http://app/", nil, 1, WebhookRequestSettings{Group: "g"}, "nil record"},
		{"attempt 0", "http://app/", testRecord(), 0, WebhookRequestSettings{Group: "g"}, "attempt 0"},
		{"bad url", "http://a b/\x7f", testRecord(), 1, WebhookRequestSettings{Group: "g"}, "invalid"},
		{"no group", "http://app/", testRecord(), 1, WebhookRequestSettings{}, "group: required"},
		{
			"reserved extra header", "http://app/", testRecord(), 1,
			WebhookRequestSettings{Group: "g", ExtraHeaders: http.Header{"idempotency-KEY": {"x"}}}, "reserved",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := NewWebhookRequest(t.Context(), tt.url, tt.rec, tt.attempt, tt.settings)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewWebhookRequest = %v, %v; want an error containing %q", req, err, tt.want)
			}
		})
	}
}

// TestWebhookRequestSettingsValidate: every problem is reported at once,
// and each names what is wrong.
func TestWebhookRequestSettingsValidate(t *testing.T) {
	s := WebhookRequestSettings{
		DefaultContentType: "text/plain\n",
		ExtraHeaders: http.Header{
			"Bad Name":          {"x"},
			"":                  {"x"},
			"X-Ctl":             {"a\x00b"},
			"Content-Type":      {"x"},
			"kafka-topic":       {"x"},
			"Ce-Id":             {"x"},
			"Traceparent":       {"x"},
			"Transfer-Encoding": {"chunked"},
		},
	}
	err := s.Validate()
	if err == nil {
		t.Fatal("Validate = nil, want errors")
	}
	for _, want := range []string{
		"group: required", "default content type", `"Bad Name": not a valid header name`, `"": not a valid`,
		"X-Ctl: control byte 0x00", "Content-Type: kbridge sets it", "kafka-topic: kbridge sets it",
		"Ce-Id: kbridge sets it", "Traceparent: kbridge sets it", "Transfer-Encoding: kbridge sets it",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to contain %q", err, want)
		}
	}
	ok := WebhookRequestSettings{Group: "g", ExtraHeaders: http.Header{"Authorization": {"Bearer a\tb"}, "X-Kbridge": {""}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%v) = %v, want nil", ok, err)
	}
}

func TestEncodeHeaderName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"X-Foo_bar.baz", "X-Foo_bar.baz"},
		{"!#$&'*-.^_`|~09azAZ", "!#$&'*-.^_`|~09azAZ"},
		{"%", "%25"},
		{"+", "%2B"},
		{"a b:c", "a%20b%3Ac"},
		{" lead", "%20lead"},
		{"é", "%C3%A9"},
		{"\x00\r\n\t\x7f\xff", "%00%0D%0A%09%7F%FF"},
		{`"(),/;<=>?@[\]{}`, "%22%28%29%2C%2F%3B%3C%3D%3E%3F%40%5B%5C%5D%7B%7D"},
	}
	for _, tt := range tests {
		if got := EncodeHeaderName(tt.in); got != tt.want {
			t.Errorf("EncodeHeaderName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEncodeHeaderValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text, (with) \"quotes\"; & such~", "plain text, (with) \"quotes\"; & such~"},
		{"100%", "100%25"},
		{"a+b", "a%2Bb"},
		{" ", "%20"},
		{"  ", "%20%20"},
		{"   ", "%20 %20"},
		{" a ", "%20a%20"},
		{"a b", "a b"},
		{"\ta\t", "%09a%09"},
		{"\x00\r\n\x7f\x80\xff", "%00%0D%0A%7F%80%FF"},
		{"日本", "%E6%97%A5%E6%9C%AC"},
	}
	for _, tt := range tests {
		if got := EncodeHeaderValue([]byte(tt.in)); got != tt.want {
			t.Errorf("EncodeHeaderValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestEncodeHeaderEveryByte: each byte alone, and all 256 in one string,
// encode to something valid that plain percent-decoding turns back into the
// original, and no byte is written %XX when the contract keeps it literal.
func TestEncodeHeaderEveryByte(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
		for _, in := range [][]byte{{byte(c)}, {'a', byte(c), 'a'}} {
			checkRoundTrip(t, in)
		}
		inner := []byte{'a', byte(c), 'a'}
		wantLiteral := 0x20 <= c && c <= 0x7E && c != '%' && c != '+'
		if got := EncodeHeaderValue(inner) == string(inner); got != wantLiteral {
			t.Errorf("byte 0x%02X inside a value: literal = %v, want %v", c, got, wantLiteral)
		}
	}
	checkRoundTrip(t, all)
}

func checkRoundTrip(t *testing.T, in []byte) {
	t.Helper()
	name, value := EncodeHeaderName(string(in)), EncodeHeaderValue(in)
	if !httpguts.ValidHeaderFieldName("Kafka-Header-"+name) || !httpguts.ValidHeaderFieldValue(value) ||
		value != strings.Trim(value, " \t") {
		t.Errorf("encoding of %q is not a valid header: name %q, value %q", in, name, value)
	}
	for _, enc := range []string{name, value} {
		if dec, err := url.PathUnescape(enc); err != nil || dec != string(in) {
			t.Errorf("PathUnescape(%q) = %q, %v; want %q", enc, dec, err, in)
		}
	}
}

// trickyRecords are records whose keys, values and headers hold everything
// HTTP cannot carry as it is. No two header names of one record differ only
// in case: HTTP receivers fold case, so those would merge.
func trickyRecords() []*kgo.Record {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	recs := []*kgo.Record{
		{
			Key:   []byte("\x00key\r\n\xff %+ "),
			Value: all,
			Headers: headers(
				"name with space", "\r\n",
				"colon:name", "%+",
				"ünïcödé", "日本語",
				"tab\tname", " lead",
				"trail ", "trail ",
				"nul\x00", "\x00",
				"", "empty name",
				"dup", "1", "dup", " 2 ", "dup", "", "dup", "%41",
				"\xff\xfe", "\xc3\x28",
				string(all), string(all),
				"content-type", "application/vnd.api+json",
			),
		},
		{Key: []byte{}, Value: []byte{}, Headers: headers("empty", "")},
		{Key: nil, Value: nil},
		{Key: []byte("   "), Value: []byte(" "), Headers: headers(" ", " ", "  ", "  ")},
		{
			Key: []byte("k"), Value: []byte(`{"a":1}`),
			Headers: headers("ce_specversion", "1.0", "ce_id", "id 1", "ce_source", "/src/é", "ce_type", "t",
				"ce_subject", `"quoted" 100%+`, "ce_time", "2024-01-02T03:04:05Z", "x", "y"),
		},
	}
	for i, r := range recs {
		r.Topic, r.Partition, r.Offset, r.Timestamp = "tricky", int32(i), int64(1000+i), time.UnixMilli(1700000000123)
	}
	return recs
}

// delivered is what a webhook decodes from one request: the record's key,
// value and headers, by lower-cased name (receivers fold name case).
type delivered struct {
	key            []byte
	keyPresent     bool
	value          []byte
	headers        map[string][]string
	idempotencyKey string
	contentType    string
	err            error
}

// decodeDelivery is what an app does with a webhook request: plain
// percent-decoding of Kafka-Key, Kafka-Header-* and, for a CloudEvent,
// ce-* (which it turns back into ce_*).
func decodeDelivery(r *http.Request, cloudEvent bool) delivered {
	d := delivered{headers: map[string][]string{}, contentType: r.Header.Get("Content-Type")}
	var err error
	if d.value, err = io.ReadAll(r.Body); err != nil {
		return delivered{err: err}
	}
	if vs, ok := r.Header["Kafka-Key"]; ok {
		k, err := url.PathUnescape(vs[0])
		if err != nil {
			return delivered{err: err}
		}
		d.key, d.keyPresent = []byte(k), true
	}
	if d.idempotencyKey, err = url.PathUnescape(r.Header.Get("Idempotency-Key")); err != nil {
		return delivered{err: err}
	}
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		var recordName string
		switch {
		case strings.HasPrefix(lower, "kafka-header-"):
			recordName = lower[len("kafka-header-"):]
		case cloudEvent && strings.HasPrefix(lower, "ce-"):
			recordName = "ce_" + lower[len("ce-"):]
		default:
			continue
		}
		n, err := url.PathUnescape(recordName)
		if err != nil {
			return delivered{err: fmt.Errorf("name %q: %w", name, err)}
		}
		for _, v := range values {
			dv, err := url.PathUnescape(v)
			if err != nil {
				return delivered{err: fmt.Errorf("%s: value %q: %w", name, v, err)}
			}
			d.headers[n] = append(d.headers[n], dv)
		}
	}
	return d
}

// wantDelivery is what the app must decode from rec: its headers by
// lower-cased name in order, except a usable content-type, which is
// Content-Type.
func wantDelivery(rec *kgo.Record) map[string][]string {
	want := map[string][]string{}
	for _, h := range rec.Headers {
		if h.Key == "content-type" {
			continue
		}
		want[asciiLower(h.Key)] = append(want[asciiLower(h.Key)], string(h.Value))
	}
	return want
}

// asciiLower lower-cases ASCII letters only, as HTTP name folding does;
// strings.ToLower would also rewrite invalid UTF-8.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// TestWebhookRequestEndToEnd sends tricky records with Go's default client
// to a real HTTP server: none is refused by the client, and percent-decoding
// what the server received gives back exactly the original bytes.
func TestWebhookRequestEndToEnd(t *testing.T) {
	type received struct {
		d   delivered
		req *http.Request
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, cloudEvent := r.Header["Ce-Source"]
		cloudEvent = cloudEvent && !strings.HasPrefix(r.Header.Get("Ce-Source"), "kafka:")
		got <- received{decodeDelivery(r, cloudEvent), r}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	for i, rec := range trickyRecords() {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			req, err := NewWebhookRequest(t.Context(), srv.URL+"/hook", rec, 2, WebhookRequestSettings{Group: "g"})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("client refused or failed the request: %v", err)
			}
			resp.Body.Close()
			r := <-got // the handler ran: it answers only after sending
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d, want 204", resp.StatusCode)
			}
			d := r.d
			if d.err != nil {
				t.Fatalf("decode: %v", d.err)
			}
			if !bytes.Equal(d.value, rec.Value) || r.req.ContentLength != int64(len(rec.Value)) {
				t.Errorf("body = %q (Content-Length %d), want %q", d.value, r.req.ContentLength, rec.Value)
			}
			if d.keyPresent != (rec.Key != nil) || !bytes.Equal(d.key, rec.Key) {
				t.Errorf("key = %q (present %v), want %q (present %v)", d.key, d.keyPresent, rec.Key, rec.Key != nil)
			}
			if want := fmt.Sprintf("g/tricky/%d/%d", rec.Partition, rec.Offset); d.idempotencyKey != want {
				t.Errorf("Idempotency-Key = %q, want %q", d.idempotencyKey, want)
			}
			if want := wantDelivery(rec); !reflect.DeepEqual(d.headers, want) {
				t.Errorf("headers:\n got %q\nwant %q", d.headers, want)
			}
			if r.req.Header.Get("Delivery-Attempt") != "2" {
				t.Errorf("Delivery-Attempt = %q, want 2", r.req.Header.Get("Delivery-Attempt"))
			}
		})
	}
	// Content-Type of the first record is its own, '+' and all.
	req, _ := NewWebhookRequest(t.Context(), srv.URL, trickyRecords()[0], 1, WebhookRequestSettings{Group: "g"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := (<-got).d.contentType; ct != "application/vnd.api+json" {
		t.Errorf("Content-Type = %q, want application/vnd.api+json", ct)
	}
}

// TestWebhookRequestWireNames reads the request as raw bytes off the
// socket: header names keep the record's case (no canonicalization), and
// repeated names come in record order.
func TestWebhookRequestWireNames(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan []string, 1)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() { // serves one connection; closing ln stops it early
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			lines <- nil
			return
		}
		defer conn.Close()
		r := textproto.NewReader(bufio.NewReader(conn))
		var head []string
		length := 0
		for {
			line, err := r.ReadLine()
			if err != nil || line == "" {
				break
			}
			head = append(head, line)
			if n, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				length, _ = strconv.Atoi(n)
			}
		}
		io.CopyN(io.Discard, r.R, int64(length))
		io.WriteString(conn, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		lines <- head
	}()

	rec := testRecord()
	rec.Headers = headers("userId", "1", "Other", "x", "userId", "2", "UPPER", "u", "userId", "3")
	req, err := NewWebhookRequest(t.Context(), "http://"+ln.Addr().String()+"/", rec, 1, WebhookRequestSettings{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var kafkaHeaders []string
	for _, l := range <-lines {
		if strings.HasPrefix(l, "Kafka-Header-") || strings.HasPrefix(l, "ce-") {
			kafkaHeaders = append(kafkaHeaders, l)
		}
	}
	// Go writes header names sorted; within one name, values keep their order.
	want := []string{
		"Kafka-Header-Other: x", "Kafka-Header-UPPER: u",
		"Kafka-Header-userId: 1", "Kafka-Header-userId: 2", "Kafka-Header-userId: 3",
		"ce-id: orders/3/42", "ce-source: kafka:orders", "ce-specversion: 1.0",
		"ce-time: 2023-11-14T22:13:20.123Z", "ce-type: kbridge.record",
	}
	if !reflect.DeepEqual(kafkaHeaders, want) {
		t.Errorf("on the wire:\n got %q\nwant %q", kafkaHeaders, want)
	}
}

// TestWebhookRequestNotReplayed: when the app drops the connection after
// reading a request, Go's Transport must not silently send it again on a
// fresh connection (it would for a rewindable body with Idempotency-Key):
// the attempt fails, once, and the caller counts it.
func TestWebhookRequestNotReplayed(t *testing.T) {
	var dropped atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Delivery-Attempt") == "2" {
			dropped.Add(1)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	t.Cleanup(srv.Close)
	client := srv.Client() // its own keep-alive pool, so the second request reuses the first's connection

	for attempt := 1; attempt <= 2; attempt++ {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, err := NewWebhookRequest(ctx, srv.URL, testRecord(), attempt, WebhookRequestSettings{Group: "g"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if attempt == 1 {
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			continue
		}
		if err == nil {
			resp.Body.Close()
			t.Errorf("attempt 2 succeeded with status %d; want the dropped connection's error", resp.StatusCode)
		}
	}
	if n := dropped.Load(); n != 1 {
		t.Errorf("the app received attempt 2 %d times, want 1", n)
	}
}
