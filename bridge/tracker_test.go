package bridge

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// trackerStep is one call on a Tracker in a table test, or (op "want") a
// check of everything it reports.
type trackerStep struct {
	op     string // dispatch, done, fetched, mark, want
	offset int64
	err    error // the sentinel the call must return, or nil

	// for "want":
	point          int64
	ok             bool
	inFlight, held int
}

func stepDispatch(o int64) trackerStep { return trackerStep{op: "dispatch", offset: o} }
func stepDone(o int64) trackerStep     { return trackerStep{op: "done", offset: o} }
func stepFetched(o int64) trackerStep  { return trackerStep{op: "fetched", offset: o} }
func stepMark(o int64) trackerStep     { return trackerStep{op: "mark", offset: o} }

func (s trackerStep) fails(err error) trackerStep { s.err = err; return s }

// want checks Committable, InFlight and Len.
func stepWant(point int64, ok bool, inFlight, held int) trackerStep {
	return trackerStep{op: "want", point: point, ok: ok, inFlight: inFlight, held: held}
}

func TestTracker(t *testing.T) {
	tests := []struct {
		name  string
		start int64
		steps []trackerStep
	}{
		{
			name:  "nothing dispatched: the start, nothing new",
			start: 42,
			steps: []trackerStep{stepWant(42, false, 0, 0)},
		},
		{
			name:  "in-order completion",
			start: 0,
			steps: []trackerStep{
				stepDispatch(0), stepDispatch(1), stepDispatch(2),
				stepWant(0, false, 3, 3),
				stepDone(0), stepWant(1, true, 2, 2),
				stepDone(1), stepWant(2, true, 1, 1),
				stepDone(2), stepWant(3, true, 0, 0),
			},
		},
		{
			name:  "out-of-order completion stays at the first unfinished",
			start: 10,
			steps: []trackerStep{
				stepDispatch(10), stepDispatch(11), stepDispatch(12), stepDispatch(13),
				stepDone(12), stepDone(13), stepWant(10, false, 2, 4),
				stepDone(11), stepWant(10, false, 1, 4),
				stepDone(10), stepWant(14, true, 0, 0),
			},
		},
		{
			name:  "gaps: the point jumps to the next fetched record, not offset+1",
			start: 5,
			steps: []trackerStep{
				stepDispatch(5), stepDispatch(9), stepDispatch(10), stepDispatch(30),
				stepDone(5), stepWant(9, true, 3, 3),
				stepDone(10), stepWant(9, true, 2, 3),
				stepDone(9), stepWant(30, true, 1, 1),
				stepDone(30), stepWant(31, true, 0, 0),
			},
		},
		{
			name:  "gaps: a fetch position past trailing control records is the point once drained",
			start: 5,
			steps: []trackerStep{
				stepDispatch(5), stepDispatch(9), stepDispatch(10), stepDispatch(30), stepFetched(33),
				stepDone(30), stepDone(10), stepDone(9), stepWant(5, false, 1, 4),
				stepDone(5), stepWant(33, true, 0, 0),
			},
		},
		{
			name:  "the start is after a gap: first record above it",
			start: 100,
			steps: []trackerStep{
				stepDispatch(107), stepWant(107, true, 1, 1),
				stepDone(107), stepWant(108, true, 0, 0),
			},
		},
		{
			name:  "a fetch of control records only moves the point",
			start: 7,
			steps: []trackerStep{
				stepFetched(7), stepWant(7, false, 0, 0),
				stepFetched(9), stepWant(9, true, 0, 0),
				stepDispatch(9), stepWant(9, true, 1, 1),
			},
		},
		{
			name:  "unknown start: nothing offered until the first record",
			start: -1,
			steps: []trackerStep{
				stepWant(-1, false, 0, 0),
				stepDispatch(12), stepWant(12, true, 1, 1),
				stepDone(12), stepWant(13, true, 0, 0),
			},
		},
		{
			name:  "MarkCommitted: nothing new until the point moves",
			start: 0,
			steps: []trackerStep{
				stepDispatch(0), stepDispatch(1), stepDispatch(2),
				stepDone(0), stepWant(1, true, 2, 2),
				stepMark(1), stepWant(1, false, 2, 2),
				stepDone(2), stepWant(1, false, 1, 2),
				stepDone(1), stepWant(3, true, 0, 0),
				stepMark(2), stepWant(3, true, 0, 0), // a commit that completes late
				stepMark(3), stepWant(3, false, 0, 0),
				stepMark(1), stepWant(3, false, 0, 0), // and one even later
			},
		},
		{
			name:  "MarkCommitted beyond the point is refused",
			start: 0,
			steps: []trackerStep{
				stepDispatch(0), stepDispatch(4),
				stepDone(4), stepMark(5).fails(ErrCommitAhead), stepMark(1).fails(ErrCommitAhead),
				stepWant(0, false, 1, 2),
				stepDone(0), stepMark(5), stepWant(5, false, 0, 0),
			},
		},
		{
			name:  "Done twice, before and after its prefix is released",
			start: 0,
			steps: []trackerStep{
				stepDispatch(0), stepDispatch(1), stepDispatch(2),
				stepDone(1), stepDone(1).fails(ErrNotInFlight),
				stepDone(0), stepDone(0).fails(ErrNotInFlight), stepDone(1).fails(ErrNotInFlight),
				stepWant(2, true, 1, 1),
			},
		},
		{
			name:  "Done of offsets never dispatched",
			start: 10,
			steps: []trackerStep{
				stepDone(10).fails(ErrNotInFlight),
				stepDispatch(10), stepDispatch(12), stepDispatch(20),
				stepDone(9).fails(ErrNotInFlight),  // below everything
				stepDone(11).fails(ErrNotInFlight), // in a gap
				stepDone(15).fails(ErrNotInFlight), // in a gap, beyond the no-gap guess
				stepDone(21).fails(ErrNotInFlight), // above everything
				stepDone(-1).fails(ErrNotInFlight),
				stepDone(math.MaxInt64).fails(ErrNotInFlight),
				stepWant(10, false, 3, 3),
			},
		},
		{
			name:  "Dispatch not in fetch order",
			start: 10,
			steps: []trackerStep{
				stepDispatch(9).fails(ErrOffsetOrder), // below the start
				stepDispatch(10), stepDispatch(10).fails(ErrOffsetOrder),
				stepDispatch(12), stepDispatch(11).fails(ErrOffsetOrder),
				stepFetched(20), stepDispatch(19).fails(ErrOffsetOrder),
				stepWant(10, false, 2, 2),
				stepDispatch(20), stepWant(10, false, 3, 3),
			},
		},
		{
			name:  "Dispatch of offsets that are not Kafka offsets",
			start: -1,
			steps: []trackerStep{
				stepDispatch(-1).fails(ErrOffsetOrder),
				stepDispatch(math.MaxInt64).fails(ErrOffsetOrder),
				stepWant(-1, false, 0, 0),
			},
		},
		{
			name:  "Fetched backwards is refused",
			start: 0,
			steps: []trackerStep{
				stepDispatch(0), stepDispatch(5),
				stepFetched(5).fails(ErrOffsetOrder), // below the last record + 1
				stepFetched(6), stepFetched(6), stepFetched(8),
				stepFetched(7).fails(ErrOffsetOrder),
				stepDone(0), stepDone(5), stepWant(8, true, 0, 0),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.start)
			for i, s := range tt.steps {
				runTrackerStep(t, tr, i, s)
			}
		})
	}
}

func runTrackerStep(t *testing.T, tr *Tracker, i int, s trackerStep) {
	t.Helper()
	var err error
	switch s.op {
	case "dispatch":
		err = tr.Dispatch(s.offset)
	case "done":
		err = tr.Done(s.offset)
	case "fetched":
		err = tr.Fetched(s.offset)
	case "mark":
		err = tr.MarkCommitted(s.offset)
	case "want":
		point, ok := tr.Committable()
		if point != s.point || ok != s.ok {
			t.Fatalf("step %d: Committable() = %d, %t; want %d, %t", i, point, ok, s.point, s.ok)
		}
		if got := tr.InFlight(); got != s.inFlight {
			t.Fatalf("step %d: InFlight() = %d, want %d", i, got, s.inFlight)
		}
		if got := tr.Len(); got != s.held {
			t.Fatalf("step %d: Len() = %d, want %d", i, got, s.held)
		}
		return
	default:
		t.Fatalf("step %d: unknown op %q", i, s.op)
	}
	if !errors.Is(err, s.err) {
		t.Fatalf("step %d: %s(%d) = %v, want %v", i, s.op, s.offset, err, s.err)
	}
}

// TestTrackerRingWraps drives the ring buffer through growth while its head is
// in the middle, with gaps, so held records wrap around the end of the slice.
func TestTrackerRingWraps(t *testing.T) {
	tr := NewTracker(0)
	var held []int64 // offsets dispatched and not released, in fetch order
	next := int64(0)
	dispatchN := func(n int) {
		for range n {
			next += 1 + next%3 // gaps of 0, 1 and 2
			if err := tr.Dispatch(next); err != nil {
				t.Fatal(err)
			}
			held = append(held, next)
		}
	}
	dispatchN(12)
	for _, o := range held[:10] {
		if err := tr.Done(o); err != nil {
			t.Fatal(err)
		}
	}
	held = held[10:]
	dispatchN(40) // wraps, then grows from a head at index 10
	// Finish all but the first from the back, so every Done searches.
	for i := len(held) - 1; i > 0; i-- {
		if err := tr.Done(held[i]); err != nil {
			t.Fatalf("Done(%d): %v", held[i], err)
		}
		if p, _ := tr.Committable(); p != held[0] {
			t.Fatalf("point %d, want %d", p, held[0])
		}
	}
	if err := tr.Done(held[0]); err != nil {
		t.Fatal(err)
	}
	if p, _ := tr.Committable(); p != next+1 || tr.Len() != 0 || tr.InFlight() != 0 {
		t.Fatalf("drained: point %d Len %d InFlight %d, want %d 0 0", p, tr.Len(), tr.InFlight(), next+1)
	}
}

// TestTrackerConcurrentDone finishes records from many goroutines while the
// owner dispatches and a committer reads, as under key or none ordering. Run
// with -race; the point must never decrease and must end at the fetch
// position.
func TestTrackerConcurrentDone(t *testing.T) {
	const records, workers = 20000, 8
	tr := NewTracker(0)
	work := make(chan int64)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for o := range work {
				if err := tr.Done(o); err != nil {
					t.Error(err)
				}
			}
		})
	}
	stop := make(chan struct{})
	committer := make(chan error, 1)
	go func() {
		last := int64(math.MinInt64)
		for {
			p, ok := tr.Committable()
			if p < last {
				committer <- fmt.Errorf("point went back from %d to %d", last, p)
				return
			}
			if ok {
				if err := tr.MarkCommitted(p); err != nil {
					committer <- err
					return
				}
			}
			last = p
			select {
			case <-stop:
				committer <- nil
				return
			default:
			}
		}
	}()
	for i := range int64(records) {
		o := 2 * i // every other offset is a gap
		if err := tr.Dispatch(o); err != nil {
			t.Fatal(err)
		}
		work <- o
	}
	close(work)
	wg.Wait()
	close(stop)
	if err := <-committer; err != nil {
		t.Fatal(err)
	}
	if p, _ := tr.Committable(); p != 2*records-1 || tr.InFlight() != 0 || tr.Len() != 0 {
		t.Fatalf("drained: point %d InFlight %d Len %d, want %d 0 0", p, tr.InFlight(), tr.Len(), 2*records-1)
	}
}

// BenchmarkTracker measures one Dispatch plus one Done with a window of
// records in flight, finished in random order. Offsets have gaps in the "gaps"
// cases, so Done cannot find its record by subtraction and searches. It also
// reports the mean number of records held (Len), which exceeds the window
// because finished records wait behind the oldest unfinished one.
func BenchmarkTracker(b *testing.B) {
	for _, window := range []int{1, 100, 1000, 10000} {
		for _, gaps := range []bool{false, true} {
			b.Run(fmt.Sprintf("window=%d/gaps=%t", window, gaps), func(b *testing.B) {
				benchmarkTracker(b, window, gaps)
			})
		}
	}
}

func benchmarkTracker(b *testing.B, window int, gaps bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := NewTracker(0)
	inFlight := make([]int64, 0, window)
	next := int64(0)
	dispatchOne := func() {
		if err := tr.Dispatch(next); err != nil {
			b.Fatal(err)
		}
		inFlight = append(inFlight, next)
		next++
		if gaps {
			next += int64(rng.IntN(3))
		}
	}
	for range window - 1 {
		dispatchOne()
	}
	var held, samples int64
	b.ReportAllocs()
	for b.Loop() {
		dispatchOne()
		i := rng.IntN(len(inFlight))
		o := inFlight[i]
		inFlight[i] = inFlight[len(inFlight)-1]
		inFlight = inFlight[:len(inFlight)-1]
		if err := tr.Done(o); err != nil {
			b.Fatal(err)
		}
		if next%64 == 0 { // sample Len without timing a lock per op
			held += int64(tr.Len())
			samples++
		}
	}
	if samples > 0 {
		b.ReportMetric(float64(held)/float64(samples), "held")
	}
}
