package bridge

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Orderings of a subscription: what must be delivered one after another.
const (
	// OrderingPartition delivers a partition's records one at a time, in
	// offset order.
	OrderingPartition = "partition"
	// OrderingKey delivers records of one key one at a time, in offset
	// order; different keys of a partition in parallel. Records without a
	// key form one lane of their own.
	OrderingKey = "key"
	// OrderingNone delivers a partition's records in parallel, in any order.
	OrderingNone = "none"
)

// windowPerInFlight sizes a partition's window (records dispatched but not
// finished, done ones behind a slow one included) from its in-flight limit:
// room for other keys to go on past a slow record, bounded so that a stuck
// record cannot make the tracker, or a redelivery after a crash, grow
// without limit.
const windowPerInFlight = 10

// scheduler runs one partition's lanes. The dispatcher calls waitRoom and
// schedule in fetch order; lanes run on goroutines of their own, which wait
// ends. A lane delivers its records strictly one run after another (a run
// is one record, or with batch delivery up to a batch of them, in order),
// so records of one lane are delivered in fetch order; slots bound the runs
// of all lanes in flight at once.
type scheduler struct {
	ordering string
	window   int
	runMax   int           // records in one run: 1, or batch max_records
	slots    chan struct{} // one token per run in flight
	freed    chan struct{} // size 1: a run finished, coalesced

	mu    sync.Mutex
	lanes map[laneKey]*lane // lanes with a run in flight or records waiting
	wg    sync.WaitGroup
}

// laneKey names a lane: a key, or the lane of records without one.
type laneKey struct {
	key   string
	nokey bool
}

// lane holds the records waiting behind its run in flight.
type lane struct {
	key     laneKey
	pending []*kgo.Record
}

// newScheduler sizes a partition's scheduler. batchMax is the batch's
// max_records, 0 without batch delivery.
func newScheduler(ordering string, maxInFlight, batchMax int) *scheduler {
	maxInFlight = max(maxInFlight, 1)
	window := windowPerInFlight * maxInFlight
	if ordering == OrderingPartition || ordering == "" {
		// One lane: a second record could only wait behind the first, so
		// dispatching it early would only lengthen a crash's redelivery.
		maxInFlight, window = 1, 1
	}
	runMax := 1
	if batchMax > 0 {
		// Room for a full batch in flight and the next one gathering
		// behind it.
		runMax, window = batchMax, max(window, 2*batchMax)
	}
	return &scheduler{
		ordering: ordering,
		window:   window,
		runMax:   runMax,
		slots:    make(chan struct{}, maxInFlight),
		freed:    make(chan struct{}, 1),
		lanes:    make(map[laneKey]*lane),
	}
}

// waitRoom waits until the tracker holds fewer records than the window;
// false if quit closed first.
func (s *scheduler) waitRoom(t *Tracker, quit <-chan struct{}) bool {
	for t.Len() >= s.window {
		select {
		case <-s.freed:
		case <-quit:
			return false
		}
	}
	return true
}

// schedule hands rec to its lane: behind the lane's records if the lane is
// busy, else on a new goroutine that runs the lane with deliver until it is
// empty or deliver reports the worker stopped. With a window of one, it
// delivers rec before it returns.
func (s *scheduler) schedule(rec *kgo.Record, deliver func([]*kgo.Record) bool) {
	if s.window == 1 {
		// One record at a time (ordering partition): the dispatcher
		// delivers it itself. A goroutine per record would start with a
		// small stack and grow it through net/http every time: stack
		// copying was 8% of delivery's CPU. A stopped delivery leaves the
		// record unfinished; the dispatcher notices the stop before it
		// takes another.
		deliver([]*kgo.Record{rec})
		return
	}
	if s.ordering == OrderingNone {
		s.wg.Go(func() { s.run(nil, rec, deliver) })
		return
	}
	k := laneKey{}
	if s.ordering == OrderingKey {
		k = laneKey{key: string(rec.Key), nokey: rec.Key == nil}
	}
	s.mu.Lock()
	if l, busy := s.lanes[k]; busy {
		l.pending = append(l.pending, rec)
		s.mu.Unlock()
		return
	}
	l := &lane{key: k}
	s.lanes[k] = l
	s.mu.Unlock()
	s.wg.Go(func() { s.run(l, rec, deliver) })
}

// run delivers rec and the lane's waiting records, a run at a time. A run
// the worker stopped before it finished ends the lane: what waits behind it
// stays unfinished, as the tracker expects.
func (s *scheduler) run(l *lane, rec *kgo.Record, deliver func([]*kgo.Record) bool) {
	recs := s.take(l, []*kgo.Record{rec})
	for len(recs) > 0 {
		if !deliver(recs) {
			return
		}
		select {
		case s.freed <- struct{}{}:
		default:
		}
		clear(recs)
		recs = s.take(l, recs[:0])
	}
}

// take appends the lane's waiting records to run, up to runMax in all. A
// lane with nothing left is removed in the same step, under the lock
// schedule appends under, so that no record can be added to a lane that
// has ended.
func (s *scheduler) take(l *lane, run []*kgo.Record) []*kgo.Record {
	if l == nil {
		return run
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(s.runMax-len(run), len(l.pending))
	run = append(run, l.pending[:n]...)
	clear(l.pending[:n])
	l.pending = l.pending[n:]
	if len(run) == 0 {
		delete(s.lanes, l.key)
	}
	return run
}

// acquire takes an in-flight slot; false if quit closed first.
func (s *scheduler) acquire(quit <-chan struct{}) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	case <-quit:
		return false
	}
}

func (s *scheduler) release() { <-s.slots }

// wait waits for every lane to end.
func (s *scheduler) wait() { s.wg.Wait() }
