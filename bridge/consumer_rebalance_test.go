package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// The tests of this file move partitions while records are in flight: group
// members joining and leaving, shutdown, a lost session, and offsets with
// gaps. Each holds the commit invariant (commitChecker) throughout and checks
// where the committed offsets end.

// TestConsumerRebalanceTwoMembers: two members of one group take partitions
// from each other while records are produced and in flight. Every record is
// acknowledged, each partition's records reach the app first in offset
// order, and the group ends committed at the log end.
func TestConsumerRebalanceTwoMembers(t *testing.T) {
	const partitions, perBatch, batches = 6, 60, 5
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, partitions)
	// A short delay keeps a request in flight on most partitions whenever
	// the group rebalances.
	hook := bridgetest.NewWebhook(t, func(bridgetest.Delivery) bridgetest.Reply {
		return bridgetest.Reply{Delay: 2 * time.Millisecond}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)

	produced := 0
	produce := func(batch int) {
		for p := range int32(partitions) {
			cluster.Produce(t, topic, testRecords(p, perBatch, fmt.Sprintf("b%d-p%d-", batch, p))...)
		}
		produced += partitions * perBatch
	}

	produce(1)
	a := runConsumer(t, cfg, nil)
	hook.WaitAcked(t, perBatch, deliveryTimeout) // A is delivering
	produce(2)
	b := runConsumer(t, cfg, nil)
	waitAssigned(t, b, "the second member", 1)
	produce(3)
	a.close(t, 5*time.Second)
	waitAssigned(t, b, "the second member, after the first left", partitions)
	produce(4)
	a2 := runConsumer(t, cfg, nil) // A comes back and takes some again
	waitAssigned(t, a2, "the restarted member", 1)
	produce(5)

	hook.WaitAcked(t, produced, deliveryTimeout)
	end := endOffsets(t, newAdmin(t, cluster.Brokers), topic)
	waitCommitted(t, cluster, cfg.Group, topic, end)

	ds := hook.Deliveries()
	for p := range int32(partitions) {
		got := firstDeliveries(ds, p)
		if len(got) != batches*perBatch || !slices.IsSorted(got) {
			t.Errorf("partition %d: first deliveries %v, want offsets 0..%d in order", p, got, batches*perBatch-1)
		}
	}
	acks := 0
	for _, d := range ds {
		if d.Status/100 == 2 {
			acks++
		}
	}
	t.Logf("%d records, %d acknowledged deliveries: %d duplicates across the rebalances", produced, acks, acks-produced)
}

// TestConsumerRebalanceWhileClosing: a member that is draining its
// in-flight requests at shutdown loses a partition to a member that joins
// meanwhile. The new owner delivers and commits the partition; the closing
// member's final commit must not rewind it to its own, older point
// (DESIGN.md: commit only partitions this member still owns).
func TestConsumerRebalanceWhileClosing(t *testing.T) {
	const n, held = 20, 5
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 2)
	// The first request for offset held of each partition waits for
	// release; every other request is answered at once.
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	arr := newArrivals()
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if arr.add(d) == 1 && d.Offset == held {
			<-release
		}
		return bridgetest.Reply{}
	})
	t.Cleanup(free) // before the webhook's Close, which waits for handlers
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	cfg.Retry.AttemptTimeout = 2 * deliveryTimeout // held requests never time out
	// A revoke gives the in-flight request half of this; a short one lets
	// a consumer that revokes the draining member's partition the normal
	// way (cancelling the held request after 3 s) pass quickly.
	cfg.RebalanceTimeout = 6 * time.Second
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	for p := range int32(2) {
		cluster.Produce(t, topic, testRecords(p, n, fmt.Sprintf("p%d-", p))...)
	}

	a := runConsumer(t, cfg, nil)
	defer free() // on failure, before the cleanups close the members
	arr.wait(t, "the held requests of both partitions", func(got map[bridgetest.Coordinate]int) bool {
		return got[bridgetest.Coordinate{Topic: topic, Partition: 0, Offset: held}] > 0 &&
			got[bridgetest.Coordinate{Topic: topic, Partition: 1, Offset: held}] > 0
	})
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: held, 1: held})

	// A closes with a drain budget longer than the test needs: it waits
	// for its held requests.
	closed := make(chan struct{})
	drain, cancelDrain := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancelDrain()
	final, cancelFinal := context.WithTimeout(context.Background(), 2*deliveryTimeout)
	defer cancelFinal()
	go func() {
		defer close(closed)
		a.Close(drain, final)
	}()
	eventually(t, "the member to start closing", func() bool { return a.Status().State == "stopping" })

	// B joins; the cooperative rebalance moves one of A's partitions to B,
	// which delivers it from the committed offset (its first record again,
	// answered at once this time) and commits its end.
	runConsumer(t, cfg, nil)
	var moved int32 = -1
	eventually(t, "the joining member to commit a partition's end", func() bool {
		for p, off := range cluster.Committed(t, cfg.Group, topic) {
			if off == n {
				moved = p
				return true
			}
		}
		return false
	})

	free() // A's held requests are acknowledged; A commits and leaves
	select {
	case <-closed:
	case <-time.After(deliveryTimeout):
		t.Fatal("Close did not return")
	}
	if got := cluster.Committed(t, cfg.Group, topic)[moved]; got != n {
		t.Fatalf("partition %d: committed offset %d after the closing member's final commit, want %d: "+
			"it committed a partition it no longer owned, rewinding the new owner's commit", moved, got, n)
	}
	hook.WaitAcked(t, 2*n, deliveryTimeout)
	waitCommitted(t, cluster, cfg.Group, topic, map[int32]int64{0: n, 1: n})
}

// TestConsumerShutdownCommitsAckedPrefix: Close lets the requests in flight
// finish within the drain budget, then commits exactly what the app
// acknowledged; a request that outlasts the budget is cut short, not
// committed, and does not hold Close up.
func TestConsumerShutdownCommitsAckedPrefix(t *testing.T) {
	t.Run("drained", func(t *testing.T) {
		const partitions, n = 2, 100
		cluster := bridgetest.NewCluster(t)
		topic := cluster.Topic(t, partitions)
		arr := newArrivals()
		hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
			arr.add(d)
			return bridgetest.Reply{Delay: 100 * time.Millisecond}
		})
		cfg := testConsumerConfig(t, cluster, topic, hook.URL)
		commitChecker(t, cluster, hook, cfg.Group, topic, nil)
		for p := range int32(partitions) {
			cluster.Produce(t, topic, testRecords(p, n, fmt.Sprintf("p%d-", p))...)
		}
		rc := runConsumer(t, cfg, nil)
		hook.WaitAcked(t, 10, deliveryTimeout)

		rc.close(t, 2*time.Second) // a request takes 100 ms: all in flight finish

		committed := cluster.Committed(t, cfg.Group, topic)
		prefix := hook.AckedPrefix(topic, nil)
		if !offsetsEqual(committed, prefix) {
			t.Errorf("committed after Close = %v, want the acknowledged prefix %v", committed, prefix)
		}
		acked := hook.Acked()
		for c := range arr.snapshot() {
			if acked[c] == 0 {
				t.Errorf("request for partition %d offset %d was in flight at Close and cut short within the drain budget", c.Partition, c.Offset)
			}
		}
		var inPrefix int64
		for _, off := range prefix {
			inPrefix += off
		}
		if int64(len(acked)) != inPrefix {
			t.Errorf("%d records acknowledged, %d of them in the per-partition prefixes %v: acknowledged out of order", len(acked), inPrefix, prefix)
		}
		if len(acked) == partitions*n {
			t.Fatal("every record was acknowledged before Close: the test closed nothing mid-stream")
		}
	})

	t.Run("hung request", func(t *testing.T) {
		const n, hung = 10, 3
		cluster := bridgetest.NewCluster(t)
		topic := cluster.Topic(t, 1)
		arr := newArrivals()
		hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
			arr.add(d)
			return bridgetest.Reply{Hang: d.Offset == hung}
		})
		cfg := testConsumerConfig(t, cluster, topic, hook.URL)
		commitChecker(t, cluster, hook, cfg.Group, topic, nil)
		cluster.Produce(t, topic, testRecords(0, n, "v")...)
		rc := runConsumer(t, cfg, nil)
		arr.wait(t, "the hung request", func(got map[bridgetest.Coordinate]int) bool {
			return got[bridgetest.Coordinate{Topic: topic, Partition: 0, Offset: hung}] > 0
		})

		const drain = 300 * time.Millisecond
		start := time.Now()
		rc.close(t, drain)
		// A bound on liveness, not speed: Close must not wait for the
		// request's own timeout (5 s) or more.
		if took := time.Since(start); took > drain+4*time.Second {
			t.Errorf("Close took %v with a drain budget of %v and a hung request", took, drain)
		}
		if got, want := cluster.Committed(t, cfg.Group, topic), map[int32]int64{0: hung}; !offsetsEqual(got, want) {
			t.Errorf("committed after Close = %v, want %v: everything before the hung record, nothing from it on", got, want)
		}
		if got := hook.AckedPrefix(topic, nil)[0]; got != hung {
			t.Errorf("acknowledged prefix = %d, want %d", got, hung)
		}
	})
}

// TestConsumerOffsetGaps: a partition holding a committed, an aborted and a
// committed transaction has gaps (the aborted records and the transaction
// markers). The consumer delivers only the committed records, and the
// committed offset moves past the gap instead of waiting for offsets that
// will never be delivered.
func TestConsumerOffsetGaps(t *testing.T) {
	const per = 5
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	first, aborted, second := testRecords(0, per, "c1-"), testRecords(0, per, "ab-"), testRecords(0, per, "c2-")
	cluster.ProduceTxn(t, topic, true, first...)
	cluster.ProduceTxn(t, topic, false, aborted...)
	cluster.ProduceTxn(t, topic, true, second...)
	var visible []int64
	for _, r := range append(first, second...) {
		visible = append(visible, r.Offset)
	}
	logEnd := endOffsets(t, newAdmin(t, cluster.Brokers), topic)[0]
	last := visible[len(visible)-1]
	t.Logf("committed records at %v, aborted at %d..%d, log end %d", visible, aborted[0].Offset, aborted[per-1].Offset, logEnd)

	hook := bridgetest.NewWebhook(t, nil)
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	// The acknowledged prefix in offsets stops at the first gap; the most a
	// correct consumer may commit is the first unacknowledged visible
	// record, or the log end once all are acknowledged.
	commitChecker(t, cluster, hook, cfg.Group, topic, func() map[int32]int64 {
		acked := hook.Acked()
		for _, off := range visible {
			if acked[bridgetest.Coordinate{Topic: topic, Partition: 0, Offset: off}] == 0 {
				return map[int32]int64{0: off}
			}
		}
		return map[int32]int64{0: logEnd}
	})
	runConsumer(t, cfg, nil)

	hook.WaitAcked(t, len(visible), deliveryTimeout)
	var committed int64
	eventually(t, fmt.Sprintf("a commit past the last committed record (offset %d)", last), func() bool {
		committed = cluster.Committed(t, cfg.Group, topic)[0]
		return committed > last
	})
	if committed > logEnd {
		t.Errorf("committed %d, beyond the log end %d", committed, logEnd)
	}
	ds := hook.Deliveries()
	if got := firstDeliveries(ds, 0); !slices.Equal(got, visible) {
		t.Errorf("delivered offsets %v, want the committed transactions' %v", got, visible)
	}
	for _, d := range ds {
		if strings.HasPrefix(string(d.Body), "ab-") {
			t.Errorf("delivered aborted record at offset %d (%q)", d.Offset, d.Body)
		}
	}
}

// TestConsumerLostCommitsNothing: when the member's session is lost
// (the coordinator answers a heartbeat with UNKNOWN_MEMBER_ID), its
// partitions may already belong to another member: their deliveries stop
// and nothing is committed for them, though records were acknowledged since
// the last commit. Needs kfake to fail the heartbeat on cue.
func TestConsumerLostCommitsNothing(t *testing.T) {
	const n, hung = 10, 5
	cluster := bridgetest.NewCluster(t)
	fake := cluster.RequireFake(t, "fails a heartbeat on cue")
	topic := cluster.Topic(t, 1)
	arr := newArrivals()
	// The first request for offset hung is in flight when the session is
	// lost; it is answered only if it comes again.
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		return bridgetest.Reply{Hang: arr.add(d) == 1 && d.Offset == hung}
	})
	cfg := testConsumerConfig(t, cluster, topic, hook.URL)
	// No periodic commit: what the member acknowledged before the loss
	// stays uncommitted, so a commit on the lost path would show.
	cfg.CommitInterval = time.Hour
	cfg.Retry.AttemptTimeout = 2 * deliveryTimeout // the hung request ends only with the loss
	commitChecker(t, cluster, hook, cfg.Group, topic, nil)
	cluster.Produce(t, topic, testRecords(0, n, "v")...)
	rc := runConsumer(t, cfg, nil)
	hook.WaitAcked(t, hung, deliveryTimeout)
	arr.wait(t, "the hung request", func(got map[bridgetest.Coordinate]int) bool {
		return got[bridgetest.Coordinate{Topic: topic, Partition: 0, Offset: hung}] > 0
	})

	fault := fake.Fault(kfake.Fault{
		Keys:     []kmsg.Key{kmsg.Heartbeat},
		Group:    cfg.Group,
		TopLevel: true,
		Err:      kerr.UnknownMemberID,
	})
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	if err := fault.Wait(ctx, 1); err != nil {
		t.Fatalf("waiting for the failed heartbeat: %v", err)
	}
	// The member rejoins and gets the partition back: a fresh assignment
	// that starts again at the committed offset (none: the log start) and
	// delivers the hung record again, answered this time.
	hook.WaitFor(t, deliveryTimeout, fmt.Sprintf("offset %d acknowledged after the loss", hung), func(ds []bridgetest.Delivery) bool {
		return countOffset(ds, hung) > 0
	})
	if got := cluster.Committed(t, cfg.Group, topic); len(got) != 0 {
		t.Errorf("committed %v after the partition was lost, want nothing: the lost path committed", got)
	}

	hook.WaitAcked(t, n, deliveryTimeout)
	rc.close(t, 5*time.Second)
	if got, want := cluster.Committed(t, cfg.Group, topic), map[int32]int64{0: n}; !offsetsEqual(got, want) {
		t.Errorf("committed after Close = %v, want %v", got, want)
	}
}

// arrivals counts the requests the webhook received, as they arrive and
// before it answers (the webhook records a delivery only once answered).
type arrivals struct {
	mu      sync.Mutex
	n       map[bridgetest.Coordinate]int
	changed chan struct{} // closed and replaced on every arrival
}

func newArrivals() *arrivals {
	return &arrivals{n: make(map[bridgetest.Coordinate]int), changed: make(chan struct{})}
}

// add counts d's request and returns how many arrived for its record,
// this one included.
func (a *arrivals) add(d bridgetest.Delivery) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := bridgetest.Coordinate{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}
	a.n[c]++
	close(a.changed)
	a.changed = make(chan struct{})
	return a.n[c]
}

func (a *arrivals) snapshot() map[bridgetest.Coordinate]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[bridgetest.Coordinate]int, len(a.n))
	for c, k := range a.n {
		out[c] = k
	}
	return out
}

// wait waits until cond, called under the lock, holds over the counts.
func (a *arrivals) wait(tb testing.TB, what string, cond func(map[bridgetest.Coordinate]int) bool) {
	tb.Helper()
	deadline := time.NewTimer(deliveryTimeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		ok, changed := cond(a.n), a.changed
		a.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("timed out after %v waiting for %s", deliveryTimeout, what)
		}
	}
}

// eventually polls cond until it holds, failing the test at deliveryTimeout.
// For state nothing signals (the broker's committed offsets, a member's
// assignment).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", deliveryTimeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling: nothing to wait on
	}
}

// waitAssigned waits until the member owns at least min partitions.
func waitAssigned(tb testing.TB, rc *runningConsumer, who string, min int) {
	tb.Helper()
	eventually(tb, fmt.Sprintf("%s to own %d partitions", who, min), func() bool { return len(rc.Status().Partitions) >= min })
}

// offsetsEqual compares committed offsets, a missing partition counting as
// offset 0 (nothing delivered, nothing to commit).
func offsetsEqual(a, b map[int32]int64) bool {
	for p, off := range a {
		if b[p] != off {
			return false
		}
	}
	for p, off := range b {
		if a[p] != off {
			return false
		}
	}
	return true
}

// countOffset counts the answered deliveries of offset.
func countOffset(ds []bridgetest.Delivery, offset int64) int {
	k := 0
	for _, d := range ds {
		if d.Offset == offset {
			k++
		}
	}
	return k
}
