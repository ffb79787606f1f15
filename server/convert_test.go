package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "congo=t61rcWkgMzE"
)

// TestConvertKeyValue checks which key and value reach the publisher, over
// gRPC and over REST JSON: null stays nil, empty stays non-nil and empty.
func TestConvertKeyValue(t *testing.T) {
	tests := []struct {
		name      string
		rec       *kbridgev1.Record
		json      string
		key, val  []byte // nil means null
		errField  string // non-empty: InvalidArgument naming it
		partition *int32
	}{
		{name: "null key and value", rec: &kbridgev1.Record{}, json: `{}`},
		{name: "text key", rec: &kbridgev1.Record{Key: proto.String("42")}, json: `{"key":"42"}`, key: []byte("42")},
		{name: "empty text key", rec: &kbridgev1.Record{Key: proto.String("")}, json: `{"key":""}`, key: []byte{}},
		{name: "json null key", rec: &kbridgev1.Record{}, json: `{"key":null,"value":null}`},
		{name: "bytes key", rec: &kbridgev1.Record{KeyBytes: []byte{0, 1, 0xff}}, json: `{"key_bytes":"AAH/"}`, key: []byte{0, 1, 0xff}},
		{name: "empty bytes key", rec: &kbridgev1.Record{KeyBytes: []byte{}}, json: `{"key_bytes":""}`, key: []byte{}},
		{name: "both keys", rec: &kbridgev1.Record{Key: proto.String("a"), KeyBytes: []byte("a")}, json: `{"key":"a","key_bytes":"YQ=="}`, errField: "records[0].key"},
		{name: "text value", rec: &kbridgev1.Record{Value: proto.String(`{"a":1}`)}, json: `{"value":"{\"a\":1}"}`, val: []byte(`{"a":1}`)},
		{name: "empty text value", rec: &kbridgev1.Record{Value: proto.String("")}, json: `{"value":""}`, val: []byte{}},
		{name: "bytes value", rec: &kbridgev1.Record{ValueBytes: []byte{0, 0}}, json: `{"value_bytes":"AAA="}`, val: []byte{0, 0}},
		{name: "empty bytes value", rec: &kbridgev1.Record{ValueBytes: []byte{}}, json: `{"value_bytes":""}`, val: []byte{}},
		{name: "both values", rec: &kbridgev1.Record{Value: proto.String("a"), ValueBytes: []byte("a")}, json: `{"value":"a","value_bytes":"YQ=="}`, errField: "records[0].value"},
		{name: "partition 0", rec: &kbridgev1.Record{Partition: proto.Int32(0)}, json: `{"partition":0}`, partition: proto.Int32(0)},
		{name: "partition 7", rec: &kbridgev1.Record{Partition: proto.Int32(7)}, json: `{"partition":7}`, partition: proto.Int32(7)},
	}
	h := newHarness(t)
	for _, tt := range tests {
		check := func(t *testing.T, err error, calls []publishCall) {
			t.Helper()
			if tt.errField != "" {
				if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.errField) {
					t.Errorf("got %v %q, want InvalidArgument naming %s", st.Code(), st.Message(), tt.errField)
				}
				if len(calls) != 0 {
					t.Errorf("an invalid request reached the publisher: %+v", calls)
				}
				return
			}
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			if len(calls) != 1 || len(calls[0].records) != 1 {
				t.Fatalf("publisher got %+v, want one call with one record", calls)
			}
			r := calls[0].records[0]
			checkBytes(t, "key", r.Key, tt.key)
			checkBytes(t, "value", r.Value, tt.val)
			if tt.partition == nil && r.HasPartition {
				t.Errorf("HasPartition set without a partition")
			}
			if tt.partition != nil && (!r.HasPartition || r.Partition != *tt.partition) {
				t.Errorf("partition = %d (HasPartition %v), want %d", r.Partition, r.HasPartition, *tt.partition)
			}
		}
		t.Run(tt.name+"/gRPC", func(t *testing.T) {
			_, err := h.client.Publish(t.Context(), &kbridgev1.PublishRequest{Topic: "t", Records: []*kbridgev1.Record{tt.rec}})
			check(t, err, h.pub.takeCalls())
		})
		t.Run(tt.name+"/REST", func(t *testing.T) {
			r := h.post(t, "/v1/topics/t/records", `{"records":[`+tt.json+`]}`)
			var err error
			if r.status != http.StatusOK {
				e := decodeError(t, r)
				err = status.Error(codes.Code(*e.Code), e.Message)
			}
			check(t, err, h.pub.takeCalls())
		})
	}
}

func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		t.Errorf("%s = %q (nil %v), want %q (nil %v)", what, got, got == nil, want, want == nil)
	}
}

func TestConvertHeadersAndTimestamp(t *testing.T) {
	h := newHarness(t)
	ts := time.Date(2023, 1, 2, 3, 4, 5, 600, time.UTC)
	rec := &kbridgev1.Record{
		Value:     proto.String("v"),
		Timestamp: timestamppb.New(ts),
		Headers: []*kbridgev1.Header{
			{Key: "a", Value: []byte("1")},
			{Key: "b", Value: nil},
			{Key: "a", Value: []byte{0, 0xff}},
		},
	}
	want := []bridge.Header{{Key: "a", Value: []byte("1")}, {Key: "b"}, {Key: "a", Value: []byte{0, 0xff}}}

	if _, err := h.client.Publish(t.Context(), &kbridgev1.PublishRequest{Topic: "t", Records: []*kbridgev1.Record{rec}}); err != nil {
		t.Fatalf("gRPC publish: %v", err)
	}
	got := h.pub.onlyCall(t).records[0]
	checkHeaders(t, got.Headers, want)
	if !got.Timestamp.Equal(ts) {
		t.Errorf("timestamp = %v, want %v", got.Timestamp, ts)
	}

	r := h.post(t, "/v1/topics/t/records",
		`{"records":[{"timestamp":"2023-01-02T03:04:05.000000600Z","headers":[{"key":"a","value":"MQ=="},{"key":"b"},{"key":"a","value":"AP8="}]}]}`)
	if r.status != http.StatusOK {
		t.Fatalf("REST: %d %s", r.status, r.body)
	}
	got = h.pub.onlyCall(t).records[0]
	checkHeaders(t, got.Headers, want)
	if !got.Timestamp.Equal(ts) {
		t.Errorf("REST timestamp = %v, want %v", got.Timestamp, ts)
	}

	unset := h.post(t, "/v1/topics/t/records", `{"records":[{"value":"v"}]}`)
	if unset.status != http.StatusOK {
		t.Fatalf("REST: %d %s", unset.status, unset.body)
	}
	if got := h.pub.onlyCall(t).records[0]; !got.Timestamp.IsZero() || len(got.Headers) != 0 {
		t.Errorf("record without timestamp or headers reached the publisher as %+v", got)
	}
}

func TestConvertBadTimestamp(t *testing.T) {
	h := newHarness(t)
	for name, ts := range map[string]*timestamppb.Timestamp{
		"before 1970": {Seconds: -1},
		"bad nanos":   {Seconds: 1, Nanos: 2e9},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.client.Publish(t.Context(), &kbridgev1.PublishRequest{Topic: "t", Records: []*kbridgev1.Record{{Timestamp: ts}}})
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "records[0].timestamp") {
				t.Errorf("got %v %q, want InvalidArgument naming records[0].timestamp", st.Code(), st.Message())
			}
			if n := len(h.pub.takeCalls()); n != 0 {
				t.Errorf("publisher got %d calls", n)
			}
		})
	}
}

func checkHeaders(t *testing.T, got, want []bridge.Header) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("headers = %q, want %q", got, want)
	}
	for i := range want {
		if got[i].Key != want[i].Key || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Errorf("headers[%d] = %s=%q, want %s=%q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
}

// TestTraceContext: traceparent and tracestate from gRPC metadata or HTTP
// headers become record headers, after the record's own, unless the record
// carries its own.
func TestTraceContext(t *testing.T) {
	h := newHarness(t)
	own := &kbridgev1.Header{Key: "traceparent", Value: []byte("own")}
	req := &kbridgev1.PublishRequest{Topic: "t", Records: []*kbridgev1.Record{
		{Headers: []*kbridgev1.Header{{Key: "x", Value: []byte("1")}}},
		{Headers: []*kbridgev1.Header{own}},
	}}
	wantFirst := []bridge.Header{{Key: "x", Value: []byte("1")}, {Key: "traceparent", Value: []byte(traceparent)}, {Key: "tracestate", Value: []byte(tracestate)}}
	wantSecond := []bridge.Header{{Key: "traceparent", Value: []byte("own")}, {Key: "tracestate", Value: []byte(tracestate)}}

	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", traceparent, "tracestate", tracestate)
	if _, err := h.client.Publish(ctx, req); err != nil {
		t.Fatalf("gRPC publish: %v", err)
	}
	call := h.pub.onlyCall(t)
	checkHeaders(t, call.records[0].Headers, wantFirst)
	checkHeaders(t, call.records[1].Headers, wantSecond)

	body := `{"records":[{"headers":[{"key":"x","value":"MQ=="}]},{"headers":[{"key":"traceparent","value":"b3du"}]}]}`
	r := h.do(t, http.MethodPost, "/v1/topics/t/records", strings.NewReader(body), http.Header{
		"Content-Type": {"application/json"},
		"Traceparent":  {traceparent},
		"Tracestate":   {tracestate},
	})
	if r.status != http.StatusOK {
		t.Fatalf("REST: %d %s", r.status, r.body)
	}
	call = h.pub.onlyCall(t)
	checkHeaders(t, call.records[0].Headers, wantFirst)
	checkHeaders(t, call.records[1].Headers, wantSecond)

	if _, err := h.client.Publish(t.Context(), oneRecord("t")); err != nil {
		t.Fatalf("publish without trace context: %v", err)
	}
	if hs := h.pub.onlyCall(t).records[0].Headers; len(hs) != 0 {
		t.Errorf("headers without trace context = %q, want none", hs)
	}
}
