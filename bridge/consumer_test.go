package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// deliveryTimeout bounds every wait of the delivery tests; generous, as the
// real broker's group joins take seconds.
const deliveryTimeout = 60 * time.Second

// testConsumerConfig is a subscription of topic with fast retries and
// commits, so tests finish quickly.
func testConsumerConfig(tb testing.TB, c *bridgetest.Cluster, topic, url string) ConsumerConfig {
	group := "g-" + bridgetest.TopicName(tb)
	retry := DefaultRetryPolicy()
	retry.InitialBackoff = 10 * time.Millisecond
	retry.MaxBackoff = 100 * time.Millisecond
	retry.AttemptTimeout = 5 * time.Second
	return ConsumerConfig{
		Name:             "test",
		Client:           ClientConfig{Brokers: c.Brokers},
		Topics:           []string{topic},
		Group:            group,
		SessionTimeout:   6 * time.Second,
		RebalanceTimeout: 20 * time.Second,
		CommitInterval:   50 * time.Millisecond,
		URL:              url,
		Request:          WebhookRequestSettings{Group: group},
		Retry:            retry,
	}
}

// runConsumer starts a consumer; it is closed at the end of the test unless
// the test closes it first (closeConsumer).
type runningConsumer struct {
	*Consumer
	reg  *prometheus.Registry
	done chan error
}

func runConsumer(tb testing.TB, cfg ConsumerConfig, dlq *DeadLetterWriter) *runningConsumer {
	tb.Helper()
	reg := prometheus.NewRegistry()
	c, err := NewConsumer(cfg, dlq, testLogger(tb), reg)
	if err != nil {
		tb.Fatalf("NewConsumer: %v", err)
	}
	rc := &runningConsumer{Consumer: c, reg: reg, done: make(chan error, 1)}
	go func() { rc.done <- c.Run(context.Background()) }()
	tb.Cleanup(func() { rc.close(tb, 10*time.Second) })
	return rc
}

// close shuts the consumer down with the given drain budget and waits for
// Run to return.
func (rc *runningConsumer) close(tb testing.TB, drain time.Duration) {
	tb.Helper()
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	fctx, cancel2 := context.WithTimeout(context.Background(), drain+10*time.Second)
	defer cancel2()
	rc.Close(dctx, fctx)
	select {
	case err := <-rc.done:
		if err != nil {
			tb.Errorf("Run: %v", err)
		}
		rc.done <- err // let a second close see it too
	case <-time.After(30 * time.Second):
		tb.Fatal("Run did not return after Close")
	}
}

// waitPaused polls the consumer's status until one of its partitions has
// paused fetches; false if none did within deliveryTimeout.
func (rc *runningConsumer) waitPaused() bool {
	for deadline := time.Now().Add(deliveryTimeout); time.Now().Before(deadline); {
		for _, p := range rc.Status().Partitions {
			if p.Paused {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond) // polling the consumer's status
	}
	return false
}

// testRecords returns n records for one partition with values v<prefix><i>.
func testRecords(partition int32, n int, prefix string) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Partition: partition, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(prefix + strconv.Itoa(i))}
	}
	return recs
}

// waitCommitted polls the group's committed offsets until want holds.
func waitCommitted(tb testing.TB, c *bridgetest.Cluster, group, topic string, want map[int32]int64) {
	tb.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	var got map[int32]int64
	for time.Now().Before(deadline) {
		if got = c.Committed(tb, group, topic); maps_equal(got, want) {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling the broker: nothing to wait on
	}
	tb.Fatalf("committed offsets of %s = %v, want %v", group, got, want)
}

func maps_equal(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// commitChecker samples the group's committed offsets while a test runs and
// fails it the moment one lies beyond what the webhook acknowledged (plus
// the offsets done lists as dead-lettered). It stops at the end of the test.
func commitChecker(tb testing.TB, c *bridgetest.Cluster, hook *bridgetest.Webhook, group, topic string, done func() map[int32]int64) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		samples := 0
		for ctx.Err() == nil {
			// Read commits first: the acknowledgements can only grow after.
			committed := c.Committed(tb, group, topic)
			acked := hook.AckedPrefix(topic, nil)
			var extra map[int32]int64
			if done != nil {
				extra = done()
			}
			for p, off := range committed {
				if off > max(acked[p], extra[p]) {
					tb.Errorf("commit ahead of the app: partition %d committed at %d, acknowledged prefix ends at %d", p, off, acked[p])
					return
				}
			}
			samples++
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		tb.Logf("commit checker: %d samples", samples)
	})
}

// firstDeliveries returns the offsets of partition p in the order they were
// first delivered.
func firstDeliveries(ds []bridgetest.Delivery, p int32) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, d := range ds {
		if d.Partition == p && !seen[d.Offset] {
			seen[d.Offset] = true
			out = append(out, d.Offset)
		}
	}
	return out
}

func TestConsumerDeliversInOrderAndCommits(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 3)
	hook := bridgetest.NewWebhook(t, nil)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	const perPartition = 40
	for p := range int32(3) {
		cluster.Produce(t, topic, testRecords(p, perPartition, fmt.Sprintf("p%d-", p))...)
	}
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 3*perPartition, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: perPartition, 1: perPartition, 2: perPartition})

	ds := hook.Deliveries()
	for p := range int32(3) {
		got := firstDeliveries(ds, p)
		if !slices.IsSorted(got) || len(got) != perPartition {
			t.Errorf("partition %d delivered %v, want offsets 0..%d in order", p, got, perPartition-1)
		}
	}
	d := ds[0]
	wantKey := fmt.Sprintf("%s/%s/%d/%d", cfg.Group, topic, d.Partition, d.Offset)
	if got := d.Header.Get("Idempotency-Key"); got != wantKey {
		t.Errorf("Idempotency-Key = %q, want %q", got, wantKey)
	}
	if want := fmt.Sprintf("p%d-%d", d.Partition, d.Offset); string(d.Body) != want {
		t.Errorf("body = %q, want %q", d.Body, want)
	}
}

// TestConsumerRetriesThenAcks: 500 twice, then 200 → three attempts numbered
// 1..3; the record behind it waits; nothing is committed past it before
// the 200.
func TestConsumerRetriesThenAcks(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 2 && d.Attempt <= 2 {
			return bridgetest.Reply{Status: http.StatusInternalServerError}
		}
		return bridgetest.Reply{}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Retry.InitialBackoff = 100 * time.Millisecond // several commit intervals between attempts
	cfg.Retry.MaxBackoff = 200 * time.Millisecond
	cfg.Retry.Jitter = 0
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	cluster.Produce(t, topic, testRecords(0, 5, "v")...)
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 5, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 5})

	var attempts []int
	var order []string
	for _, d := range hook.Deliveries() {
		if d.Offset == 2 {
			attempts = append(attempts, d.Attempt)
		}
		order = append(order, fmt.Sprintf("%d/%d", d.Offset, d.Status))
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("offset 2 attempts = %v, want [1 2 3]", attempts)
	}
	want := []string{"0/200", "1/200", "2/500", "2/500", "2/200", "3/200", "4/200"}
	if !slices.Equal(order, want) {
		t.Errorf("deliveries = %v, want %v", order, want)
	}
}

// testLogger logs into the test's output, shown when it fails or with -v.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// TestConsumerStartLatest: a new group with StartAtLatest skips what was
// in the topic before it joined, and delivers what comes after.
func TestConsumerStartLatest(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, nil)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.StartAtLatest = true
	cluster.Produce(t, topic, testRecords(0, 3, "old")...)
	runConsumer(t, cfg, nil)

	// The position is resolved after the group is joined, so records are
	// produced until one arrives: every earlier one may be skipped, none
	// of the old ones may be delivered.
	deadline := time.Now().Add(deliveryTimeout)
	for i := 0; len(hook.Deliveries()) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("nothing produced after the group joined was delivered")
		}
		cluster.Produce(t, topic, &kgo.Record{Partition: 0, Value: []byte("new" + strconv.Itoa(i))})
		time.Sleep(50 * time.Millisecond) // pacing the producer, not waiting for a condition
	}
	for _, d := range hook.Deliveries() {
		if d.Offset < 3 {
			t.Errorf("offset %d (%q) was delivered: it was in the topic before a group that starts at the latest offset", d.Offset, d.Body)
		}
	}
}
