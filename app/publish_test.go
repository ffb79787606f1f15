package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func brokersEnv(c *bridgetest.Cluster) map[string]string {
	return map[string]string{"KBRIDGE_BROKERS": strings.Join(c.Brokers, ",")}
}

// TestPublishGRPC publishes every shape of record over unary gRPC and reads
// them back from the broker: keys, values, null and empty, headers in order
// with repeats, explicit partition 0, timestamps and trace context.
func TestPublishGRPC(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 3)
	kb := start(t, brokersEnv(cluster), "--log-level=debug", "--publish-timeout=5s")
	kb.waitReady(t)

	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	req := &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{
		{Key: proto.String("k1"), Value: proto.String(`{"a":1}`), Partition: proto.Int32(0),
			Headers: []*kbridgev1.Header{{Key: "h", Value: []byte("1")}, {Key: "h", Value: []byte("2")}, {Key: "bin", Value: []byte{0, 0xff}}}},
		{KeyBytes: []byte{0, 1, 2}, ValueBytes: []byte{0xde, 0xad}, Partition: proto.Int32(0), Timestamp: timestamppb.New(ts)},
		{Partition: proto.Int32(0)}, // null key, null value
		{Key: proto.String(""), Value: proto.String(""), Partition: proto.Int32(0)},
	}}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent, "tracestate", "k=v")
	resp, err := kb.client.Publish(ctx, req)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for i, r := range resp.Results {
		if r.Error != nil || r.Partition == nil || r.GetPartition() != 0 || r.GetOffset() != int64(i) {
			t.Errorf("result %d = %v, want partition 0 offset %d", i, r, i)
		}
	}

	got := cluster.ReadAll(t, topic, 4)
	want := []struct {
		key, value []byte
		headers    []kgo.RecordHeader
	}{
		{[]byte("k1"), []byte(`{"a":1}`), []kgo.RecordHeader{{Key: "h", Value: []byte("1")}, {Key: "h", Value: []byte("2")}, {Key: "bin", Value: []byte{0, 0xff}}}},
		{[]byte{0, 1, 2}, []byte{0xde, 0xad}, nil},
		{nil, nil, nil},
		{[]byte{}, []byte{}, nil},
	}
	for i, w := range want {
		r := got[i]
		if !sameBytes(r.Key, w.key) || !sameBytes(r.Value, w.value) {
			t.Errorf("record %d: key %q value %q, want key %q value %q (nil vs empty matters)", i, r.Key, r.Value, w.key, w.value)
		}
		wantHeaders := append(w.headers, kgo.RecordHeader{Key: "traceparent", Value: []byte(traceparent)}, kgo.RecordHeader{Key: "tracestate", Value: []byte("k=v")})
		if fmt.Sprint(r.Headers) != fmt.Sprint(wantHeaders) {
			t.Errorf("record %d headers = %v, want %v", i, r.Headers, wantHeaders)
		}
	}
	if !got[1].Timestamp.Equal(ts) {
		t.Errorf("timestamp = %v, want %v", got[1].Timestamp, ts)
	}
}

// sameBytes is bytes.Equal that also tells Kafka's null from empty.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// TestPublishStreamKeepsOrder sends 10,000 records on one stream, as fast as
// the client can, and checks the responses come back in request order and
// the records sit in the partition in the same order.
func TestPublishStreamKeepsOrder(t *testing.T) {
	const n = 10_000
	cluster, topic, kb := startOnTopic(t, "--stream-max-in-flight=500")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := kb.client.PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			req := &kbridgev1.PublishStreamRequest{Topic: topic, RequestId: fmt.Sprint(i),
				Records: []*kbridgev1.Record{{Key: proto.String("same-key"), Value: proto.String(fmt.Sprint(i))}}}
			if err := stream.Send(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	for i := range n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if resp.RequestId != fmt.Sprint(i) || resp.Error != nil || resp.Results[0].GetOffset() != int64(i) {
			t.Fatalf("response %d = %v, want request %d at offset %d", i, resp, i, i)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
	for i, r := range cluster.ReadAll(t, topic, n) {
		if string(r.Value) != fmt.Sprint(i) {
			t.Fatalf("record at offset %d has value %s", r.Offset, r.Value)
		}
	}
}

// TestPublishREST covers both REST endpoints: the JSON batch and the raw body
// with headers, key, CloudEvents and trace context.
func TestPublishREST(t *testing.T) {
	cluster, topic, kb := startOnTopic(t)

	code, body := kb.post(t, "/v1/topics/"+topic+"/records", "application/json",
		[]byte(`{"records":[{"key":"42","value":"{\"a\":1}","headers":[{"key":"h","value":"aGk="}]},{"value_bytes":"AAE="}]}`))
	if code != http.StatusOK || !strings.Contains(body, `"offset":"1"`) {
		t.Fatalf("JSON publish = %d %s", code, body)
	}
	form := []byte("a=1&b=%20x")
	code, body = kb.post(t, "/v1/topics/"+topic+"?key=k%2F1", "application/x-www-form-urlencoded", form,
		"Kafka-Header-Source", "orders%25app", "Kafka-Header-Source", "second", "ce-id", "e-1", "ce-type", "order.created",
		"traceparent", traceparent)
	if code != http.StatusOK {
		t.Fatalf("raw publish = %d %s", code, body)
	}
	var raw struct {
		Results []struct {
			Partition int32
			Offset    string
		}
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil || len(raw.Results) != 1 || raw.Results[0].Offset != "2" {
		t.Fatalf("raw publish answer %s (%v)", body, err)
	}

	got := cluster.ReadAll(t, topic, 3)
	if string(got[0].Key) != "42" || string(got[0].Value) != `{"a":1}` || string(got[0].Headers[0].Value) != "hi" {
		t.Errorf("JSON record = %q %q %v", got[0].Key, got[0].Value, got[0].Headers)
	}
	if got[1].Key != nil || !bytes.Equal(got[1].Value, []byte{0, 1}) {
		t.Errorf("value_bytes record = %q %q", got[1].Key, got[1].Value)
	}
	r := got[2]
	if string(r.Key) != "k/1" || !bytes.Equal(r.Value, form) {
		t.Errorf("raw record key %q value %q, want k/1 and the body byte for byte", r.Key, r.Value)
	}
	wantHeaders := "[{content-type [97 112 112 108 105 99 97 116 105 111 110 47 120 45 119 119 119 45 102 111 114 109 45 117 114 108 101 110 99 111 100 101 100]} " +
		"{ce_id [101 45 49]} {ce_type [111 114 100 101 114 46 99 114 101 97 116 101 100]} " +
		"{source [111 114 100 101 114 115 37 97 112 112]} {source [115 101 99 111 110 100]} " +
		"{traceparent [" + bytesString(traceparent) + "]}]"
	if fmt.Sprint(r.Headers) != wantHeaders {
		t.Errorf("raw headers = %v\nwant %s", r.Headers, wantHeaders)
	}
}

func bytesString(s string) string {
	return strings.Trim(fmt.Sprint([]byte(s)), "[]")
}

// TestDevMode runs kbridge --dev: the in-memory broker serves other clients
// on its own address and topics are created on first publish.
func TestDevMode(t *testing.T) {
	kb := start(t, map[string]string{"KBRIDGE_DEV": "true", "KBRIDGE_DEV_KAFKA_ADDR": "127.0.0.1:0"})
	kb.waitReady(t)
	code, body := kb.post(t, "/v1/topics/orders?key=k1", "application/json", []byte(`{"a":1}`))
	if code != http.StatusOK {
		t.Fatalf("publish in dev mode = %d %s", code, body)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kb.addrs.DevKafka), kgo.ConsumeTopics("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := cl.PollFetches(ctx).Records()
	if len(recs) != 1 || string(recs[0].Value) != `{"a":1}` || string(recs[0].Key) != "k1" {
		t.Fatalf("read from the dev broker: %v", recs)
	}
	if !strings.Contains(kb.logs.String(), "DEV MODE") {
		t.Errorf("dev mode did not warn that data is in memory")
	}
}
