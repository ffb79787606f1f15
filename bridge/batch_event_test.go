package bridge

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

func decodeEvent(t *testing.T, ev []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(ev)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("event is not a JSON object: %v\n%s", err, ev)
	}
	return m
}

// TestBatchEvent pins the event of each kind of record: what DESIGN.md's
// batch format and AppendBatchEvent's comment promise.
func TestBatchEvent(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	s := WebhookRequestSettings{Group: "orders-app", CloudEventType: "com.example.order"}
	tests := []struct {
		name string
		rec  *kgo.Record
		want map[string]any // members compared as JSON text; nil means absent
	}{
		{"JSON value travels as data",
			&kgo.Record{Topic: "orders", Partition: 3, Offset: 42, Key: []byte("k 1"), Value: []byte(`{"total": 12.5}`), Timestamp: ts,
				Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json; charset=utf-8")}}},
			map[string]any{
				"specversion": `"1.0"`, "id": `"orders/3/42"`, "source": `"kafka:orders"`, "type": `"com.example.order"`,
				"time": `"2023-11-14T22:13:20.123Z"`, "datacontenttype": `"application/json; charset=utf-8"`,
				"data": `{"total":12.5}`, "data_base64": nil,
				"idempotencykey": `"orders-app/orders/3/42"`, "kafkatopic": `"orders"`, "kafkapartition": `3`,
				"kafkaoffset": `"42"`, "kafkatimestamp": `"1700000000123"`, "kafkatimestamptype": `"create"`,
				"kafkakey": `"k 1"`, "kafkaheaders": nil, "deliveryattempt": `2`,
			}},
		{"+json suffix is JSON",
			&kgo.Record{Topic: "t", Value: []byte(`[1,2]`), Timestamp: ts,
				Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/vnd.api+json")}}},
			map[string]any{"data": `[1,2]`, "data_base64": nil}},
		{"invalid JSON under a JSON content type travels as data_base64",
			&kgo.Record{Topic: "t", Value: []byte(`{"a":`), Timestamp: ts,
				Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
			map[string]any{"data": nil, "data_base64": `"` + base64.StdEncoding.EncodeToString([]byte(`{"a":`)) + `"`}},
		{"JSON with invalid UTF-8 travels as data_base64 (strict parsers refuse it)",
			&kgo.Record{Topic: "t", Value: []byte("\"\xff\""), Timestamp: ts,
				Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
			map[string]any{"data": nil, "data_base64": `"` + base64.StdEncoding.EncodeToString([]byte("\"\xff\"")) + `"`}},
		{"text is not JSON: data_base64, default content type, null key absent",
			&kgo.Record{Topic: "t", Value: []byte("hello"), Timestamp: ts},
			map[string]any{"datacontenttype": `"application/octet-stream"`, "data_base64": `"aGVsbG8="`, "kafkakey": nil}},
		{"empty value: no data, empty key present",
			&kgo.Record{Topic: "t", Key: []byte{}, Value: nil, Timestamp: ts},
			map[string]any{"data": nil, "data_base64": nil, "kafkakey": `""`}},
		{"headers, trace context and binary key",
			&kgo.Record{Topic: "t", Key: []byte("\x00+%"), Value: []byte("v"), Timestamp: ts, Headers: []kgo.RecordHeader{
				{Key: "tenant", Value: []byte("a&b=c")}, {Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
				{Key: "tenant", Value: []byte("d e+f")}, {Key: "bin\xff", Value: []byte{0, 1}}}},
			map[string]any{
				"kafkakey":     `"%00%2B%25"`,
				"traceparent":  `"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"`,
				"kafkaheaders": `"tenant=a%26b%3Dc&tenant=d%20e%2Bf&bin%FF=%00%01"`,
			}},
		{"a CloudEvent record keeps its own attributes",
			&kgo.Record{Topic: "t", Partition: 1, Offset: 9, Value: []byte(`{"x":1}`), Timestamp: ts, Headers: []kgo.RecordHeader{
				{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("evt-1")},
				{Key: "ce_source", Value: []byte("/billing")}, {Key: "ce_type", Value: []byte("invoice.paid")},
				{Key: "ce_subject", Value: []byte("old")}, {Key: "ce_subject", Value: []byte("inv-7")},
				{Key: "ce_data", Value: []byte("not the data")}, {Key: "content-type", Value: []byte("application/json")}}},
			map[string]any{
				"id": `"evt-1"`, "source": `"/billing"`, "type": `"invoice.paid"`, "subject": `"inv-7"`,
				"time": nil, "data": `{"x":1}`, "idempotencykey": `"orders-app/t/1/9"`, "kafkaheaders": nil,
			}},
		{"no timestamp: no time",
			&kgo.Record{Topic: "t", Value: []byte("v"), Timestamp: time.UnixMilli(-1)},
			map[string]any{"time": nil, "kafkatimestamp": `"-1"`}},
		{"attributes that are not UTF-8",
			&kgo.Record{Topic: "t", Value: []byte("v"), Timestamp: ts, Headers: []kgo.RecordHeader{
				{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("a\xffb\"\n")},
				{Key: "ce_source", Value: []byte("s")}, {Key: "ce_type", Value: []byte("t")}}},
			map[string]any{"id": `"a\ufffdb\"\n"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, id := AppendBatchEvent(nil, tt.rec, 2, s)
			m := decodeEvent(t, ev)
			for name, want := range tt.want {
				got, ok := m[name]
				if want == nil {
					if ok {
						t.Errorf("%s = %v, want absent", name, got)
					}
					continue
				}
				gotJSON, _ := json.Marshal(got)
				var wantV any
				dec := json.NewDecoder(strings.NewReader(want.(string)))
				dec.UseNumber()
				if err := dec.Decode(&wantV); err != nil {
					t.Fatalf("bad want %s: %v", want, err)
				}
				wantJSON, _ := json.Marshal(wantV)
				if !ok || string(gotJSON) != string(wantJSON) {
					t.Errorf("%s = %s, want %s", name, gotJSON, wantJSON)
				}
			}
			if got := m["id"]; got != id {
				t.Errorf("returned id %q, event id %v", id, got)
			}
		})
	}
}

// FuzzBatchEvent checks, for arbitrary records, that the event is one
// valid JSON object whose members give the record back: data or
// data_base64 the value exactly, kafkakey the key (absent for null),
// kafkaheaders every header not in another role, in order, and the id the
// one AppendBatchEvent returned; and that events concatenate into a valid
// batch.
func FuzzBatchEvent(f *testing.F) {
	f.Add([]byte("k"), false, []byte(`{"a":1}`), "content-type", []byte("application/json"), "x", []byte("y"), false)
	f.Add([]byte(nil), true, []byte("\xff\x00"), "tenant", []byte("a&b=c+d e%"), "content-type", []byte("text/plain"), false)
	f.Add([]byte{}, false, []byte(`"s"`), "content-type", []byte("application/cloudevents+json"), "", []byte(""), true)
	f.Add([]byte("\x00"), false, []byte(" 1 "), "ce_id", []byte("\xff\""), "ce_data", []byte("d"), true)
	f.Fuzz(func(t *testing.T, key []byte, nullKey bool, value []byte, name1 string, value1 []byte, name2 string, value2 []byte, cloudEvent bool) {
		if nullKey {
			key = nil
		}
		rec := &kgo.Record{Topic: "fuzz", Partition: 2, Offset: 1 << 40, Key: key, Value: value, Timestamp: time.UnixMilli(1700000000123),
			Headers: []kgo.RecordHeader{{Key: name1, Value: value1}, {Key: name2, Value: value2}}}
		if cloudEvent {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "ce_id", Value: []byte("e")}, kgo.RecordHeader{Key: "ce_source", Value: []byte("s")},
				kgo.RecordHeader{Key: "ce_type", Value: []byte("t")}, kgo.RecordHeader{Key: "ce_specversion", Value: []byte("1.0")})
		}
		s := WebhookRequestSettings{Group: "g"}
		ev, id := AppendBatchEvent([]byte("[1,"), rec, 1, s)
		batch := append(ev, ']')
		if !json.Valid(batch) {
			t.Fatalf("batch is not valid JSON: %q", batch)
		}
		m := decodeEvent(t, ev[len("[1,"):])
		if m["id"] != id || !utf8.ValidString(id) {
			t.Errorf("id %q, event id %v", id, m["id"])
		}

		var got []byte
		switch {
		case m["data"] != nil:
			raw, _ := json.Marshal(m["data"])
			var a, b any
			_ = json.Unmarshal(raw, &a)
			if err := json.Unmarshal(value, &b); err != nil {
				t.Fatalf("data for a value that is not JSON: %q", value)
			}
			ra, _ := json.Marshal(a)
			rb, _ := json.Marshal(b)
			if string(ra) != string(rb) {
				t.Errorf("data %s, value %s", ra, rb)
			}
			got = value
		case m["data_base64"] != nil:
			var err error
			if got, err = base64.StdEncoding.DecodeString(m["data_base64"].(string)); err != nil {
				t.Fatalf("data_base64: %v", err)
			}
		}
		if string(got) != string(value) {
			t.Errorf("value %q came back as %q", value, got)
		}

		k, ok := m["kafkakey"]
		if ok == (key == nil) {
			t.Errorf("kafkakey present %v for key %q (null %v)", ok, key, key == nil)
		}
		if ok {
			if dk, err := url.PathUnescape(k.(string)); err != nil || dk != string(key) {
				t.Errorf("kafkakey %q decodes to %q (%v), want %q", k, dk, err, key)
			}
		}

		roles := headerRoles(rec.Headers)
		var want []string
		for i, h := range rec.Headers {
			if roles[i] != "" || cloudEvent && strings.HasPrefix(h.Key, "ce_") && len(h.Key) > 3 {
				continue
			}
			want = append(want, h.Key+"\x00"+string(h.Value))
		}
		var gotHeaders []string
		if form, ok := m["kafkaheaders"].(string); ok {
			for pair := range strings.SplitSeq(form, "&") {
				n, v, _ := strings.Cut(pair, "=")
				dn, err1 := url.QueryUnescape(n)
				dv, err2 := url.QueryUnescape(v)
				if err1 != nil || err2 != nil {
					t.Fatalf("kafkaheaders %q does not form-decode", form)
				}
				gotHeaders = append(gotHeaders, dn+"\x00"+dv)
			}
		}
		if strings.Join(gotHeaders, "\n") != strings.Join(want, "\n") {
			t.Errorf("kafkaheaders give %q, want %q", gotHeaders, want)
		}
	})
}

// TestParseBatchReply: which replies ack every event, which list failures,
// and which are unreadable (the batch is then retried, never acked on a
// guess).
func TestParseBatchReply(t *testing.T) {
	tests := []struct {
		body    string
		failed  map[string]int
		errPart string
	}{
		{"", nil, ""},
		{"  \n", nil, ""},
		{"OK", nil, ""},
		{"<html>ok</html>", nil, ""},
		{`{}`, nil, ""},
		{`{"ok":true}`, nil, ""},
		{`{"failed":[]}`, nil, ""},
		{`{"failed":null}`, nil, ""},
		{`{"failed":[{"id":"t/0/1","status":503}]}`, map[string]int{"t/0/1": 503}, ""},
		{`{"failed":[{"id":"a","status":422},{"id":"b"}]}`, map[string]int{"a": 422, "b": 500}, ""},
		{`{"failed":[{"id":"a","status":200}]}`, map[string]int{"a": 500}, ""},
		{`{"failed":[{"id":"a","status":"429"}]}`, map[string]int{"a": 429}, ""},
		{`{"failed":"t/0/1"}`, nil, "failed must be a list"},
		{`{"failed":[{"id":7}]}`, nil, "failed.id must be a string"},
		{`{"failed":[{"status":503}]}`, nil, "failed[0] has no id"},
		{`{"failed":[{"id":"a","status":5.5}]}`, nil, "not an integer"},
		{`{"failed":[{"id":"a"`, nil, "not valid JSON"},
	}
	for _, tt := range tests {
		failed, err := parseBatchReply([]byte(tt.body))
		if tt.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("%s: error %v, want one containing %q", tt.body, err, tt.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		if len(failed) != len(tt.failed) {
			t.Errorf("%s: failed %v, want %v", tt.body, failed, tt.failed)
		}
		for id, st := range tt.failed {
			if failed[id] != st {
				t.Errorf("%s: failed %v, want %v", tt.body, failed, tt.failed)
			}
		}
	}
}

// FuzzParseBatchReply: any body is read without panicking, and a body that
// is read as listing failures names only non-empty ids with statuses kbridge
// retries or refuses (300-599).
func FuzzParseBatchReply(f *testing.F) {
	for _, s := range []string{"", "{}", `{"failed":[{"id":"a","status":503}]}`, `{"failed":[{"id":""}]}`, `{"failed":[{"id":"a","status":1e3}]}`, "[", `{"failed":{"id":"a"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		failed, err := parseBatchReply(body)
		if err != nil && failed != nil {
			t.Fatalf("both an error and failures")
		}
		for id, st := range failed {
			if id == "" || st < 300 || st > 599 {
				t.Errorf("failed %q with status %d", id, st)
			}
		}
	})
}
