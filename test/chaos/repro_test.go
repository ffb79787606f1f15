package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// TestStreamPublishTimeoutBounded is the regression test of a finding of
// the chaos run (fixed in server/producer.go, streamCall.response): a
// PublishStream request whose caller set no deadline is not bounded by
// KBRIDGE_PUBLISH_TIMEOUT, which the README says bounds "how long any
// record may wait for Kafka", while a unary Publish is. The broker (kfake)
// holds produce requests, as a frozen or dying broker does; the records
// are then in flight, and franz-go cannot fail them safely when their
// context ends. Expected: both calls answered UNAVAILABLE within the
// publish timeout (plus slack). Before the fix the stream request waited until
// the broker answered.
func TestStreamPublishTimeoutBounded(t *testing.T) {
	const timeout, slack, hold = 2 * time.Second, 3 * time.Second, 20 * time.Second
	cluster := bridgetest.NewCluster(t)
	fake := cluster.RequireFake(t, "holds produce requests")
	topic := cluster.Topic(t, 1)
	dir := t.TempDir()
	config := filepath.Join(dir, "kbridge.yaml")
	yaml := fmt.Sprintf("brokers: [%s]\npublish_timeout: %v\n", cluster.Brokers[0], timeout)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	inst, err := startInstance(buildKbridge(t, dir), config, dir, "kb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.kill() })
	api := kbridgev1.NewProducerServiceClient(inst.conn)
	ctx := context.Background() // no deadline: the publish timeout applies
	value := "v"
	records := []*kbridgev1.Record{{Value: &value}}
	stream, err := api.PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&kbridgev1.PublishStreamRequest{Topic: topic, Records: records, RequestId: "warm-up"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("warm-up: %v", err)
	}

	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		fake.SleepControl(func() { <-gate })
		return nil, nil, false
	})
	time.AfterFunc(hold, release) // the broker "comes back" after hold

	began := time.Now()
	unary := make(chan time.Duration, 1)
	go func() {
		_, err := api.Publish(ctx, &kbridgev1.PublishRequest{Topic: topic, Records: records})
		t.Logf("unary Publish answered after %v: %v", time.Since(began).Round(100*time.Millisecond), err)
		unary <- time.Since(began)
	}()
	if err := stream.Send(&kbridgev1.PublishStreamRequest{Topic: topic, Records: records, RequestId: "held"}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	streamTook := time.Since(began)
	t.Logf("PublishStream request answered after %v: %v, %v", streamTook.Round(100*time.Millisecond), resp, err)
	if took := <-unary; took > timeout+slack {
		t.Errorf("unary Publish without a deadline answered after %v, want within the %v publish timeout", took, timeout)
	}
	if streamTook > timeout+slack {
		t.Errorf("PublishStream request without a deadline answered after %v (when the broker answered), want within the %v publish timeout", streamTook.Round(100*time.Millisecond), timeout)
	}
}
