package bridge

import (
	"errors"
	"math"
	"testing"
)

// trackerModel is the obviously correct tracker the fuzz test compares
// against: every record ever dispatched, in fetch order, scanned on each
// question.
type trackerModel struct {
	records   []trackedRecord
	next      int64 // fetch position
	committed int64
}

func (m *trackerModel) firstUnfinished() int {
	for i, r := range m.records {
		if !r.done {
			return i
		}
	}
	return len(m.records)
}

func (m *trackerModel) point() int64 {
	if i := m.firstUnfinished(); i < len(m.records) {
		return m.records[i].offset
	}
	return m.next
}

func (m *trackerModel) inFlight() (n int) {
	for _, r := range m.records {
		if !r.done {
			n++
		}
	}
	return n
}

// inFlightIndex returns the index in m.records of the k-th unfinished record,
// counting modulo their number, or -1 when none is unfinished.
func (m *trackerModel) inFlightIndex(k int) int {
	n := m.inFlight()
	if n == 0 {
		return -1
	}
	k %= n
	for i, r := range m.records {
		if !r.done {
			if k == 0 {
				return i
			}
			k--
		}
	}
	panic("unreachable")
}

// dispatch records o as dispatched if it is a Kafka offset at or above the
// fetch position, and otherwise returns the error the tracker must return.
func (m *trackerModel) dispatch(o int64) error {
	if o < m.next || o < 0 || o == math.MaxInt64 {
		return ErrOffsetOrder
	}
	m.records = append(m.records, trackedRecord{offset: o})
	m.next = o + 1
	return nil
}

func (m *trackerModel) index(offset int64) int {
	for i, r := range m.records {
		if r.offset == offset {
			return i
		}
	}
	return -1
}

// FuzzTracker reads its input as a start offset and a list of operations (two
// bytes each: which, and an argument) on a Tracker and on trackerModel:
// dispatch after a gap (or, on purpose, out of order), finish an in-flight
// record (or an offset that is not in flight), move the fetch position (also
// backwards), and commit the point (also beyond it). Every call must succeed
// or fail exactly as the model says, and after every operation:
//   - the committable point never decreases;
//   - it never exceeds the offset of any dispatched, unfinished record;
//   - when no record is unfinished, it equals the fetch position;
//   - it equals the model's point, and ok says whether it is beyond what was
//     last marked committed;
//   - InFlight equals dispatched minus done, and Len counts the records from
//     the first unfinished one through the last dispatched.
func FuzzTracker(f *testing.F) {
	f.Add(int64(0), []byte{0, 0, 0, 1, 0, 2, 2, 1, 6, 0, 2, 0, 6, 1, 2, 0, 6, 0})
	f.Add(int64(5), []byte{0, 0, 0, 3, 0, 0, 0, 19, 2, 0, 6, 0, 2, 1, 2, 1, 6, 0, 2, 0, 6, 0})
	f.Add(int64(-1), []byte{4, 3, 6, 0, 0, 200, 3, 5, 5, 0, 2, 0, 6, 1, 4, 0, 6, 2})
	f.Add(int64(100), []byte{1, 0, 1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1, 7, 1, 8, 2, 7, 2, 3, 2, 0, 6, 0})
	f.Fuzz(func(t *testing.T, start int64, ops []byte) {
		if len(ops) > 4000 {
			ops = ops[:4000] // the model is quadratic
		}
		tr := NewTracker(start)
		m := &trackerModel{next: max(start, -1), committed: max(start, -1)}
		last, _ := tr.Committable()
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%7, ops[i+1]
			applyTrackerOp(t, tr, m, op, arg)
			last = checkTracker(t, tr, m, last)
		}
	})
}

// applyTrackerOp performs one fuzz operation on the tracker and the model and
// checks that the tracker accepted or refused it as the model says.
func applyTrackerOp(t *testing.T, tr *Tracker, m *trackerModel, op, arg byte) {
	t.Helper()
	base := max(m.next, 0)
	var err, wantErr error
	switch op {
	case 0, 1: // dispatch after a gap; large gaps sometimes
		o := base + int64(arg&7)
		if arg&0x80 != 0 {
			o += int64(arg) << 20
		}
		if op == 1 {
			o = base + int64(arg%4)
		}
		err, wantErr = tr.Dispatch(o), m.dispatch(o)
	case 2: // finish an in-flight record
		j := m.inFlightIndex(int(arg))
		if j < 0 {
			err, wantErr = tr.Done(m.next), ErrNotInFlight
			break
		}
		err = tr.Done(m.records[j].offset)
		m.records[j].done = true
	case 3: // finish any offset near the held ones: in flight, done, a gap, outside
		o := base - int64(arg%32)
		if arg&0x80 != 0 {
			o = math.MaxInt64 - int64(arg&3)
		}
		err = tr.Done(o)
		if j := m.index(o); j >= 0 && !m.records[j].done {
			m.records[j].done = true
		} else {
			wantErr = ErrNotInFlight
		}
	case 4: // move the fetch position, also backwards
		o := m.next + int64(arg%5) - 2
		err = tr.Fetched(o)
		if o < m.next || o < 0 {
			wantErr = ErrOffsetOrder
		} else {
			m.next = o
		}
	case 5: // dispatch out of order, or a value that is no offset
		o := m.next - 1 - int64(arg%4)
		if arg&0x80 != 0 {
			o = math.MaxInt64
		}
		err, wantErr = tr.Dispatch(o), m.dispatch(o)
	case 6: // commit the point, or something near it
		p, _ := tr.Committable()
		o := p
		if arg&1 != 0 {
			o = p + int64(arg%5) - 2
		}
		err = tr.MarkCommitted(o)
		if o > m.point() {
			wantErr = ErrCommitAhead
		} else {
			m.committed = max(m.committed, o)
		}
	}
	if !errors.Is(err, wantErr) { // with wantErr nil: only if err is nil
		t.Fatalf("op %d arg %d: got error %v, want %v", op, arg, err, wantErr)
	}
}

// checkTracker checks the invariants of FuzzTracker and returns the point.
func checkTracker(t *testing.T, tr *Tracker, m *trackerModel, last int64) int64 {
	t.Helper()
	p, ok := tr.Committable()
	if p < last {
		t.Fatalf("point moved back from %d to %d", last, p)
	}
	first := m.firstUnfinished()
	for _, r := range m.records[first:] {
		if !r.done && p > r.offset {
			t.Fatalf("point %d passes unfinished record %d", p, r.offset)
		}
	}
	if first == len(m.records) && p != m.next {
		t.Fatalf("nothing unfinished, point %d, want the fetch position %d", p, m.next)
	}
	if want := m.point(); p != want {
		t.Fatalf("point %d, model says %d", p, want)
	}
	if ok != (p > m.committed) {
		t.Fatalf("point %d ok %t with %d committed", p, ok, m.committed)
	}
	if got, want := tr.InFlight(), m.inFlight(); got != want {
		t.Fatalf("InFlight() = %d, want %d", got, want)
	}
	if got, want := tr.Len(), len(m.records)-first; got != want {
		t.Fatalf("Len() = %d, want %d", got, want)
	}
	return p
}
