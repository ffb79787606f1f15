package app_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/app"
	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// TestStartsWithoutKafkaAndRecovers: with Kafka down at start kbridge serves
// probes, stays not ready and says why; once a broker appears it turns ready
// without a restart, and gRPC health follows.
func TestStartsWithoutKafkaAndRecovers(t *testing.T) {
	addr := bridgetest.ClosedAddr(t)
	kb := start(t, map[string]string{"KBRIDGE_BROKERS": addr})

	if code, _ := kb.get(t, "/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d while Kafka is down, want 200", code)
	}
	code, body := kb.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for Kafka") {
		t.Errorf("/readyz = %d %q, want 503 naming Kafka", code, body)
	}
	health := healthpb.NewHealthClient(kb.conn)
	if resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("grpc health = %v %v, want NOT_SERVING", resp, err)
	}

	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Skipf("could not start a broker on the freed port %d: %v", port, err)
	}
	t.Cleanup(fake.Close)
	kb.waitReady(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "kbridge.v1.ProducerService"})
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grpc health never SERVING: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func TestInvalidConfigExits2(t *testing.T) {
	var logs syncBuffer
	code := app.Run(context.Background(), []string{"--publish-timeout=soon", "--partitioner=fnv"}, func(string) (string, bool) { return "", false }, &logs, app.Hooks{})
	if code != app.ExitConfig {
		t.Errorf("exit code %d, want %d", code, app.ExitConfig)
	}
	for _, want := range []string{"publish-timeout", "partitioner"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("error output does not name %s:\n%s", want, logs.String())
		}
	}
}

func TestHelpExits0(t *testing.T) {
	var out syncBuffer
	if code := app.Run(context.Background(), []string{"--help"}, func(string) (string, bool) { return "", false }, &out, app.Hooks{}); code != app.ExitOK {
		t.Errorf("--help exit code %d", code)
	}
	if !strings.Contains(out.String(), "KBRIDGE_BROKERS") {
		t.Errorf("--help does not document KBRIDGE_BROKERS:\n%s", out.String())
	}
}

// TestShutdownWithOpenStream: an open PublishStream never ends by itself.
// Shutdown drains it: requests already published are answered, then the
// stream ends with UNAVAILABLE "shutting down", without waiting out the
// shutdown budget (25 s here), and kbridge exits 0.
func TestShutdownWithOpenStream(t *testing.T) {
	_, topic, kb := startOnTopic(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := kb.client.PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&kbridgev1.PublishStreamRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("v")}}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.Error != nil {
		t.Fatalf("first response: %v %v", resp, err)
	}
	begin := time.Now()
	if code := kb.stop(t); code != app.ExitOK {
		t.Fatalf("exit code %d", code)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("shutdown took %s: the open stream was not drained, the budget was waited out", took)
	}
	_, err = stream.Recv()
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "shutting down") {
		t.Errorf("stream ended with %v, want UNAVAILABLE shutting down", err)
	}
}

func TestAdminEndpoints(t *testing.T) {
	_, topic, kb := startOnTopic(t)
	if _, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("v")}}}); err != nil {
		t.Fatal(err)
	}
	wants := []string{
		`kbridge_publish_records_total{result="ok"} 1`,
		`kbridge_grpc_requests_total{code="OK",method="/kbridge.v1.ProducerService/Publish"} 1`,
		"kbridge_kafka_up 1",
		"kbridge_producer_produce_records_total",
		"go_goroutines",
		"process_resident_memory_bytes",
	}
	// franz-go's metric hooks run after the produce promise that answered
	// the call, so the scrape is repeated until it caught up.
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, metrics := kb.get(t, "/metrics")
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a scrape: nothing to wait on
	}
	for _, m := range missing {
		t.Errorf("/metrics lacks %s", m)
	}
	code, doc := kb.get(t, "/openapi.json")
	if code != http.StatusOK || !strings.Contains(doc, "/v1/topics/{topic}/records") {
		t.Errorf("/openapi.json = %d, lacks the publish route", code)
	}
}
