package server

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// badUTF8 is not valid UTF-8: a lone continuation byte and a byte that never
// occurs in UTF-8.
const badUTF8 = "v\x80\xff"

// utf8Cases are requests whose one string field is not valid UTF-8, with the
// field the refusal must name. The generated Go types no longer check UTF-8
// when marshaling those fields (the proto turns the check off), so they send
// the bytes as a client in another language, or a hand-built message, would.
var utf8Cases = []struct {
	name  string
	topic string
	rec   *kbridgev1.Record
	field string
}{
	{"value", "t", &kbridgev1.Record{Value: proto.String(badUTF8)}, "records[0].value: is not valid UTF-8; send binary data as value_bytes"},
	{"key", "t", &kbridgev1.Record{Key: proto.String(badUTF8), Value: proto.String("v")}, "records[0].key: is not valid UTF-8; send binary data as key_bytes"},
	{"header key", "t", &kbridgev1.Record{Headers: []*kbridgev1.Header{{Key: "ok", Value: []byte{0xff}}, {Key: badUTF8}}}, "records[0].headers[1].key: is not valid UTF-8"},
	{"topic", "t" + badUTF8, &kbridgev1.Record{Value: proto.String("v")}, "topic: is not valid UTF-8"},
}

// TestInvalidUTF8IsInvalidArgument: a string field that is not valid UTF-8
// is refused with INVALID_ARGUMENT naming the field, counted like every
// other refusal, and reaches no publisher. grpc-go used to fail such a
// message while decoding it: INTERNAL, before the interceptors, and the end
// of a whole PublishStream.
func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	h := newHarness(t)

	t.Run("Publish", func(t *testing.T) {
		for _, tt := range utf8Cases {
			_, err := h.client.Publish(t.Context(), &kbridgev1.PublishRequest{Topic: tt.topic, Records: []*kbridgev1.Record{tt.rec}})
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.field) {
				t.Errorf("%s: got %v %q, want InvalidArgument %q", tt.name, st.Code(), st.Message(), tt.field)
			}
		}
		if n := h.pub.callCount(); n != 0 {
			t.Errorf("publisher got %d calls for invalid requests", n)
		}
		if got := requestCounts(t, h, "Publish"); got["InvalidArgument"] != float64(len(utf8Cases)) || len(got) != 1 {
			t.Errorf("kbridge_grpc_requests_total for Publish = %v, want InvalidArgument %d", got, len(utf8Cases))
		}
	})

	// One stream carries every invalid request between valid ones: each
	// invalid request gets its own error response and the stream goes on.
	t.Run("PublishStream", func(t *testing.T) {
		reqs := []*kbridgev1.PublishStreamRequest{streamRequest("first", &kbridgev1.Record{Value: proto.String("caf\u00e9")})}
		want := []string{""}
		for _, tt := range utf8Cases {
			reqs = append(reqs, &kbridgev1.PublishStreamRequest{Topic: tt.topic, RequestId: tt.name, Records: []*kbridgev1.Record{tt.rec}})
			want = append(want, tt.field)
		}
		reqs = append(reqs, streamRequest("id"+badUTF8, &kbridgev1.Record{Value: proto.String("v")}))
		want = append(want, "request_id: is not valid UTF-8")
		reqs = append(reqs, streamRequest("last", &kbridgev1.Record{Value: proto.String("v")}))
		want = append(want, "")

		resps := exchange(t, h.client, reqs)
		if len(resps) != len(reqs) {
			t.Fatalf("got %d responses, want %d", len(resps), len(reqs))
		}
		for i, resp := range resps {
			// A request_id that is not UTF-8 is not echoed: the response
			// could not be encoded.
			wantID := reqs[i].GetRequestId()
			if strings.Contains(wantID, badUTF8) {
				wantID = ""
			}
			if resp.GetRequestId() != wantID {
				t.Errorf("response %d has request_id %q, want %q", i, resp.GetRequestId(), wantID)
			}
			if want[i] == "" {
				if resp.GetError() != nil || len(resp.GetResults()) != 1 {
					t.Errorf("response %d = %v, want one result", i, resp)
				}
				continue
			}
			if e := resp.GetError(); e.GetCode() != "INVALID_ARGUMENT" || !strings.Contains(e.GetMessage(), want[i]) || len(resp.GetResults()) != 0 {
				t.Errorf("response %d = %v, want INVALID_ARGUMENT %q", i, resp, want[i])
			}
		}
		calls := h.pub.takeCalls()
		if len(calls) != 2 || string(calls[0].records[0].Value) != "caf\u00e9" {
			t.Errorf("publisher got %+v, want the two valid requests", calls)
		}
		if got := requestCounts(t, h, "PublishStream"); got["OK"] != 1 || len(got) != 1 {
			t.Errorf("kbridge_grpc_requests_total for PublishStream = %v, want one OK stream", got)
		}
	})

	t.Run("hand-built messages", testHandBuilt)
}

// rawMessage is a message already in wire format, sent and received as it
// is by rawCodec.
type rawMessage []byte

// rawCodec lets a test send what a protobuf library might refuse to marshal.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*rawMessage), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*rawMessage) = append(rawMessage(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// wireRequest is a PublishRequest (or PublishStreamRequest: fields 1 and 2
// are the same) for topic t with one record whose value is value, encoded by
// hand so that no protobuf library checks it.
func wireRequest(value string) rawMessage {
	var rec, msg []byte
	rec = protowire.AppendTag(rec, 3, protowire.BytesType)
	rec = protowire.AppendString(rec, value)
	msg = protowire.AppendTag(msg, 1, protowire.BytesType)
	msg = protowire.AppendString(msg, "t")
	msg = protowire.AppendTag(msg, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, rec)
	return msg
}

// testHandBuilt sends the invalid value as hand-built messages, as a client
// that checks nothing would: the server must decode them and refuse only the
// invalid one, on a unary call and mid-stream.
func testHandBuilt(t *testing.T) {
	h := newHarness(t)
	const want = "records[0].value: is not valid UTF-8"

	in, out := wireRequest(badUTF8), rawMessage(nil)
	err := h.conn.Invoke(t.Context(), kbridgev1.ProducerService_Publish_FullMethodName, &in, &out, grpc.ForceCodec(rawCodec{}))
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), want) {
		t.Errorf("Publish: got %v %q, want InvalidArgument %q", st.Code(), st.Message(), want)
	}

	desc := &grpc.StreamDesc{StreamName: "PublishStream", ServerStreams: true, ClientStreams: true}
	stream, err := h.conn.NewStream(t.Context(), desc, kbridgev1.ProducerService_PublishStream_FullMethodName, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	for _, m := range []rawMessage{wireRequest(badUTF8), wireRequest("ok")} {
		if err := stream.SendMsg(&m); err != nil {
			t.Fatalf("stream send: %v", err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("close send: %v", err)
	}
	var resps []*kbridgev1.PublishStreamResponse
	for range 2 {
		var raw rawMessage
		if err := stream.RecvMsg(&raw); err != nil {
			t.Fatalf("recv after %d responses: %v", len(resps), err)
		}
		resp := &kbridgev1.PublishStreamResponse{}
		if err := proto.Unmarshal(raw, resp); err != nil {
			t.Fatalf("response: %v", err)
		}
		resps = append(resps, resp)
	}
	if e := resps[0].GetError(); e.GetCode() != "INVALID_ARGUMENT" || !strings.Contains(e.GetMessage(), want) {
		t.Errorf("response 0 = %v, want INVALID_ARGUMENT %q", resps[0], want)
	}
	if resps[1].GetError() != nil || len(resps[1].GetResults()) != 1 {
		t.Errorf("response 1 = %v, want one result", resps[1])
	}
	var raw rawMessage
	if err := stream.RecvMsg(&raw); !errors.Is(err, io.EOF) {
		t.Errorf("end of stream: %v, want io.EOF", err)
	}
	if calls := h.pub.takeCalls(); len(calls) != 1 || string(calls[0].records[0].Value) != "ok" {
		t.Errorf("publisher got %+v, want the valid request only", calls)
	}
}

// TestInvalidUTF8OverREST: the REST routes refuse text that is not UTF-8
// with 400 and say so. A JSON body is refused by the JSON decoder; a path,
// query or header reaches the service, which refuses it as over gRPC (the
// gateway's client used to fail to encode it: 500).
func TestInvalidUTF8OverREST(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, path string
		header     http.Header
		body       string
		contains   string
	}{
		{name: "JSON value", path: "/v1/topics/t/records", body: `{"records":[{"value":"` + badUTF8 + `"}]}`, contains: "UTF-8"},
		{name: "JSON header key", path: "/v1/topics/t/records", body: `{"records":[{"headers":[{"key":"` + badUTF8 + `"}]}]}`, contains: "UTF-8"},
		{name: "topic in the path", path: "/v1/topics/t%FF/records", body: oneRecordJSON, contains: "topic: is not valid UTF-8"},
		{name: "raw route key", path: "/v1/topics/t?key=%FF", header: http.Header{}, body: "v", contains: "records[0].key: is not valid UTF-8"},
		{name: "raw route header name", path: "/v1/topics/t", header: http.Header{"Kafka-Header-%Ff": {"x"}}, body: "v", contains: "records[0].headers[0].key: is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(t, http.MethodPost, tt.path, strings.NewReader(tt.body), tt.header)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d %s, want 400", r.status, r.body)
			}
			if e := decodeError(t, r); codes.Code(*e.Code) != codes.InvalidArgument || !strings.Contains(e.Message, tt.contains) {
				t.Errorf("error %d %q, want InvalidArgument containing %q", *e.Code, e.Message, tt.contains)
			}
			if n := h.pub.callCount(); n != 0 {
				t.Errorf("publisher got %d calls", n)
			}
		})
	}
}
