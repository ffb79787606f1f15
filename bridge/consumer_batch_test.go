package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// batchConfig is testConsumerConfig with batch delivery of up to n events.
func batchConfig(tb testing.TB, c *bridgetest.Cluster, topic, url string, n int) ConsumerConfig {
	cfg := testConsumerConfig(tb, c, topic, url)
	cfg.Batch = BatchConfig{MaxRecords: n, MaxBytes: 1 << 20, MaxWait: 20 * time.Millisecond}
	return cfg
}

// requestsOf groups deliveries by the batch request they came in.
func requestsOf(ds []bridgetest.Delivery) map[int][]bridgetest.Delivery {
	out := map[int][]bridgetest.Delivery{}
	for _, d := range ds {
		out[d.Request] = append(out[d.Request], d)
	}
	return out
}

// prefixWith is partition 0's acknowledged prefix counting the dead
// offsets as done: what a commit checker allows where records are
// dead-lettered (the DLQ tests of single delivery prove that a record is
// done only once its DLQ write is acknowledged; batches share that path).
func prefixWith(hook *bridgetest.Webhook, topic string, dead ...int64) map[int32]int64 {
	acked := hook.Acked()
	off := int64(0)
	for acked[bridgetest.Coordinate{Topic: topic, Partition: 0, Offset: off}] > 0 || slices.Contains(dead, off) {
		off++
	}
	return map[int32]int64{0: off}
}

// TestBatchDeliversInOrderAndCommits: with batch delivery every record
// arrives as an event of a CloudEvents batch, several to a request, each
// partition's in offset order within and across requests, and everything is
// committed.
func TestBatchDeliversInOrderAndCommits(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 3)
	hook := bridgetest.NewWebhook(t, nil)
	cfg := batchConfig(t, cluster, topic, hook.URL, 50)
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	const perPartition = 300
	for p := range int32(3) {
		cluster.Produce(t, topic, testRecords(p, perPartition, fmt.Sprintf("p%d-", p))...)
	}
	rc := runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 3*perPartition, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: perPartition, 1: perPartition, 2: perPartition})

	ds := hook.Deliveries()
	largest := 0
	for _, d := range ds {
		if d.Batch == 0 {
			t.Fatalf("offset %d came as a single-record request", d.Offset)
		}
		if ct := d.Header.Get("Content-Type"); ct != BatchContentType {
			t.Fatalf("Content-Type %q, want %s", ct, BatchContentType)
		}
		if d.Batch > 50 {
			t.Errorf("a batch of %d events, over max_records 50", d.Batch)
		}
		largest = max(largest, d.Batch)
	}
	if largest < 10 {
		t.Errorf("largest batch %d events: a backlog should fill batches", largest)
	}
	for p := range int32(3) {
		if got := firstDeliveries(ds, p); !slices.IsSorted(got) || len(got) != perPartition {
			t.Errorf("partition %d first delivered %v, want offsets 0..%d in order", p, got, perPartition-1)
		}
	}
	d := ds[0]
	var key string
	_ = json.Unmarshal(d.Event["idempotencykey"], &key)
	if want := fmt.Sprintf("%s/%s/%d/%d", cfg.Group, topic, d.Partition, d.Offset); key != want {
		t.Errorf("idempotencykey %q, want %q", key, want)
	}
	if want := fmt.Sprintf("p%d-%d", d.Partition, d.Offset); string(d.Body) != want {
		t.Errorf("data %q, want %q", d.Body, want)
	}
	if got := testutil.ToFloat64(rc.m.acked); got != 3*perPartition {
		t.Errorf("kbridge_records_delivered_total = %v, want %d", got, 3*perPartition)
	}
}

// TestBatchFailureFailsTheRestOfThePartition: with ordering partition, an
// event the reply lists as failed fails every later event of its partition
// in the batch: those are sent again behind it, and none is done (or
// committed) before it is acked. Its attempts are counted; theirs are not.
func TestBatchFailureFailsTheRestOfThePartition(t *testing.T) {
	const bad, n = 7, 30
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == bad && d.Attempt <= 2 {
			return bridgetest.Reply{Status: http.StatusServiceUnavailable}
		}
		return bridgetest.Reply{}
	})
	cfg := batchConfig(t, cluster, topic, hook.URL, 10)
	cfg.Retry.MaxAttempts = 3 // a third failure would exhaust it
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	cluster.Produce(t, topic, testRecords(0, n, "v")...)
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, n, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: n})

	ds := hook.Deliveries()
	var badAttempts []int
	okRequest := 0
	for _, d := range ds {
		if d.Offset == bad {
			badAttempts = append(badAttempts, d.Attempt)
			if d.Status == http.StatusOK {
				okRequest = d.Request
			}
		}
	}
	if !slices.Equal(badAttempts, []int{1, 2, 3}) {
		t.Errorf("offset %d attempts %v, want [1 2 3]", bad, badAttempts)
	}
	// Every record after the failing one that shared a request with one of
	// its failures is sent again, in the request that acks it or later.
	for _, req := range requestsOf(ds) {
		failedHere := slices.ContainsFunc(req, func(d bridgetest.Delivery) bool { return d.Offset == bad && d.Status != http.StatusOK })
		if !failedHere {
			continue
		}
		for _, d := range req {
			if d.Offset <= bad {
				continue
			}
			if !slices.ContainsFunc(ds, func(e bridgetest.Delivery) bool { return e.Offset == d.Offset && e.Request >= okRequest }) {
				t.Errorf("offset %d shared request %d with a failure of offset %d but was not sent again once it was acked (request %d)",
					d.Offset, d.Request, bad, okRequest)
			}
		}
	}
	if got := firstDeliveries(ds, 0); !slices.IsSorted(got) || len(got) != n {
		t.Errorf("first deliveries %v, want 0..%d in order", got, n-1)
	}
}

// TestBatchKeyFailureFailsOnlyItsKey: with ordering key, a failed event
// fails the later events of its key in the batch, not the other keys'.
func TestBatchKeyFailureFailsOnlyItsKey(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	var refused atomic.Bool
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Key != nil && *d.Key == "bad" && d.Batch > 1 && refused.CompareAndSwap(false, true) {
			return bridgetest.Reply{Status: http.StatusInternalServerError}
		}
		return bridgetest.Reply{}
	})
	cfg := batchConfig(t, cluster, topic, hook.URL, 100)
	cfg.Ordering, cfg.MaxInFlight = OrderingKey, 10
	cfg.Batch.MaxWait = 200 * time.Millisecond // one batch gathers every key
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	const n = 40
	keys := [][]byte{[]byte("bad"), []byte("a"), []byte("b"), []byte("c")}
	cluster.Produce(t, topic, keyedRecords(n, keys)...)
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, n, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: n})

	ds := hook.Deliveries()
	failReq, failOffset := -1, int64(-1)
	for _, d := range ds {
		if d.Status != http.StatusOK {
			failReq, failOffset = d.Request, d.Offset
		}
	}
	if failReq < 0 {
		t.Fatal("no event was refused: the test proves nothing")
	}
	sent := map[int64]int{}
	for _, d := range ds {
		sent[d.Offset]++
	}
	for _, d := range requestsOf(ds)[failReq] {
		switch {
		case d.Offset == failOffset:
		case *d.Key == "bad" && d.Offset > failOffset:
			if sent[d.Offset] < 2 {
				t.Errorf("offset %d (key bad) after the failed offset %d in its batch was not sent again", d.Offset, failOffset)
			}
		case sent[d.Offset] != 1:
			t.Errorf("offset %d (key %s) was sent %d times: another key's failure must not fail it", d.Offset, *d.Key, sent[d.Offset])
		}
	}
	for k, offs := range firstByKey(ds) {
		if !slices.IsSorted(offs) {
			t.Errorf("key %s first delivered out of order: %v", k, offs)
		}
	}
}

// TestBatchPermanentEventDeadLettered: an event listed with a permanent
// status goes to the DLQ; the rest of the batch is acked; all committed.
func TestBatchPermanentEventDeadLettered(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	dlqTopic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, refuseOffset1)
	cfg := batchConfig(t, cluster, topic, hook.URL, 10)
	cfg.DeadLetterTopic = dlqTopic
	commitChecker(t, cluster, hook, cfg.Group, topic, func() map[int32]int64 { return prefixWith(hook, topic, 1) })
	cluster.Produce(t, topic, testRecords(0, 5, "v")...)
	runConsumer(t, cfg, newTestDLQ(t, cluster))

	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 5})
	dl := cluster.ReadAll(t, dlqTopic, 1)
	if len(dl) != 1 || string(dl[0].Value) != "v1" {
		t.Fatalf("dead-lettered %v, want v1 alone", dl)
	}
	if got := headerValue(dl[0].Headers, DeadLetterHeaderLastStatus); got != "422" {
		t.Errorf("kbridge-dlq-last-status %q, want 422", got)
	}
	if got := len(hook.Acked()); got != 4 {
		t.Errorf("%d records acked, want 4", got)
	}
}

// TestBatchWholeRequestFailures: a whole batch answered 500, timed out, or
// cut by a reset is sent again; a whole batch refused with a permanent
// status is not dead-lettered as a whole: its events go alone, and only the
// one at fault is dead-lettered.
func TestBatchWholeRequestFailures(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply bridgetest.Reply
	}{
		{"500", bridgetest.Reply{Status: http.StatusInternalServerError, Whole: true}},
		{"reset", bridgetest.Reply{Reset: true}},
		{"timeout", bridgetest.Reply{Hang: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cluster := bridgetest.NewCluster(t)
			topic := cluster.Topic(t, 1)
			var failedOnce atomic.Bool
			hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
				if d.Offset == 3 && failedOnce.CompareAndSwap(false, true) {
					return tt.reply
				}
				return bridgetest.Reply{}
			})
			cfg := batchConfig(t, cluster, topic, hook.URL, 20)
			cfg.Webhook.AttemptTimeout = 300 * time.Millisecond
			commitChecker(t, cluster, hook, cfg.Group, topic, nil)
			cluster.Produce(t, topic, testRecords(0, 10, "v")...)
			runConsumer(t, cfg, nil)
			waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 10})
			if !failedOnce.Load() {
				t.Fatal("the failure was never injected")
			}
			if got := len(hook.Acked()); got != 10 {
				t.Errorf("%d records acked, want 10", got)
			}
		})
	}
}

// TestBatchMalformedReplyRetried: a 2xx whose failed list kbridge cannot
// read is a failed attempt, never taken as "all acked".
func TestBatchMalformedReplyRetried(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	var mu sync.Mutex
	sent := map[string]int{}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var events []map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			var off string
			_ = json.Unmarshal(ev["kafkaoffset"], &off)
			sent[off]++
		}
		if requests++; requests == 1 {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"failed": "offset 2"}`))
		}
	}))
	t.Cleanup(srv.Close)
	cfg := batchConfig(t, cluster, topic, srv.URL, 20)
	cluster.Produce(t, topic, testRecords(0, 5, "v")...)
	runConsumer(t, cfg, nil)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 5})
	mu.Lock()
	defer mu.Unlock()
	if sent["0"] < 2 {
		t.Errorf("offset 0 sent %d times: the batch answered with an unreadable failed list was taken as acked (sent %v)", sent["0"], sent)
	}
}

// TestBatchWholePermanentIsolates: a whole batch refused 413 is not
// dead-lettered as a whole; its events go alone, and only the one the app
// refuses alone is dead-lettered.
func TestBatchWholePermanentIsolates(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	dlqTopic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 4 {
			// Too large together with others, refused on its own too.
			if d.Batch > 1 {
				return bridgetest.Reply{Status: http.StatusRequestEntityTooLarge, Whole: true}
			}
			return bridgetest.Reply{Status: http.StatusUnprocessableEntity}
		}
		return bridgetest.Reply{}
	})
	cfg := batchConfig(t, cluster, topic, hook.URL, 20)
	cfg.Batch.MaxWait = 200 * time.Millisecond
	cfg.DeadLetterTopic = dlqTopic
	commitChecker(t, cluster, hook, cfg.Group, topic, func() map[int32]int64 { return prefixWith(hook, topic, 4) })
	cluster.Produce(t, topic, testRecords(0, 10, "v")...)
	runConsumer(t, cfg, newTestDLQ(t, cluster))

	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 10})
	dl := cluster.ReadAll(t, dlqTopic, 1)
	if len(dl) != 1 || string(dl[0].Value) != "v4" {
		t.Errorf("dead-lettered %v, want v4 alone", dl)
	}
	if got := len(hook.Acked()); got != 9 {
		t.Errorf("%d records acked, want 9", got)
	}
}

// TestBatchMaxBytes: no request body goes over max_bytes, except a single
// event larger than it, which goes alone.
func TestBatchMaxBytes(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, nil)
	const maxBytes = 8 << 10
	cfg := batchConfig(t, cluster, topic, hook.URL, 100)
	cfg.Batch.MaxBytes = maxBytes
	recs := make([]*kgo.Record, 40)
	for i := range recs {
		recs[i] = &kgo.Record{Value: []byte(strings.Repeat("x", 1000))}
	}
	recs[20].Value = []byte(strings.Repeat("y", 3*maxBytes))
	cluster.Produce(t, topic, recs...)
	runConsumer(t, cfg, nil)
	hook.WaitAcked(t, len(recs), deliveryTimeout)

	for r, ds := range requestsOf(hook.Deliveries()) {
		size := 2
		for _, d := range ds {
			b, _ := json.Marshal(d.Event)
			size += len(b) + 1
		}
		if size > maxBytes+512 && len(ds) > 1 { // the re-marshalled events differ a little in size
			t.Errorf("request %d: %d events, about %d bytes, over max_bytes %d", r, len(ds), size, maxBytes)
		}
		if slices.ContainsFunc(ds, func(d bridgetest.Delivery) bool { return d.Offset == 20 }) && len(ds) != 1 {
			t.Errorf("the event over max_bytes shared request %d with %d others", r, len(ds)-1)
		}
	}
}

// TestBatchShutdownCommitsAckedPrefix: in every ordering, a batch hanging
// at shutdown holds the commit point at or before its record, and the
// commit after Close is exactly the acknowledged prefix.
func TestBatchShutdownCommitsAckedPrefix(t *testing.T) {
	for _, ordering := range []string{OrderingPartition, OrderingKey, OrderingNone} {
		t.Run(ordering, func(t *testing.T) {
			const hung = 25
			cluster := bridgetest.NewCluster(t)
			topic := cluster.Topic(t, 1)
			hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
				return bridgetest.Reply{Hang: d.Offset == hung}
			})
			cfg := batchConfig(t, cluster, topic, hook.URL, 10)
			cfg.Ordering = ordering
			if ordering != OrderingPartition {
				cfg.MaxInFlight = 4
			}
			commitChecker(t, cluster, hook, cfg.Group, topic, nil)
			cluster.Produce(t, topic, keyedRecords(60, [][]byte{[]byte("a"), []byte("b"), []byte("c")})...)
			rc := runConsumer(t, cfg, nil)
			hook.WaitFor(t, deliveryTimeout, "the records before the hung batch", func(ds []bridgetest.Delivery) bool {
				return slices.ContainsFunc(ds, func(d bridgetest.Delivery) bool { return d.Offset == hung-10 && d.Status == http.StatusOK })
			})
			rc.close(t, 300*time.Millisecond)
			prefix := hook.AckedPrefix(topic, nil)[0]
			// With key and none, the hung request may hold any record in
			// flight with it, down to offset 0 (a batch gathers runs of
			// several lanes); with partition, only the run from its start.
			if prefix > hung || ordering == OrderingPartition && prefix < hung-10 {
				t.Fatalf("acknowledged prefix %d: want at most the hung offset %d (and, in partition ordering, at least %d)", prefix, hung, hung-10)
			}
			if got := cluster.Committed(t, cfg.Group, topic); got[0] != prefix {
				t.Errorf("committed after Close = %v, want partition 0 at the acknowledged prefix %d", got, prefix)
			}
		})
	}
}

// TestBatchParallelRebalance: two members delivering batches in every
// ordering while partitions move: no commit passes an unacknowledged
// record, every record is acknowledged, each lane's records in order.
func TestBatchParallelRebalance(t *testing.T) {
	for _, ordering := range []string{OrderingPartition, OrderingKey, OrderingNone} {
		t.Run(ordering, func(t *testing.T) {
			testRebalanceWhileFlowing(t, func(cfg *ConsumerConfig) {
				cfg.Batch = BatchConfig{MaxRecords: 16, MaxBytes: 1 << 20, MaxWait: 20 * time.Millisecond}
				cfg.Ordering = ordering
				if ordering != OrderingPartition {
					cfg.MaxInFlight = 8
				}
			})
		})
	}
}

// TestBatchWholeFailureBlamesNoBystander: a record that makes the app fail
// every batch it is in (its batch handler crashes on it) is dead-lettered
// alone; none of its batch-mates is, however often their batches failed.
func TestBatchWholeFailureBlamesNoBystander(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	dlqTopic := cluster.Topic(t, 1)
	const poison = 6
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == poison {
			return bridgetest.Reply{Status: http.StatusInternalServerError, Whole: true}
		}
		return bridgetest.Reply{}
	})
	cfg := batchConfig(t, cluster, topic, hook.URL, 20)
	cfg.Batch.MaxWait = 100 * time.Millisecond
	cfg.Retry.MaxAttempts = 3
	cfg.DeadLetterTopic = dlqTopic
	commitChecker(t, cluster, hook, cfg.Group, topic, func() map[int32]int64 { return prefixWith(hook, topic, poison) })
	cluster.Produce(t, topic, testRecords(0, 15, "v")...)
	runConsumer(t, cfg, newTestDLQ(t, cluster))

	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 15})
	dl := cluster.ReadAll(t, dlqTopic, 1)
	if len(dl) != 1 || string(dl[0].Value) != fmt.Sprintf("v%d", poison) {
		t.Fatalf("dead-lettered %d records (first %q), want v%d alone", len(dl), dl[0].Value, poison)
	}
	if got := headerValue(dl[0].Headers, DeadLetterHeaderAttempts); got != "3" {
		t.Errorf("the poison record's counted attempts = %s, want max_attempts 3 (its failures alone)", got)
	}
	if got := len(hook.Acked()); got != 14 {
		t.Errorf("%d records acked, want the 14 others", got)
	}
}
