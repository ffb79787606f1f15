package bridge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// newTestDLQ returns a dead-letter writer on the cluster, closed at the end
// of the test.
func newTestDLQ(t *testing.T, c *bridgetest.Cluster) *DeadLetterWriter {
	t.Helper()
	w, err := NewDeadLetterWriter(DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}, MaxRecordBytes: 1 << 20}, testLogger(t), nil)
	if err != nil {
		t.Fatalf("NewDeadLetterWriter: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// refuseOffset1 answers 422 (permanent) for offset 1, 200 for the rest.
func refuseOffset1(d bridgetest.Delivery) bridgetest.Reply {
	if d.Offset == 1 {
		return bridgetest.Reply{Status: http.StatusUnprocessableEntity}
	}
	return bridgetest.Reply{}
}

// TestConsumerDeadLettersPermanent: a 422 sends the record to the DLQ at
// once, with its provenance, and the partition moves on and commits.
func TestConsumerDeadLettersPermanent(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic, dlqTopic := cluster.Topic(t, 1), cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, refuseOffset1)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.DeadLetterTopic = dlqTopic
	recs := testRecords(0, 3, "v")
	recs[1].Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}
	cluster.Produce(t, topic, recs...)
	rc := runConsumer(t, cfg, newTestDLQ(t, cluster))

	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 3})
	dead := cluster.ReadAll(t, dlqTopic, 1)
	if len(dead) != 1 {
		t.Fatalf("DLQ holds %d records, want 1", len(dead))
	}
	d := dead[0]
	if string(d.Value) != "v1" || string(d.Key) != "k1" {
		t.Errorf("DLQ record key/value = %q/%q, want k1/v1", d.Key, d.Value)
	}
	want := map[string]string{
		"trace":                    "abc",
		DeadLetterHeaderTopic:      topic,
		DeadLetterHeaderPartition:  "0",
		DeadLetterHeaderOffset:     "1",
		DeadLetterHeaderGroup:      cfg.Group,
		DeadLetterHeaderAttempts:   "1",
		DeadLetterHeaderLastStatus: "422",
	}
	for k, v := range want {
		if got := headerValue(d.Headers, k); got != v {
			t.Errorf("DLQ header %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{DeadLetterHeaderError, DeadLetterHeaderFirstAttempt, DeadLetterHeaderLastAttempt} {
		if headerValue(d.Headers, k) == "<absent>" {
			t.Errorf("DLQ header %s missing", k)
		}
	}
	if n := len(hook.Deliveries()); n != 3 {
		t.Errorf("webhook saw %d requests, want 3 (a permanent status is not retried under dead-letter)", n)
	}
	if got := testutil.ToFloat64(rc.m.deadLettered); got != 1 {
		t.Errorf("dead-lettered metric = %v, want 1", got)
	}
}

// TestConsumerDeadLetterWriteFailing: while the DLQ write fails, the record
// is not done and nothing is committed past it; once the write succeeds,
// the partition commits.
func TestConsumerDeadLetterWriteFailing(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	fake := cluster.RequireFake(t, "injects produce errors")
	topic, dlqTopic := cluster.Topic(t, 1), cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, refuseOffset1)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.DeadLetterTopic = dlqTopic
	cluster.Produce(t, topic, testRecords(0, 3, "v")...)

	var failing atomic.Bool
	var failures atomic.Int32
	failing.Store(true)
	fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		// Only the DLQ writer produces once the test records are in (and
		// newer requests name topics by ID), so every produce is failed.
		if !failing.Load() {
			return nil, nil, false
		}
		failures.Add(1)
		return produceErrorResponse(req, kerr.PolicyViolation.Code), nil, true
	})
	runConsumer(t, cfg, newTestDLQ(t, cluster))

	deadline := time.Now().Add(deliveryTimeout)
	for failures.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a counter the broker's goroutine sets
	}
	if failures.Load() < 3 {
		t.Fatalf("DLQ write failed %d times, want at least 3 retries", failures.Load())
	}
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 1}) // offset 0 done, 1 is not
	if n := len(cluster.ReadAll(t, dlqTopic, 0)); n != 0 {
		t.Fatalf("DLQ holds %d records while its writes fail", n)
	}
	failing.Store(false)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 3})
	if n := len(cluster.ReadAll(t, dlqTopic, 1)); n != 1 {
		t.Errorf("DLQ holds %d records, want 1", n)
	}
}

// TestConsumerBlockPolicy: without a DLQ, a record that exhausted its
// retries is retried forever; nothing past it is committed; once the
// webhook recovers, delivery resumes.
func TestConsumerBlockPolicy(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	var healthy atomic.Bool
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 1 && !healthy.Load() {
			return bridgetest.Reply{Status: http.StatusUnprocessableEntity} // permanent: retried anyway under block
		}
		return bridgetest.Reply{}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Retry.MaxAttempts = 2
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	cluster.Produce(t, topic, testRecords(0, 3, "v")...)
	rc := runConsumer(t, cfg, nil)

	hook.WaitFor(t, deliveryTimeout, "6 attempts of offset 1", func(ds []bridgetest.Delivery) bool {
		n := 0
		for _, d := range ds {
			if d.Offset == 1 {
				n++
			}
		}
		return n >= 6
	})
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 1})
	if got := testutil.ToFloat64(rc.m.blocked); got != 1 {
		t.Errorf("blocked metric = %v, want 1", got)
	}
	for _, d := range hook.Deliveries() {
		if d.Offset == 2 {
			t.Fatal("offset 2 was delivered while offset 1 blocks the partition")
		}
	}
	healthy.Store(true)
	hook.WaitAcked(t, 3, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 3})
}

// TestConsumerRetriesTimeoutsAndResets: an attempt that times out and one
// whose connection is reset are retried, and count as attempts.
func TestConsumerRetriesTimeoutsAndResets(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		switch {
		case d.Offset == 0 && d.Attempt == 1:
			return bridgetest.Reply{Hang: true}
		case d.Offset == 1 && d.Attempt == 1:
			return bridgetest.Reply{Reset: true}
		}
		return bridgetest.Reply{}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Retry.AttemptTimeout = 200 * time.Millisecond
	cluster.Produce(t, topic, testRecords(0, 2, "v")...)
	rc := runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 2, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 2})
	for _, d := range hook.Deliveries() {
		if d.Status == http.StatusOK && d.Attempt != 2 {
			t.Errorf("offset %d acked on attempt %d, want 2", d.Offset, d.Attempt)
		}
	}
	if got := testutil.ToFloat64(rc.m.outcomes[Retryable]); got != 2 {
		t.Errorf("retryable attempts = %v, want 2", got)
	}
}

// TestConsumerRetryAfter: a 429 with Retry-After: 1 delays the next attempt
// by about a second, not by the (much shorter) backoff.
func TestConsumerRetryAfter(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Attempt == 1 {
			return bridgetest.Reply{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}}
		}
		return bridgetest.Reply{}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Retry.MaxBackoff = 5 * time.Second
	cluster.Produce(t, topic, testRecords(0, 1, "v")...)
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 1, deliveryTimeout)
	ds := hook.Deliveries()
	if len(ds) != 2 {
		t.Fatalf("got %d attempts, want 2", len(ds))
	}
	// A lower bound only: the wait must be the app's, not the 10 ms backoff.
	if gap := ds[1].At.Sub(ds[0].At); gap < 900*time.Millisecond {
		t.Errorf("second attempt came %v after the 429, want about 1s (Retry-After)", gap)
	}
}

// TestConsumerUnreachableThenUp: kbridge starts before the app. Attempts
// that cannot connect never count, so even with one attempt allowed and a
// DLQ, nothing is dead-lettered; delivery starts when the app comes up.
func TestConsumerUnreachableThenUp(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic, dlqTopic := cluster.Topic(t, 1), cluster.Topic(t, 1)
	addr := bridgetest.ClosedAddr(t)
	cfg := testConsumerConfig(t, cluster, topic, "http://"+addr+"/events")
	cfg.Retry.MaxAttempts = 1
	cfg.DeadLetterTopic = dlqTopic
	cluster.Produce(t, topic, testRecords(0, 3, "v")...)
	rc := runConsumer(t, cfg, newTestDLQ(t, cluster))

	deadline := time.Now().Add(deliveryTimeout)
	for testutil.ToFloat64(rc.m.outcomes[Unreachable]) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a metric
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	hook := bridgetest.NewWebhookOn(t, lis, nil)
	hook.WaitAcked(t, 3, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 3})
	if n := len(cluster.ReadAll(t, dlqTopic, 0)); n != 0 {
		t.Errorf("DLQ holds %d records; an unreachable app must never exhaust a record", n)
	}
}

// TestConsumerRedirectNotFollowed: a 302 is a failed attempt: not acked,
// not followed (the target would ack), retried to the subscription's URL.
func TestConsumerRedirectNotFollowed(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic, dlqTopic := cluster.Topic(t, 1), cluster.Topic(t, 1)
	var followed atomic.Int32
	elsewhere := bridgetest.NewWebhook(t, func(bridgetest.Delivery) bridgetest.Reply {
		followed.Add(1)
		return bridgetest.Reply{}
	})
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Attempt == 1 {
			return bridgetest.Reply{Status: http.StatusFound, Header: http.Header{"Location": {elsewhere.URL}}}
		}
		return bridgetest.Reply{}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.DeadLetterTopic = dlqTopic
	cluster.Produce(t, topic, testRecords(0, 1, "v")...)
	runConsumer(t, cfg, newTestDLQ(t, cluster))

	hook.WaitAcked(t, 1, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 1})
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
	if n := len(cluster.ReadAll(t, dlqTopic, 0)); n != 0 {
		t.Errorf("DLQ holds %d records after a 302 then 200", n)
	}
}

// TestConsumerOddHeaders: keys and headers no HTTP header could carry as
// they are arrive percent-encoded and decode back to the original bytes.
func TestConsumerOddHeaders(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, nil)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	headers := []kgo.RecordHeader{
		{Key: "x-crlf", Value: []byte("a\r\nInjected: yes")},
		{Key: "x-nul", Value: []byte("a\x00b")},
		{Key: "not a token", Value: []byte("é ü")},
		{Key: "repeat", Value: []byte("one")},
		{Key: "repeat", Value: []byte("two")},
		{Key: "pct", Value: []byte("100% + more")},
	}
	key := []byte{0x00, 0xff, '\n', '%', 'k'}
	cluster.Produce(t, topic, &kgo.Record{Partition: 0, Key: key, Value: []byte{0, 1, 2}, Headers: headers})
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 1, deliveryTimeout)
	d := hook.Deliveries()[0]
	if d.Header.Get("Injected") != "" {
		t.Fatal("a CR/LF in a header value injected a header")
	}
	decode := func(s string) string {
		v, err := url.PathUnescape(s)
		if err != nil {
			t.Fatalf("percent-decode %q: %v", s, err)
		}
		return v
	}
	if got := decode(d.Header.Get("Kafka-Key")); got != string(key) {
		t.Errorf("Kafka-Key decodes to %q, want %q", got, key)
	}
	// Header names are case-insensitive (Go's server folds them), so they
	// are compared folded; values, and their order, exactly.
	got := map[string][]string{}
	for name, vs := range d.Header {
		if len(name) > len(headerKafkaPrefix) && strings.EqualFold(name[:len(headerKafkaPrefix)], headerKafkaPrefix) {
			n := strings.ToLower(decode(name[len(headerKafkaPrefix):]))
			for _, v := range vs {
				got[n] = append(got[n], decode(v))
			}
		}
	}
	want := map[string][]string{}
	for _, h := range headers {
		want[strings.ToLower(h.Key)] = append(want[strings.ToLower(h.Key)], string(h.Value))
	}
	if len(got) != len(want) {
		t.Errorf("Kafka-Header-* names %q, want %q", got, want)
	}
	for name, vs := range want {
		if !slices.Equal(got[name], vs) {
			t.Errorf("header %q decodes to %q, want %q", name, got[name], vs)
		}
	}
	if string(d.Body) != "\x00\x01\x02" {
		t.Errorf("body = %q", d.Body)
	}
}

// TestConsumerMissingDeadLetterTopic: a subscription whose DLQ topic does
// not exist does not start (it could not dead-letter), says why, and never
// joins its group or delivers anything.
func TestConsumerMissingDeadLetterTopic(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, nil)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.DeadLetterTopic = bridgetest.TopicName(t) // never created
	cluster.Produce(t, topic, testRecords(0, 1, "v")...)
	c, err := NewConsumer(cfg, newTestDLQ(t, cluster), testLogger(t), nil)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, ErrTopicNotFound) || !strings.Contains(err.Error(), cfg.DeadLetterTopic) {
		t.Fatalf("Run = %v, want ErrTopicNotFound naming %s", err, cfg.DeadLetterTopic)
	}
	c.Close(ctx, ctx)
	if st := c.Status(); st.State != "stopped" || !strings.Contains(st.LastError, cfg.DeadLetterTopic) {
		t.Errorf("status = %+v, want stopped with the reason", st)
	}
	if n := len(hook.Deliveries()); n != 0 {
		t.Errorf("webhook got %d deliveries from a subscription that must not start", n)
	}
	if got := cluster.Committed(t, cfg.Group, topic); len(got) != 0 {
		t.Errorf("committed %v", got)
	}
}

// TestConsumerPausesBusyPartition: while a partition's record hangs, its
// fetches pause once the queue is full instead of piling records up; once
// the record is acknowledged, the backlog drains and fetching resumes.
func TestConsumerPausesBusyPartition(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	release := make(chan struct{})
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 0 {
			<-release
		}
		return bridgetest.Reply{}
	})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the webhook closes: it waits for its handlers
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	const n = 8 * maxQueuedRecords
	cluster.Produce(t, topic, testRecords(0, n, "v")...)
	rc := runConsumer(t, cfg, nil)

	bound := maxQueuedRecords + maxPollRecords // one poll may land after the pause
	if !rc.waitPaused() {
		t.Fatal("the partition's fetches never paused while its record hung")
	}
	for range 50 { // the queue stays bounded while the record hangs
		for _, p := range rc.Status().Partitions {
			if p.Queued > bound {
				t.Fatalf("%d records queued behind a hanging record, want at most %d", p.Queued, bound)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := testutil.ToFloat64(rc.m.paused); got != 1 {
		t.Errorf("paused partitions metric = %v, want 1", got)
	}
	free()
	hook.WaitAcked(t, n, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: n})
	if got := testutil.ToFloat64(rc.m.paused); got != 0 {
		t.Errorf("paused partitions metric = %v after the backlog drained, want 0", got)
	}
}

// TestConsumerThrottleSlowsSubscription: a 429 with Retry-After on one
// partition holds back the other partitions' next attempts too: the app
// asked kbridge, not one record, to slow down.
func TestConsumerThrottleSlowsSubscription(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 2)
	var throttledAt atomic.Int64
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Partition == 0 && d.Offset == 5 && d.Attempt == 1 {
			throttledAt.Store(d.At.UnixNano())
			return bridgetest.Reply{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}}
		}
		return bridgetest.Reply{Delay: 5 * time.Millisecond}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Retry.MaxBackoff = 5 * time.Second
	cluster.Produce(t, topic, testRecords(0, 10, "a")...)
	cluster.Produce(t, topic, testRecords(1, 400, "b")...)
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 410, deliveryTimeout)
	at := time.Unix(0, throttledAt.Load())
	// The request partition 1 had in flight at the 429 may still arrive
	// just after it; none may start later within the second asked for.
	for _, d := range hook.Deliveries() {
		if d.Partition == 1 && d.At.After(at.Add(100*time.Millisecond)) && d.At.Before(at.Add(900*time.Millisecond)) {
			t.Fatalf("partition 1 offset %d was sent %v after the 429 that asked for 1s", d.Offset, d.At.Sub(at))
		}
	}
}
