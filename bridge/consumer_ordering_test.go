package bridge

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// concurrencyProbe is a webhook script that works for a moment on every
// request and records how many requests it had at once.
type concurrencyProbe struct {
	now, peak atomic.Int32
	then      func(d bridgetest.Delivery) bridgetest.Reply // nil: 200
}

func (p *concurrencyProbe) script(d bridgetest.Delivery) bridgetest.Reply {
	n := p.now.Add(1)
	for {
		peak := p.peak.Load()
		if n <= peak || p.peak.CompareAndSwap(peak, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond) // the app's work
	p.now.Add(-1)
	if p.then != nil {
		return p.then(d)
	}
	return bridgetest.Reply{}
}

// keyedRecords returns n records for partition 0 whose keys cycle through
// keys (a nil entry is a record without a key).
func keyedRecords(n int, keys [][]byte) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Partition: 0, Key: keys[i%len(keys)], Value: []byte("v" + strconv.Itoa(i))}
	}
	return recs
}

// firstByKey returns, per key ("<nil>" for none), the offsets in the order
// they were first delivered.
func firstByKey(ds []bridgetest.Delivery) map[string][]int64 {
	seen := map[int64]bool{}
	out := map[string][]int64{}
	for _, d := range ds {
		if seen[d.Offset] {
			continue
		}
		seen[d.Offset] = true
		k := "<nil>"
		if d.Key != nil {
			k = "k:" + *d.Key
		}
		out[k] = append(out[k], d.Offset)
	}
	return out
}

// TestConsumerOrderingKey: records of one key (and the records without a
// key, as one lane) arrive in offset order; different keys in parallel, up
// to max_in_flight.
func TestConsumerOrderingKey(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	probe := &concurrencyProbe{}
	hook := bridgetest.NewWebhook(t, probe.script)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Ordering, cfg.MaxInFlight = OrderingKey, 8
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	keys := [][]byte{[]byte("a"), []byte("b"), nil, []byte("c"), []byte(""), []byte("d"), []byte("e"), []byte("f"), []byte("g"), []byte("h"), []byte("i"), []byte("j")}
	const n = 600
	cluster.Produce(t, topic, keyedRecords(n, keys)...)
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, n, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: n})
	byKey := firstByKey(hook.Deliveries())
	if len(byKey) != len(keys) {
		t.Errorf("deliveries in %d lanes, want %d (the null key and the empty key are different lanes)", len(byKey), len(keys))
	}
	for k, offs := range byKey {
		if !slices.IsSorted(offs) {
			t.Errorf("key %s delivered out of order: %v", k, offs)
		}
	}
	if p := probe.peak.Load(); p < 2 || p > 8 {
		t.Errorf("peak requests in flight = %d, want between 2 and max_in_flight 8", p)
	}
}

// TestConsumerOrderingKeyFailureHoldsItsKey: a failing record holds back
// its own key and the commit point, not the other keys.
func TestConsumerOrderingKeyFailureHoldsItsKey(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	var healthy atomic.Bool
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 1 && !healthy.Load() {
			return bridgetest.Reply{Status: http.StatusInternalServerError}
		}
		return bridgetest.Reply{}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Ordering, cfg.MaxInFlight = OrderingKey, 4
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	// Offset 1 is key "bad"; every fifth record after it is "bad" too.
	recs := keyedRecords(31, [][]byte{[]byte("ok1"), []byte("bad"), []byte("ok2"), []byte("ok3"), []byte("ok4")})
	cluster.Produce(t, topic, recs...)
	runConsumer(t, cfg, nil)

	others := 0
	for _, r := range recs {
		if string(r.Key) != "bad" {
			others++
		}
	}
	hook.WaitAcked(t, others, deliveryTimeout)
	for _, d := range hook.Deliveries() {
		if d.Header.Get("Kafka-Key") == "bad" && d.Offset != 1 {
			t.Fatalf("offset %d of key bad was delivered while offset 1 of that key fails", d.Offset)
		}
	}
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: 1})
	healthy.Store(true)
	hook.WaitAcked(t, len(recs), deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: int64(len(recs))})
}

// TestConsumerOrderingNone: records of a partition in parallel, never more
// than max_in_flight at once, each delivered and committed.
func TestConsumerOrderingNone(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 2)
	probe := &concurrencyProbe{}
	hook := bridgetest.NewWebhook(t, probe.script)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Ordering, cfg.MaxInFlight = OrderingNone, 5
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	const n = 300
	cluster.Produce(t, topic, testRecords(0, n, "a")...)
	cluster.Produce(t, topic, testRecords(1, n, "b")...)
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 2*n, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: n, 1: n})
	if p := probe.peak.Load(); p < 3 || p > 10 {
		t.Errorf("peak requests in flight = %d, want more than one partition's worth of parallelism and at most 2×5", p)
	}
}

// TestConsumerOrderingNoneWindow: a stuck record bounds how far the others
// may run ahead (the window), and the partition's fetches pause.
func TestConsumerOrderingNoneWindow(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 0 {
			<-release
		}
		return bridgetest.Reply{}
	})
	t.Cleanup(free)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Ordering, cfg.MaxInFlight = OrderingNone, 4
	const window = 4 * windowPerInFlight
	n := window + 3*maxQueuedRecords
	cluster.Produce(t, topic, testRecords(0, n, "v")...)
	rc := runConsumer(t, cfg, nil)

	hook.WaitAcked(t, window-1, deliveryTimeout) // everything in the window but the stuck one
	if !rc.waitPaused() {
		t.Error("the partition's fetches did not pause behind a full window")
	}
	if got := len(hook.Acked()); got != window-1 {
		t.Errorf("%d records acknowledged behind the stuck one, want the window's %d", got, window-1)
	}
	free()
	hook.WaitAcked(t, n, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: int64(n)})
}

// TestConsumerParallelShutdown: in the parallel modes, a record still in
// flight at shutdown holds the commit point however many records after it
// were acknowledged.
func TestConsumerParallelShutdown(t *testing.T) {
	for _, ordering := range []string{OrderingKey, OrderingNone} {
		t.Run(ordering, func(t *testing.T) {
			const n, hung = 40, 3
			cluster := bridgetest.NewCluster(t)
			topic := cluster.Topic(t, 1)
			hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
				return bridgetest.Reply{Hang: d.Offset == hung}
			})
			cfg := testConsumerConfig(t, cluster, topic, hook.URL)
			cfg.Ordering, cfg.MaxInFlight = ordering, 4
			commitChecker(t, cluster, hook, cfg.Group, topic, nil)
			cluster.Produce(t, topic, keyedRecords(n, [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})...)
			rc := runConsumer(t, cfg, nil)

			// Everything below the hung record, and more after it, gets
			// through (in none ordering, in any order).
			hook.WaitFor(t, deliveryTimeout, "offsets 0-2 and ten records acknowledged", func(ds []bridgetest.Delivery) bool {
				acked := map[int64]bool{} // WaitFor holds the webhook's lock: read ds, not Acked
				for _, d := range ds {
					if d.Status/100 == 2 {
						acked[d.Offset] = true
					}
				}
				return acked[0] && acked[1] && acked[2] && len(acked) >= 10
			})
			rc.close(t, 300*time.Millisecond)
			if got := cluster.Committed(t, cfg.Group, topic); got[0] != hung {
				t.Errorf("committed after Close = %v, want partition 0 at the hung offset %d", got, hung)
			}
		})
	}
}

// TestConsumerParallelRebalance: two members in key ordering with
// partitions moving while records flow: no commit passes an unacknowledged
// record, every record is acknowledged, each key's records in order.
func TestConsumerParallelRebalance(t *testing.T) {
	testRebalanceWhileFlowing(t, func(cfg *ConsumerConfig) {
		cfg.Ordering, cfg.MaxInFlight = OrderingKey, 8
	})
}

// testRebalanceWhileFlowing runs the subscription that configure shapes
// with two members, one joining and one leaving while records of five
// keys flow through four partitions. A commit checker runs throughout;
// every record must be acknowledged and committed, and, unless the
// ordering is none, each lane's records (a partition's, or a key's in it)
// first delivered in offset order.
func testRebalanceWhileFlowing(t *testing.T, configure func(*ConsumerConfig)) {
	t.Helper()
	const partitions, n = 4, 150
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, partitions)
	hook := bridgetest.NewWebhook(t, func(bridgetest.Delivery) bridgetest.Reply {
		return bridgetest.Reply{Delay: time.Millisecond}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	configure(&cfg)
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("c"), nil, []byte("e")}
	produce := func() {
		for p := range int32(partitions) {
			recs := keyedRecords(n, keys)
			for _, r := range recs {
				r.Partition = p
			}
			cluster.Produce(t, topic, recs...)
		}
	}
	a := runConsumer(t, cfg, nil)
	produce()
	hook.WaitAcked(t, partitions*n/4, deliveryTimeout)
	runConsumer(t, cfg, nil)
	produce()
	hook.WaitAcked(t, partitions*n, deliveryTimeout)
	a.close(t, 5*time.Second)
	produce()
	hook.WaitAcked(t, 3*partitions*n, deliveryTimeout)
	want := map[int32]int64{}
	for p := range int32(partitions) {
		want[p] = 3 * n
	}
	waitCommitted(t, cluster, cfg.Group, topic, want)
	if cfg.Ordering == OrderingNone {
		return
	}

	byLane := map[string][]int64{}
	seen := map[bridgetest.Coordinate]bool{}
	for _, d := range hook.Deliveries() {
		c := bridgetest.Coordinate{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}
		if seen[c] {
			continue
		}
		seen[c] = true
		lane := strconv.Itoa(int(d.Partition))
		if cfg.Ordering == OrderingKey && d.Key != nil {
			lane += "/" + *d.Key
		}
		byLane[lane] = append(byLane[lane], d.Offset)
	}
	for lane, offs := range byLane {
		if !slices.IsSorted(offs) {
			t.Errorf("lane %s first delivered out of order: %v", lane, offs)
		}
	}
}

// TestConsumerMaxConcurrency: max_concurrency caps the requests in flight
// to the app across the subscription, below what the partitions' in-flight
// limits would allow (3 partitions × 20).
func TestConsumerMaxConcurrency(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 3)
	probe := &concurrencyProbe{}
	hook := bridgetest.NewWebhook(t, probe.script)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Ordering, cfg.MaxInFlight = OrderingNone, 20
	cfg.Webhook.MaxConcurrency = 4
	const n = 200
	for p := range int32(3) {
		cluster.Produce(t, topic, testRecords(p, n, "v")...)
	}
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, 3*n, deliveryTimeout)
	if p := probe.peak.Load(); p > 4 || p < 2 {
		t.Errorf("peak requests in flight = %d, want at most max_concurrency 4 (and more than 1)", p)
	}
}
