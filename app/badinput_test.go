package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// Limits of the kbridge under TestBadInput: small, so that the oversize
// cases are cheap.
const (
	badMaxRecord  = 4096
	badMaxRequest = 32768
)

// answer is what one caller got: a gRPC status, or an HTTP response.
type answer struct {
	via    string // how the request was sent, for failure messages
	grpc   bool
	code   codes.Code
	msg    string // the gRPC message, or the "message" of the JSON error body
	status int    // HTTP status
	header http.Header
	body   string // HTTP body
	// clientMade marks an answer whose message comes from the caller's own
	// gRPC library, not from kbridge; only its code is checked.
	clientMade bool
}

// httpCall is one HTTP request to the REST listener.
type httpCall struct {
	method      string // default POST
	path        string // with the query, if any
	contentType string
	header      []string // name, value pairs
	body        string
	chunked     bool // hide the length: the body is sent chunked
}

// TestBadInput sends malformed, oversize and otherwise invalid requests to a
// kbridge started once through app.Run, over gRPC (unary and stream) and REST
// (the JSON and the raw route). Each case asserts the gRPC code and HTTP
// status, that the message names the problem and leaks no internals, and,
// for refusals, that nothing reached Kafka. After the whole table kbridge
// must still be ready and publish.
//
// A message names the problem when it names the field or option (or, for a
// body that does not decode, says it is not valid JSON or where decoding
// failed).
//
// kbridge runs with a 200 ms linger, so that on any broker every produce
// waits in the client long enough for a 1 ms deadline to pass first, and
// records of concurrent callers share a batch.
func TestBadInput(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	refused := cluster.Topic(t, 2) // only requests that must be refused go here
	other := cluster.Topic(t, 1)   // requests that may write
	compacted := compactedTopic(t, cluster)
	kb := start(t, brokersEnv(cluster),
		fmt.Sprintf("--max-record-bytes=%d", badMaxRecord), fmt.Sprintf("--max-request-bytes=%d", badMaxRequest),
		"--linger=200ms", "--publish-timeout=10s")
	kb.waitReady(t)
	// The topics' partition counts are looked up once, before the table:
	// each case measures only its own request.
	for _, topic := range []string{refused, other, compacted} {
		if code, body := kb.post(t, "/v1/topics/"+topic+"/records", "application/json", []byte(`{"records":[{"value":"v","partition":99}]}`)); code != http.StatusBadRequest {
			t.Fatalf("warm-up on %s = %d %s", topic, code, body)
		}
	}
	if _, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: other, Records: []*kbridgev1.Record{{Value: proto.String("warm-up")}}}); err != nil {
		t.Fatalf("warm-up publish: %v", err)
	}

	long := strings.Repeat("t", 250)
	tooManyHeaders := make([]*kbridgev1.Header, 1000) // 1000 × (1 + 4) bytes: over 4096
	var tooManyJSON, tooManyRaw []string
	for i := range tooManyHeaders {
		tooManyHeaders[i] = &kbridgev1.Header{Key: "h", Value: []byte("abcd")}
		tooManyJSON = append(tooManyJSON, `{"key":"h","value":"YWJjZA=="}`)
		tooManyRaw = append(tooManyRaw, "Kafka-Header-h", "abcd")
	}
	overRecord := strings.Repeat("x", badMaxRecord+1)
	overRequest := strings.Repeat("x", badMaxRequest+100)   // over the request limit, under the transport's
	overTransport := strings.Repeat("x", 2*badMaxRequest+1) // over what gRPC's transport reads

	req := func(topic string, records ...*kbridgev1.Record) *kbridgev1.PublishRequest {
		return &kbridgev1.PublishRequest{Topic: topic, Records: records}
	}
	js := func(s string) *string { return &s }

	tests := []struct {
		name string
		// gRPC: grpc is sent with Publish and, unless unaryOnly, as one
		// request on a new PublishStream; wire is a hand-built Publish
		// request, for what a Go client refuses to marshal.
		grpc      *kbridgev1.PublishRequest
		unaryOnly bool
		wire      []byte
		// REST: json is the body of POST /v1/topics/{jsonTopic}/records
		// (jsonTopic defaults to refused); raw and call are sent as they
		// are.
		json      *string
		jsonTopic string
		raw       *httpCall
		call      *httpCall
		// do runs a case that needs more than one request.
		do func(t *testing.T) []answer

		code   codes.Code // gRPC, and the "code" of REST error bodies
		status int        // HTTP
		msg    []string   // every answer's message contains each
		// writes marks a case that may write to Kafka; every other case is
		// a refusal and must write nothing.
		writes bool
	}{
		// Topic names.
		{name: "empty topic", grpc: req("", &kbridgev1.Record{Value: proto.String("v")}),
			call: &httpCall{path: "/v1/topics//records", contentType: "application/json", body: `{"records":[{"value":"v"}]}`},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"topic", "empty"}},
		{name: "empty topic, raw route", raw: &httpCall{path: "/v1/topics/", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"topic", "empty"}},
		{name: "invalid topic characters", grpc: req("bad topic!", &kbridgev1.Record{Value: proto.String("v")}),
			json: js(`{"records":[{"value":"v"}]}`), jsonTopic: "bad topic!",
			raw:  &httpCall{path: "/v1/topics/" + url.PathEscape("bad topic!"), body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"topic", `' '`}},
		{name: "non-ASCII topic", grpc: req("caf\u00e9", &kbridgev1.Record{Value: proto.String("v")}),
			json: js(`{"records":[{"value":"v"}]}`), jsonTopic: "caf\u00e9",
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"topic", "position 3"}},
		{name: "topic .", grpc: req(".", &kbridgev1.Record{Value: proto.String("v")}),
			json: js(`{"records":[{"value":"v"}]}`), jsonTopic: "%2E",
			raw:  &httpCall{path: "/v1/topics/%2E", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"topic", `"."`}},
		{name: "topic ..", grpc: req("..", &kbridgev1.Record{Value: proto.String("v")}),
			json: js(`{"records":[{"value":"v"}]}`), jsonTopic: "%2E%2E",
			raw:  &httpCall{path: "/v1/topics/%2E%2E", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"topic", `".."`}},
		{name: "topic of 250 characters", grpc: req(long, &kbridgev1.Record{Value: proto.String("v")}),
			json: js(`{"records":[{"value":"v"}]}`), jsonTopic: long,
			raw:  &httpCall{path: "/v1/topics/" + long, body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"topic", "250", "249"}},

		// Sizes.
		{name: "value over max record bytes", grpc: req(refused, &kbridgev1.Record{Value: proto.String(overRecord)}),
			json: js(`{"records":[{"value":"` + overRecord + `"}]}`),
			raw:  &httpCall{path: "/v1/topics/" + refused, contentType: "text/plain", body: overRecord},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[0]", fmt.Sprintf("limit is %d", badMaxRecord)}},
		{name: "second record over the limit refuses the first too",
			grpc: req(refused, &kbridgev1.Record{Value: proto.String("ok")}, &kbridgev1.Record{Value: proto.String(overRecord)}),
			json: js(`{"records":[{"value":"ok"},{"value":"` + overRecord + `"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[1]", fmt.Sprintf("limit is %d", badMaxRecord)}},
		{name: "too many headers", grpc: req(refused, &kbridgev1.Record{Value: proto.String("v"), Headers: tooManyHeaders}),
			json: js(`{"records":[{"value":"v","headers":[` + strings.Join(tooManyJSON, ",") + `]}]}`),
			raw:  &httpCall{path: "/v1/topics/" + refused, header: tooManyRaw, body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"headers", fmt.Sprintf("limit is %d", badMaxRecord)}},
		{name: "oversized header value", grpc: req(refused, &kbridgev1.Record{Value: proto.String("v"), Headers: []*kbridgev1.Header{{Key: "h", Value: []byte(overRecord)}}}),
			raw:  &httpCall{path: "/v1/topics/" + refused, header: []string{"Kafka-Header-h", overRecord}, body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"headers", fmt.Sprintf("limit is %d", badMaxRecord)}},
		{name: "header with an empty key", grpc: req(refused, &kbridgev1.Record{Value: proto.String("v"), Headers: []*kbridgev1.Header{{Key: "", Value: []byte("x")}}}),
			json: js(`{"records":[{"value":"v","headers":[{"key":"","value":"eA=="}]}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[0].headers[0].key", "empty"}},
		{name: "request over max request bytes", grpc: req(refused, &kbridgev1.Record{Value: proto.String(overRequest)}),
			json: js(`{"records":[{"value":"` + overRequest + `"}]}`),
			raw:  &httpCall{path: "/v1/topics/" + refused, body: overRequest},
			code: codes.InvalidArgument, status: http.StatusRequestEntityTooLarge, msg: []string{fmt.Sprintf("limit is %d", badMaxRequest)}},
		{name: "chunked request over max request bytes",
			call: &httpCall{path: "/v1/topics/" + refused + "/records", contentType: "application/json", body: `{"records":[{"value":"` + overRequest + `"}]}`, chunked: true},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{fmt.Sprintf("larger than the limit of %d", badMaxRequest)}},
		{name: "chunked raw body over max request bytes",
			raw:  &httpCall{path: "/v1/topics/" + refused, body: overRequest, chunked: true},
			code: codes.InvalidArgument, status: http.StatusRequestEntityTooLarge, msg: []string{fmt.Sprintf("limit of %d", badMaxRequest)}},
		{name: "gRPC message over twice the request limit", grpc: req(refused, &kbridgev1.Record{Value: proto.String(overTransport)}), unaryOnly: true,
			code: codes.ResourceExhausted, msg: []string{"larger than max"}},

		// Partitions.
		{name: "negative partition", grpc: req(refused, &kbridgev1.Record{Value: proto.String("v"), Partition: proto.Int32(-1)}),
			json: js(`{"records":[{"value":"v","partition":-1}]}`),
			raw:  &httpCall{path: "/v1/topics/" + refused + "?partition=-1", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[0].partition", "negative"}},
		{name: "partition beyond the topic's count", grpc: req(refused, &kbridgev1.Record{Value: proto.String("v"), Partition: proto.Int32(2)}),
			json: js(`{"records":[{"value":"v","partition":2}]}`),
			raw:  &httpCall{path: "/v1/topics/" + refused + "?partition=2", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[0].partition", "partition 2 does not exist", "has 2"}},
		{name: "partition beyond int32", json: js(`{"records":[{"value":"v","partition":4294967296}]}`),
			raw:  &httpCall{path: "/v1/topics/" + refused + "?partition=4294967296", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"partition"}},
		{name: "raw route: partition not a number", raw: &httpCall{path: "/v1/topics/" + refused + "?partition=abc", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"partition", `"abc"`}},

		// JSON decoding.
		{name: "invalid JSON", json: js(`{"records":[{"value":"v"}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"JSON"}},
		{name: "trailing data after the JSON document", json: js(`{"records":[{"value":"v"}]} trailing`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"JSON"}},
		{name: "two JSON documents", json: js(`{"records":[{"value":"v"}]}` + "\n" + `{"records":[{"value":"w"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"JSON"}},
		{name: "JSON body not an object", json: js(`[{"value":"v"}]`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"unexpected"}},
		{name: "number for value", json: js(`{"records":[{"value":5}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"value"}},
		{name: "string for partition", json: js(`{"records":[{"value":"v","partition":"one"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"partition"}},
		{name: "object for headers", json: js(`{"records":[{"value":"v","headers":{"h":"eA=="}}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"line 1:36", "{"}},
		{name: "null record", json: js(`{"records":[null]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"line 1:13", "null"}},
		{name: "unknown field", json: js(`{"records":[{"vaule":"v"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{`"vaule"`}},
		{name: "unknown top-level field", json: js(`{"topic_name":"x","records":[{"value":"v"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{`"topic_name"`}},
		{name: "field given twice", json: js(`{"records":[{"value":"a","value":"b"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"value"}},
		{name: "missing body", json: js(""),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records", "at least one record"}},
		{name: "invalid base64 in value_bytes", json: js(`{"records":[{"value_bytes":"not base64!"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"valueBytes"}},
		{name: "invalid base64 in key_bytes", json: js(`{"records":[{"key_bytes":"***","value":"v"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"keyBytes"}},
		{name: "invalid timestamp", json: js(`{"records":[{"value":"v","timestamp":"yesterday"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"Timestamp", `"yesterday"`}},
		{name: "timestamp before 1970", grpc: req(refused, &kbridgev1.Record{Value: proto.String("v"), Timestamp: &timestamppb.Timestamp{Seconds: -1}}),
			json: js(`{"records":[{"value":"v","timestamp":"1969-12-31T23:59:59Z"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[0].timestamp", "1970"}},
		{name: "form-encoded body on the JSON route",
			call: &httpCall{path: "/v1/topics/" + refused + "/records", contentType: "application/x-www-form-urlencoded", body: "records=v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"JSON"}},
		{name: "XML body on the JSON route",
			call: &httpCall{path: "/v1/topics/" + refused + "/records", contentType: "application/xml", body: "<records><value>v</value></records>"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"JSON"}},

		// Key and value.
		{name: "both key and key_bytes", grpc: req(refused, &kbridgev1.Record{Key: proto.String("k"), KeyBytes: []byte("k"), Value: proto.String("v")}),
			json: js(`{"records":[{"key":"k","key_bytes":"aw==","value":"v"}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[0].key", "not both"}},
		{name: "both value and value_bytes", grpc: req(refused, &kbridgev1.Record{Value: proto.String("v"), ValueBytes: []byte("v")}),
			json: js(`{"records":[{"value":"v","valueBytes":"dg=="}]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records[0].value", "not both"}},
		{name: "invalid UTF-8 in value", wire: publishWire(refused, protowire.Number(3), []byte{'v', 0xff, 0xfe}),
			json: js("{\"records\":[{\"value\":\"v\xff\xfe\"}]}"),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"UTF-8"}},
		{name: "invalid UTF-8 in key", wire: publishWire(refused, protowire.Number(1), []byte{0xc3, 0x28}),
			code: codes.InvalidArgument, msg: []string{"UTF-8"}},
		{name: "empty records list", grpc: req(refused),
			json: js(`{"records":[]}`),
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"records", "at least one record"}},
		{name: "record with neither key nor value is a tombstone", grpc: req(other, &kbridgev1.Record{}),
			json: js(`{"records":[{}]}`), jsonTopic: other,
			code: codes.OK, status: http.StatusOK, writes: true},

		// The raw route's query and headers.
		{name: "raw route: unknown query parameter", raw: &httpCall{path: "/v1/topics/" + refused + "?kee=k", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{`"kee"`}},
		{name: "raw route: key given twice", raw: &httpCall{path: "/v1/topics/" + refused + "?key=a&key=b", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"key", "2 times"}},
		{name: "raw route: bad percent-encoding in the query", raw: &httpCall{path: "/v1/topics/" + refused + "?key=a%zz", body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"query"}},
		{name: "raw route: Kafka-Header without a name", raw: &httpCall{path: "/v1/topics/" + refused, header: []string{"Kafka-Header-", "x"}, body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"Kafka-Header-", "names no record header"}},
		{name: "raw route: bad percent-encoding in a Kafka-Header name", raw: &httpCall{path: "/v1/topics/" + refused, header: []string{"Kafka-Header-a%zz", "x"}, body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"Kafka-Header-A%zz", "percent-encoding in the name"}},
		{name: "raw route: bad percent-encoding in a Kafka-Header value", raw: &httpCall{path: "/v1/topics/" + refused, header: []string{"Kafka-Header-a", "100%"}, body: "v"},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"Kafka-Header-A", "%25"}},

		// Routing.
		{name: "unknown path", call: &httpCall{path: "/v1/topic/" + refused + "/records", body: "{}"},
			code: codes.NotFound, status: http.StatusNotFound, msg: []string{"no such endpoint", "/v1/topic/"}},
		{name: "path below the JSON route", call: &httpCall{path: "/v1/topics/" + refused + "/records/0", body: "{}"},
			code: codes.NotFound, status: http.StatusNotFound, msg: []string{"no such endpoint"}},
		{name: "GET on the publish route", call: &httpCall{method: http.MethodGet, path: "/v1/topics/" + refused + "/records"},
			code: codes.Unimplemented, status: http.StatusMethodNotAllowed, msg: []string{"GET", "use POST"}},
		{name: "DELETE on the raw route", call: &httpCall{method: http.MethodDelete, path: "/v1/topics/" + refused},
			code: codes.Unimplemented, status: http.StatusMethodNotAllowed, msg: []string{"DELETE", "use POST"}},
		{name: "PUT on the publish route", call: &httpCall{method: http.MethodPut, path: "/v1/topics/" + refused + "/records", contentType: "application/json", body: `{"records":[{"value":"v"}]}`},
			code: codes.Unimplemented, status: http.StatusMethodNotAllowed, msg: []string{"PUT", "use POST"}},
		{name: "unknown gRPC method", do: func(t *testing.T) []answer {
			err := kb.conn.Invoke(context.Background(), "/kbridge.v1.ProducerService/Delete", req(refused, &kbridgev1.Record{Value: proto.String("v")}), &kbridgev1.PublishResponse{})
			return []answer{grpcAnswer("gRPC invoke", err)}
		}, code: codes.Unimplemented, msg: []string{"Delete"}},
		{name: "unknown gRPC service", do: func(t *testing.T) []answer {
			err := kb.conn.Invoke(context.Background(), "/kbridge.v2.ProducerService/Publish", req(refused, &kbridgev1.Record{Value: proto.String("v")}), &kbridgev1.PublishResponse{})
			return []answer{grpcAnswer("gRPC invoke", err)}
		}, code: codes.Unimplemented, msg: []string{"kbridge.v2.ProducerService"}},
		{name: "invalid Grpc-Timeout header", call: &httpCall{path: "/v1/topics/" + refused + "/records", contentType: "application/json",
			header: []string{"Grpc-Timeout", "soon"}, body: `{"records":[{"value":"v"}]}`},
			code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"grpc-timeout"}},

		// Callers that give up.
		{name: "1 ms deadline beside a patient caller", do: func(t *testing.T) []answer {
			return oneMillisecondDeadline(t, kb, other)
		}, code: codes.DeadlineExceeded, status: http.StatusGatewayTimeout, msg: []string{"deadline"}, writes: true},
		{name: "far-future timestamp beside a patient caller", do: func(t *testing.T) []answer {
			future := &kbridgev1.Record{Value: proto.String("future"), Timestamp: timestamppb.New(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))}
			return oneBadRecordBesidePatient(t, kb, other, future, "timestamp")
		}, code: codes.OK, writes: true},
		{name: "keyless record to a compacted topic beside a patient caller", do: func(t *testing.T) []answer {
			return oneBadRecordBesidePatient(t, kb, compacted, &kbridgev1.Record{Value: proto.String("no key")}, "key")
		}, code: codes.OK, writes: true},
		{name: "client disconnects mid-stream", do: func(t *testing.T) []answer {
			return disconnectMidStream(t, kb, other)
		}, code: codes.OK, writes: true},
		{name: "raw body cut short by a disconnect", do: func(t *testing.T) []answer {
			return cutShort(t, kb, "/v1/topics/"+refused+"?key=k", "text/plain", "0123456789", 100)
		}, code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"body"}},
		{name: "JSON body cut short by a disconnect", do: func(t *testing.T) []answer {
			return cutShort(t, kb, "/v1/topics/"+refused+"/records", "application/json", `{"records":[{"value":"01234`, 100)
		}, code: codes.InvalidArgument, status: http.StatusBadRequest, msg: []string{"EOF"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cluster.EndOffsets(t, refused)
			var answers []answer
			if tt.grpc != nil {
				_, err := kb.client.Publish(context.Background(), tt.grpc)
				answers = append(answers, grpcAnswer("gRPC Publish", err))
				if !tt.unaryOnly {
					answers = append(answers, streamAnswer(t, kb, tt.grpc))
				}
			}
			if tt.wire != nil {
				answers = append(answers, grpcAnswer("gRPC Publish (hand-built message)", publishRaw(kb.conn, tt.wire)))
				answers = append(answers, streamRaw(t, kb.conn, tt.wire))
			}
			if tt.json != nil {
				topic := tt.jsonTopic
				if topic == "" {
					topic = refused
				}
				if !strings.Contains(topic, "%") {
					topic = url.PathEscape(topic)
				}
				answers = append(answers, restAnswer(t, kb, "REST JSON route", httpCall{path: "/v1/topics/" + topic + "/records", contentType: "application/json", body: *tt.json}))
			}
			if tt.raw != nil {
				answers = append(answers, restAnswer(t, kb, "REST raw route", *tt.raw))
			}
			if tt.call != nil {
				method := tt.call.method
				if method == "" {
					method = http.MethodPost
				}
				answers = append(answers, restAnswer(t, kb, "HTTP "+method+" "+tt.call.path, *tt.call))
			}
			if tt.do != nil {
				answers = append(answers, tt.do(t)...)
			}
			if len(answers) == 0 {
				t.Fatal("the case sends nothing")
			}
			for _, a := range answers {
				if testing.Verbose() {
					t.Logf("%s: %v %d %q", a.via, a.code, a.status, a.msg)
				}
				checkAnswer(t, a, tt.code, tt.status, tt.msg)
			}
			if !tt.writes {
				if after := cluster.EndOffsets(t, refused); after != before {
					t.Errorf("a refused request wrote %d records to Kafka", after-before)
				}
			}
		})
	}

	// Still healthy: ready, and every route publishes.
	if code, body := kb.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the table = %d %s", code, body)
	}
	if code, body := kb.get(t, "/livez"); code != http.StatusOK {
		t.Errorf("/livez after the table = %d %s", code, body)
	}
	healthy := other
	before := cluster.EndOffsets(t, healthy)
	if _, err := kb.client.Publish(context.Background(), req(healthy, &kbridgev1.Record{Value: proto.String("after")})); err != nil {
		t.Errorf("gRPC publish after the table: %v", err)
	}
	if a := streamAnswer(t, kb, req(healthy, &kbridgev1.Record{Value: proto.String("after")})); a.code != codes.OK {
		t.Errorf("stream publish after the table: %v %s", a.code, a.msg)
	}
	if code, body := kb.post(t, "/v1/topics/"+healthy+"/records", "application/json", []byte(`{"records":[{"value":"after"}]}`)); code != http.StatusOK {
		t.Errorf("REST publish after the table: %d %s", code, body)
	}
	if code, body := kb.post(t, "/v1/topics/"+healthy, "text/plain", []byte("after")); code != http.StatusOK {
		t.Errorf("raw publish after the table: %d %s", code, body)
	}
	if after := cluster.EndOffsets(t, healthy); after < before+4 {
		t.Errorf("%d records written after the table, want at least 4", after-before)
	}
	// Every publish above has been acknowledged, so anything a refused
	// request had buffered would have been written by now.
	if n := cluster.EndOffsets(t, refused); n != 0 {
		t.Errorf("refused requests wrote %d records to %s", n, refused)
	}
	if logs := kb.logs.String(); strings.Contains(logs, "panic") {
		t.Errorf("kbridge logged a panic:\n%s", logs)
	}
}

// leaks are signs of internals in a message meant for people (callers, or
// operators reading a startup error): Go identifiers qualified by a package,
// the Kafka client's names, stack traces and panics, fmt's complaints,
// pointers.
var leaks = regexp.MustCompile(`\*?\b(app|bridge|server|config|kbridgev1|kgo|kerr|kadm|kmsg|errors|fmt|url|http|json|protojson|proto|yaml|runtime|net|io|os|context)\.[A-Z]\w*|\bkgo\b|franz|goroutine \d|\.go:\d|panic|runtime error|0xc0|%!|<nil>|github\.com|google\.golang\.org`)

// checkAnswer asserts one answer: the code (gRPC, and in REST error bodies),
// the HTTP status, that the message names the problem, and that it leaks
// nothing.
func checkAnswer(t *testing.T, a answer, code codes.Code, httpStatus int, msg []string) {
	t.Helper()
	if a.grpc {
		if a.code != code {
			t.Errorf("%s: code %v %q, want %v", a.via, a.code, a.msg, code)
		}
	} else {
		if a.status != httpStatus {
			t.Errorf("%s: status %d %s, want %d", a.via, a.status, a.body, httpStatus)
		}
		if a.status == http.StatusMethodNotAllowed && a.header.Get("Allow") != http.MethodPost {
			t.Errorf("%s: 405 with Allow %q, want POST", a.via, a.header.Get("Allow"))
		}
		if a.status >= 300 {
			var e struct {
				Code    *int32  `json:"code"`
				Message *string `json:"message"`
			}
			if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Code == nil || e.Message == nil {
				t.Errorf("%s: error body is not {code, message} JSON: %s", a.via, a.body)
			} else if codes.Code(*e.Code) != code {
				t.Errorf("%s: error body code %v, want %v: %s", a.via, codes.Code(*e.Code), code, a.body)
			}
			if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s: error body Content-Type %q, want application/json", a.via, ct)
			}
		}
	}
	for _, m := range msg {
		if !a.clientMade && !strings.Contains(a.msg, m) {
			t.Errorf("%s: message %q does not contain %q", a.via, a.msg, m)
		}
	}
	if leak := leaks.FindString(a.msg); leak != "" {
		t.Errorf("%s: message %q leaks internals (%q)", a.via, a.msg, leak)
	}
}

func grpcAnswer(via string, err error) answer {
	st := status.Convert(err)
	return answer{via: via, grpc: true, code: st.Code(), msg: st.Message()}
}

// streamAnswer sends req as the only request of a new PublishStream. The
// answer is the response's error (or OK), and the stream must then end
// cleanly: a bad request fails only itself.
func streamAnswer(t *testing.T, kb *instance, req *kbridgev1.PublishRequest) answer {
	t.Helper()
	via := "gRPC PublishStream"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := kb.client.PublishStream(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if err := stream.Send(&kbridgev1.PublishStreamRequest{Topic: req.Topic, Records: req.Records, RequestId: "r1"}); err != nil {
		t.Fatalf("stream send: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("stream close send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		a := grpcAnswer(via+" (stream ended)", err)
		return a
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("%s: after the response the stream ended with %v, want a clean end", via, err)
	}
	if resp.GetRequestId() != "r1" {
		t.Errorf("%s: response for request %q, want r1", via, resp.GetRequestId())
	}
	if e := resp.GetError(); e != nil {
		return answer{via: via, grpc: true, code: codeOf(e.GetCode()), msg: e.GetMessage()}
	}
	for i, r := range resp.GetResults() {
		if r.Error != nil || r.Partition == nil || r.Offset == nil {
			t.Errorf("%s: result %d = %v", via, i, r)
		}
	}
	return answer{via: via, grpc: true, code: codes.OK}
}

// codeOf reads a canonical code name ("INVALID_ARGUMENT") as in the
// Error message of a stream response.
func codeOf(name string) codes.Code {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if snake(c.String()) == name {
			return c
		}
	}
	if name == "CANCELLED" {
		return codes.Canceled
	}
	return codes.Unknown
}

func snake(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// restAnswer sends c to the REST listener.
func restAnswer(t *testing.T, kb *instance, via string, c httpCall) answer {
	t.Helper()
	a, err := sendREST(kb, via, c)
	if err != nil {
		t.Fatalf("%s: %v", via, err)
	}
	return a
}

// sendREST is restAnswer for goroutines other than the test's.
func sendREST(kb *instance, via string, c httpCall) (answer, error) {
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader = strings.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(body) // no length known: sent chunked
	}
	req, err := http.NewRequest(method, "http://"+kb.addrs.HTTP+c.path, body)
	if err != nil {
		return answer{}, err
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	for i := 0; i+1 < len(c.header); i += 2 {
		req.Header.Add(c.header[i], c.header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	return httpAnswer(via, resp), nil
}

func httpAnswer(via string, resp *http.Response) answer {
	out, _ := io.ReadAll(resp.Body)
	a := answer{via: via, status: resp.StatusCode, header: resp.Header, body: string(out)}
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(out, &e) == nil {
		a.msg = e.Message
	}
	return a
}

// rawMessage is a message already in wire format, for rawCodec.
type rawMessage []byte

// rawCodec sends rawMessage as it is, so that a test can send what the Go
// protobuf library refuses to marshal (invalid UTF-8 in a string field).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*rawMessage), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*rawMessage) = append(rawMessage(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// publishRaw calls Publish with a hand-built request.
func publishRaw(conn *grpc.ClientConn, wire []byte) error {
	in, out := rawMessage(wire), rawMessage(nil)
	return conn.Invoke(context.Background(), kbridgev1.ProducerService_Publish_FullMethodName, &in, &out, grpc.ForceCodec(rawCodec{}))
}

// streamRaw sends a hand-built request as the only request of a new
// PublishStream. Either a response carrying the error or the end of the
// stream is an answer; a response counts.
func streamRaw(t *testing.T, conn *grpc.ClientConn, wire []byte) answer {
	t.Helper()
	via := "gRPC PublishStream (hand-built message)"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: "PublishStream", ServerStreams: true, ClientStreams: true}
	stream, err := conn.NewStream(ctx, desc, kbridgev1.ProducerService_PublishStream_FullMethodName, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	in := rawMessage(wire)
	if err := stream.SendMsg(&in); err != nil {
		t.Fatalf("stream send: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("stream close send: %v", err)
	}
	var out rawMessage
	if err := stream.RecvMsg(&out); err != nil {
		return grpcAnswer(via+" (stream ended)", err)
	}
	var resp kbridgev1.PublishStreamResponse
	if err := proto.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%s: response: %v", via, err)
	}
	if e := resp.GetError(); e != nil {
		return answer{via: via, grpc: true, code: codeOf(e.GetCode()), msg: e.GetMessage()}
	}
	return answer{via: via, grpc: true, code: codes.OK}
}

// publishWire is a PublishRequest to topic with one record whose string
// field number field holds the given bytes, as they are.
func publishWire(topic string, field protowire.Number, value []byte) []byte {
	var rec []byte
	rec = protowire.AppendTag(rec, field, protowire.BytesType)
	rec = protowire.AppendBytes(rec, value)
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.BytesType)
	msg = protowire.AppendString(msg, topic)
	msg = protowire.AppendTag(msg, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, rec)
	return msg
}

// oneMillisecondDeadline publishes a record without a deadline and, while it
// waits (the linger holds it), records with a 1 ms deadline over gRPC and
// REST. The impatient callers get DEADLINE_EXCEEDED; the patient caller's
// record, batched with theirs, is written.
func oneMillisecondDeadline(t *testing.T, kb *instance, topic string) []answer {
	t.Helper()
	patient := make(chan error, 1)
	go func() {
		_, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("patient")}}})
		patient <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := kb.client.Publish(ctx, &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("impatient")}}})
	// The Go client words a deadline error itself: "context deadline
	// exceeded" when its own timer fires first, grpc-go's "stream terminated
	// by RST_STREAM" when the server's does. Only the code is kbridge's. The
	// REST answer's message is kbridge's either way.
	impatient := grpcAnswer("gRPC Publish, 1 ms deadline", err)
	impatient.clientMade = true
	answers := []answer{impatient}
	answers = append(answers, restAnswer(t, kb, "REST JSON route, Grpc-Timeout 1m", httpCall{
		path: "/v1/topics/" + topic + "/records", contentType: "application/json",
		header: []string{"Grpc-Timeout", "1m"}, body: `{"records":[{"value":"impatient"}]}`,
	}))
	if err := <-patient; err != nil {
		t.Errorf("the patient caller failed beside the impatient ones: %v", err)
	}
	return answers
}

// oneBadRecordBesidePatient publishes a valid record of a patient caller
// and, at the same time, a record the broker may refuse (a real broker does;
// kfake accepts it); the linger puts both in one batch. Whatever happens to
// the bad record, refused with INVALID_ARGUMENT and a message naming what
// (problem), or written, the patient caller's record must be written: one
// caller's bad record must not fail another's. The answer is the patient
// caller's, and then a later publish to the same topic.
func oneBadRecordBesidePatient(t *testing.T, kb *instance, topic string, bad *kbridgev1.Record, problem string) []answer {
	t.Helper()
	patient := make(chan error, 1)
	go func() {
		_, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Key: proto.String("k"), Value: proto.String("patient")}}})
		patient <- err
	}()
	_, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{bad}})
	if st := status.Convert(err); err != nil {
		if st.Code() != codes.InvalidArgument || !strings.Contains(strings.ToLower(st.Message()), problem) {
			t.Errorf("the bad record: %v %q, want OK or INVALID_ARGUMENT naming the %s", st.Code(), st.Message(), problem)
		}
	}
	answers := []answer{grpcAnswer("gRPC Publish, the patient caller", <-patient)}
	_, err = kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Key: proto.String("k"), Value: proto.String("later")}}})
	return append(answers, grpcAnswer("gRPC Publish, later", err))
}

// compactedTopic creates a one-partition topic with cleanup.policy=compact,
// where Kafka refuses records without a key.
func compactedTopic(t *testing.T, cluster *bridgetest.Cluster) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic := bridgetest.TopicName(t) + "-compacted"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": proto.String("compact")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return topic
}

// disconnectMidStream opens a stream, has one request answered, sends more
// and goes away without reading. The server must end the stream's handler
// and go on serving: the answer is a publish on a new stream afterwards.
func disconnectMidStream(t *testing.T, kb *instance, topic string) []answer {
	t.Helper()
	ended := streamCalls(t, kb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := kb.client.PublishStream(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	send := func(id string) {
		if err := stream.Send(&kbridgev1.PublishStreamRequest{Topic: topic, RequestId: id, Records: []*kbridgev1.Record{{Value: proto.String(id)}}}); err != nil {
			t.Fatalf("stream send %s: %v", id, err)
		}
	}
	send("first")
	if resp, err := stream.Recv(); err != nil || resp.Error != nil {
		t.Fatalf("first response: %v %v", resp, err)
	}
	for _, id := range []string{"second", "third", "fourth"} {
		send(id)
	}
	cancel() // the client goes away with three requests in flight
	eventually(t, 30*time.Second, "the stream's handler to end", func() bool { return streamCalls(t, kb) == ended+1 })
	return []answer{streamAnswer(t, kb, &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("after")}}})}
}

// streamCalls is the number of PublishStream calls that have ended, whatever
// their code, from kbridge_grpc_requests_total.
func streamCalls(t *testing.T, kb *instance) int {
	t.Helper()
	_, metrics := kb.get(t, "/metrics")
	n := 0
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "kbridge_grpc_requests_total{") || !strings.Contains(line, `method="/kbridge.v1.ProducerService/PublishStream"`) {
			continue
		}
		var v int
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		n += v
	}
	return n
}

// cutShort sends a POST whose body ends (the client half-closes) before
// its declared Content-Length, and reads the answer.
func cutShort(t *testing.T, kb *instance, path, contentType, body string, declared int) []answer {
	t.Helper()
	conn, err := net.Dial("tcp", kb.addrs.HTTP)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", path, kb.addrs.HTTP, contentType, declared, body)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to a body cut short: %v", err)
	}
	defer resp.Body.Close()
	return []answer{httpAnswer("HTTP POST "+path+" cut short", resp)}
}
