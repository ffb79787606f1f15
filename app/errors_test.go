package app_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// publishBoth publishes one text record over gRPC and over the REST JSON
// endpoint and returns both answers.
func publishBoth(ctx context.Context, t *testing.T, kb *instance, topic string, restHeaders ...string) (int, string, error) {
	t.Helper()
	_, err := kb.client.Publish(ctx, &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("v")}}})
	code, body := kb.post(t, "/v1/topics/"+topic+"/records", "application/json", []byte(`{"records":[{"value":"v"}]}`), restHeaders...)
	return code, body, err
}

func wantBoth(t *testing.T, grpcErr error, httpCode int, body string, wantCode codes.Code, wantHTTP int, wantMsg string) {
	t.Helper()
	if st := status.Convert(grpcErr); st.Code() != wantCode || !strings.Contains(st.Message(), wantMsg) {
		t.Errorf("gRPC: %v %q, want %v containing %q", st.Code(), st.Message(), wantCode, wantMsg)
	}
	if httpCode != wantHTTP || !strings.Contains(body, wantMsg) {
		t.Errorf("REST: %d %s, want %d containing %q", httpCode, body, wantHTTP, wantMsg)
	}
}

func TestErrorInvalidArgumentWritesNothing(t *testing.T) {
	cluster, topic, kb := startOnTopic(t, "--max-record-bytes=100")

	code, body, err := publishBoth(context.Background(), t, kb, "bad topic!")
	wantBoth(t, err, code, body, codes.InvalidArgument, http.StatusBadRequest, "topic")

	// Two good records and one too large: the whole request is refused.
	big := strings.Repeat("x", 101)
	_, err = kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{
		{Value: proto.String("ok")}, {Value: proto.String("ok")}, {Value: proto.String(big)},
	}})
	code, body = kb.post(t, "/v1/topics/"+topic+"/records", "application/json",
		[]byte(`{"records":[{"value":"ok"},{"value":"`+big+`"}]}`))
	wantBoth(t, err, code, body, codes.InvalidArgument, http.StatusBadRequest, "limit is 100")
	if n := cluster.EndOffsets(t, topic); n != 0 {
		t.Errorf("refused requests wrote %d records", n)
	}
}

func TestErrorNotFound(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	kb := start(t, brokersEnv(cluster)) // auto-creation is off by default
	kb.waitReady(t)
	topic := bridgetest.TopicName(t)
	code, body, err := publishBoth(context.Background(), t, kb, topic)
	wantBoth(t, err, code, body, codes.NotFound, http.StatusNotFound, "does not exist")
	if cluster.Exists(t, topic) {
		t.Errorf("topic %s was created with auto-creation off", topic)
	}
}

func TestErrorUnavailable(t *testing.T) {
	kb := start(t, map[string]string{"KBRIDGE_BROKERS": bridgetest.ClosedAddr(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, body, err := publishBoth(ctx, t, kb, "orders")
	wantBoth(t, err, code, body, codes.Unavailable, http.StatusServiceUnavailable, "kafka is unavailable")
}

// warmUp publishes one record so that the topic lookup and the producer's
// connection are done before a test holds produce requests: a deadline in
// the test must only have to cover the produce itself.
func warmUp(t *testing.T, kb *instance, topic string) {
	t.Helper()
	if _, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("warm-up")}}}); err != nil {
		t.Fatalf("warm-up publish: %v", err)
	}
}

// holdProduce makes the in-process broker sit on produce requests until the
// returned release is called (or the test ends).
func holdProduce(t *testing.T, cluster *bridgetest.Cluster) (release func()) {
	fake := cluster.RequireFake(t, "holds produce requests")
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		fake.SleepControl(func() { <-gate })
		return nil, nil, false
	})
	return release
}

func TestErrorResourceExhausted(t *testing.T) {
	cluster, topic, kb := startOnTopic(t, "--max-buffered-records=1", "--stream-max-in-flight=1")
	warmUp(t, kb, topic)
	release := holdProduce(t, cluster)

	// The first record fills the buffer while the broker holds it.
	first := make(chan error, 1)
	go func() {
		_, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("1")}}})
		first <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := kb.get(t, "/readyz?verbose")
		if strings.Contains(body, `"buffered_records": 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first record never buffered: %s", body)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	code, body, err := publishBoth(context.Background(), t, kb, topic)
	wantBoth(t, err, code, body, codes.ResourceExhausted, http.StatusTooManyRequests, "buffer is full")

	release()
	if err := <-first; err != nil {
		t.Errorf("the held record failed after release: %v", err)
	}
}

// TestErrorDeadlineExceeded: a caller whose deadline passes gets
// DEADLINE_EXCEEDED ("outcome unknown") while its record goes on, and a
// patient caller's record in the same partition is not failed by it.
func TestErrorDeadlineExceeded(t *testing.T) {
	cluster, topic, kb := startOnTopic(t)
	warmUp(t, kb, topic)
	release := holdProduce(t, cluster)

	patient := make(chan error, 1)
	go func() {
		_, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("patient")}}})
		patient <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	code, body, err := publishBoth(ctx, t, kb, topic, "Grpc-Timeout", "200m")
	wantBoth(t, err, code, body, codes.DeadlineExceeded, http.StatusGatewayTimeout, "")

	release()
	if err := <-patient; err != nil {
		t.Errorf("patient caller failed: %v", err)
	}
	// Outcome unknown, not failed: the impatient records were written too
	// (3, after the warm-up record).
	if n := len(cluster.ReadAll(t, topic, 4)); n != 4 {
		t.Errorf("read %d records, want 4", n)
	}
}

// TestErrorOneMillisecondDeadline runs against any broker: a 1 ms deadline
// is answered DEADLINE_EXCEEDED or succeeds, never anything else, and the
// server keeps serving.
func TestErrorOneMillisecondDeadline(t *testing.T) {
	_, topic, kb := startOnTopic(t)
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := kb.client.Publish(ctx, &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("x")}}})
		cancel()
		if c := status.Code(err); c != codes.OK && c != codes.DeadlineExceeded {
			t.Fatalf("1ms deadline answered %v", err)
		}
	}
	if _, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("after")}}}); err != nil {
		t.Fatalf("publish after deadline storm: %v", err)
	}
}
