package bridge

// The commit tracker's guarantee, in plain words:
//
// The offset a Tracker offers for commit never passes a record that was
// fetched but has not finished (answered 2xx by the app, or durably written to
// the dead-letter topic), and it never moves backwards. It is the offset of
// the first unfinished record in fetch order; when every fetched record has
// finished, it is the fetch position.
//
// "In fetch order" matters because Kafka offsets have gaps: compaction removes
// records, transaction markers take offsets of their own, and a read_committed
// consumer never sees aborted records. A tracker that waited for offset N+1
// after N would stall forever at the first gap. Committing the offset of the
// first unfinished record u is right even across a gap: every record fetched
// before u has finished, and the offsets between them and u hold nothing that
// will ever be delivered.

import (
	"fmt"
	"math"
	"sync"
)

// trackedRecord is one dispatched record, held from dispatch until it and
// every record fetched before it are done.
type trackedRecord struct {
	offset int64
	done   bool
}

// Tracker computes the commit point of one partition for one assignment: a
// partition revoked and assigned again gets a new Tracker, so replies that
// arrive for the old assignment cannot move the new one. That holds only if a
// reply is reported to the Tracker its record was dispatched on (captured at
// dispatch), never to one looked up by partition when the reply arrives: the
// new assignment fetches the same offsets again.
//
// The partition's worker calls Dispatch for each record in the order it was
// fetched and Fetched when the fetch position moved past records that are not
// delivered; Done may come from any goroutine, in any order. The committer
// reads Committable and reports what it committed with MarkCommitted. All
// methods are safe for concurrent use.
//
// Every method is O(1) except Done, which finds its record by binary search:
// O(1) when the held offsets have no gaps, O(log n) otherwise, for n held
// records. Releasing the finished prefix is amortized O(1) per record. Nothing
// allocates except when the held records outgrow their ring buffer.
type Tracker struct {
	mu sync.Mutex

	// ring holds the records from the first unfinished one through the last
	// dispatched one, in fetch order (so in increasing offsets), as a ring
	// buffer whose length is zero or a power of two. Finished records behind
	// an unfinished one stay until it finishes. The first held record, if
	// any, is always unfinished: Done releases the finished prefix at once.
	ring []trackedRecord
	head int // index in ring of the first held record
	n    int // number of held records

	inFlight  int   // held records not yet done
	next      int64 // fetch position: no record below it may be dispatched
	committed int64 // highest offset reported to MarkCommitted, or the start
}

// NewTracker returns a Tracker for a partition whose fetch position at
// assignment is start: the offset the next record is expected at (the
// committed offset, or where the client reset to). Nothing beyond start is
// considered committed, and Committable reports nothing new until the point
// moves past start.
//
// A negative start means the position is not known yet (franz-go resolves it
// after the assignment callback returns): Committable then returns -1 and
// offers nothing until the first Dispatch or Fetched. Creating the tracker at
// the first fetched record, with that record's offset as start, is equally
// sound.
func NewTracker(start int64) *Tracker {
	start = max(start, -1)
	return &Tracker{next: start, committed: start}
}

// Dispatch records that the record at offset was fetched and is about to be
// delivered. Call it in fetch order, before the record can be done. Offsets
// must increase but may skip; an offset below the fetch position (not above
// the previous record, or below the start or a position given to Fetched)
// returns ErrOffsetOrder and changes nothing.
func (t *Tracker) Dispatch(offset int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset < t.next {
		return fmt.Errorf("dispatch offset %d below fetch position %d: %w", offset, t.next, ErrOffsetOrder)
	}
	if offset < 0 || offset == math.MaxInt64 { // not a Kafka offset; no position follows MaxInt64
		return fmt.Errorf("dispatch offset %d: %w", offset, ErrOffsetOrder)
	}
	if t.n == len(t.ring) {
		t.grow()
	}
	t.ring[(t.head+t.n)&(len(t.ring)-1)] = trackedRecord{offset: offset}
	t.n++
	t.inFlight++
	t.next = offset + 1
	return nil
}

// Done records that the dispatched record at offset finished: the app
// answered 2xx, or the record is durably in the dead-letter topic. Records may
// finish in any order. An offset that is not in flight (never dispatched, or
// already done) returns ErrNotInFlight and changes nothing.
func (t *Tracker) Done(offset int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.find(offset)
	if !ok {
		return fmt.Errorf("done offset %d: %w", offset, ErrNotInFlight)
	}
	r := t.at(i)
	if r.done {
		return fmt.Errorf("done offset %d twice: %w", offset, ErrNotInFlight)
	}
	r.done = true
	t.inFlight--
	if i == 0 {
		t.releaseDonePrefix()
	}
	return nil
}

// Fetched records that the fetch position moved to next without more records
// to dispatch before it: the offsets between the last dispatched record and
// next hold nothing to deliver (control records at the end of a fetch, say).
// Call it only after dispatching every record below next; once everything
// dispatched is done, next is the commit point. A position below the current
// one (the last dispatched offset + 1, or an earlier Fetched), or a negative
// one, returns ErrOffsetOrder and changes nothing.
func (t *Tracker) Fetched(next int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if next < t.next {
		return fmt.Errorf("fetch position %d below %d: %w", next, t.next, ErrOffsetOrder)
	}
	if next < 0 {
		return fmt.Errorf("fetch position %d: %w", next, ErrOffsetOrder)
	}
	t.next = next
	return nil
}

// Committable returns the commit point: the offset of the first unfinished
// record in fetch order or, when no record is unfinished, the fetch position.
// The point never decreases. ok reports whether it is beyond the last offset
// given to MarkCommitted (or the start), that is, whether a commit would
// record progress.
func (t *Tracker) Committable() (offset int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.point()
	return p, p > t.committed
}

// MarkCommitted records that offset was committed, so Committable reports
// nothing new until the point moves past it. Commits that complete out of
// order are fine: an offset at or below an earlier one changes nothing. An
// offset beyond the current commit point is a bug in the caller (it committed
// something the tracker never offered) and returns ErrCommitAhead.
func (t *Tracker) MarkCommitted(offset int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.point(); offset > p {
		return fmt.Errorf("mark committed %d beyond commit point %d: %w", offset, p, ErrCommitAhead)
	}
	t.committed = max(t.committed, offset)
	return nil
}

// InFlight returns the number of dispatched records that are not done.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight
}

// Len returns the number of records the tracker holds: from the first
// unfinished record through the last dispatched one, done or not. It is the
// most a crash right now would deliver again beyond what was committed, so it
// is the measure to bound with the partition's window: a stuck record with
// many finished ones behind it has few in flight but a long Len.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// point returns the commit point; t.mu must be held.
func (t *Tracker) point() int64 {
	if t.n > 0 {
		return t.ring[t.head].offset // unfinished: the prefix is released eagerly
	}
	return t.next
}

// at returns the i-th held record; t.mu must be held and 0 <= i < t.n.
func (t *Tracker) at(i int) *trackedRecord {
	return &t.ring[(t.head+i)&(len(t.ring)-1)]
}

// find returns the index of the held record at offset. Held offsets increase
// by at least one per record, so the record at offset sits at index
// offset-first or earlier; without gaps that first guess is the answer, and
// otherwise a binary search below it is.
func (t *Tracker) find(offset int64) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	first, last := t.at(0).offset, t.at(t.n-1).offset
	if offset < first || offset > last {
		return 0, false
	}
	hi := t.n - 1
	if d := offset - first; d < int64(t.n) {
		if t.at(int(d)).offset == offset {
			return int(d), true
		}
		hi = int(d)
	}
	lo := 0
	for lo < hi { // the first index whose offset is >= offset
		mid := int(uint(lo+hi) >> 1)
		if t.at(mid).offset < offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, t.at(lo).offset == offset
}

// releaseDonePrefix drops the finished records at the front, so the first
// held record is unfinished again (or none is held); t.mu must be held.
func (t *Tracker) releaseDonePrefix() {
	mask := len(t.ring) - 1
	for t.n > 0 && t.ring[t.head].done {
		t.head = (t.head + 1) & mask
		t.n--
	}
	if t.n == 0 {
		t.head = 0
	}
}

// grow doubles the ring buffer, keeping the held records in order; t.mu must
// be held.
func (t *Tracker) grow() {
	size := max(16, 2*len(t.ring))
	ring := make([]trackedRecord, size)
	for i := range t.n {
		ring[i] = *t.at(i)
	}
	t.ring, t.head = ring, 0
}
