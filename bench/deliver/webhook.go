package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// webhook is the app kbridge delivers to, and the baseline's server: a Go
// net/http server in this process that answers 200 at once and tallies
// each request's Kafka-Partition and Kafka-Offset.
type webhook struct {
	url  string
	srv  *http.Server
	cur  atomic.Pointer[tally] // the measurement under way
	done chan error            // Serve's result
}

func startWebhook() (*webhook, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook listen: %w", err)
	}
	h := &webhook{url: "http://" + l.Addr().String() + "/kafka/events", done: make(chan error, 1)}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { h.done <- h.srv.Serve(l) }()
	return h, nil
}

// measure makes t the tally of the requests from now on.
func (h *webhook) measure(t *tally) { h.cur.Store(t) }

func (h *webhook) close() error {
	err := h.srv.Close()
	if serveErr := <-h.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// ServeHTTP reads the body (so that the connection is kept alive), tallies
// the request and answers 200, always: a malformed request is counted as
// an error, not answered with a status kbridge would retry.
func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, bodyErr := io.Copy(io.Discard, r.Body)
	if t := h.cur.Load(); t != nil {
		partition, perr := strconv.ParseInt(r.Header.Get("Kafka-Partition"), 10, 32)
		offset, oerr := strconv.ParseInt(r.Header.Get("Kafka-Offset"), 10, 64)
		if err := errors.Join(bodyErr, perr, oerr); err != nil {
			t.fail(fmt.Errorf("webhook request: %w", err))
		} else {
			t.ack(int32(partition), offset)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// tally counts the distinct (partition, offset) acknowledged out of a
// backlog of records spread round-robin over partitions (record i is at
// partition i%partitions, offset i/partitions), and notes when the first
// and the last of them were.
type tally struct {
	partitions, records int

	mu       sync.Mutex
	seen     []bool // by record number
	distinct int
	dups     int64 // acknowledgements of a record already seen
	errs     int64 // malformed requests, coordinates outside the backlog, failed calls
	firstErr error
	first    time.Time
	last     time.Time     // when distinct reached records
	done     chan struct{} // closed then
	prev     []time.Time   // by partition: its latest first acknowledgement
	gaps     gaps
}

// gaps are the pauses between two successive records of a partition: the
// longest, and those of stallGap or more. With one record in flight per
// partition and a webhook that answers at once, a long gap is kbridge
// waiting for something else, such as a fetch.
type gaps struct {
	longest          time.Duration
	longestPartition int
	stalls           int           // gaps of stallGap or more
	stalledFor       time.Duration // their sum
}

const stallGap = 10 * time.Millisecond

func (g *gaps) add(partition int, d time.Duration) {
	if d > g.longest {
		g.longest, g.longestPartition = d, partition
	}
	if d >= stallGap {
		g.stalls++
		g.stalledFor += d
	}
}

func newTally(partitions, records int) *tally {
	return &tally{partitions: partitions, records: records, seen: make([]bool, records), done: make(chan struct{}),
		prev: make([]time.Time, partitions)}
}

// index is the record number at (partition, offset), or -1 outside the
// backlog.
func (t *tally) index(partition int32, offset int64) int {
	p := int(partition)
	if p < 0 || p >= t.partitions || offset < 0 || offset > int64(t.records/t.partitions) {
		return -1
	}
	i := int(offset)*t.partitions + p
	if i >= t.records {
		return -1
	}
	return i
}

func (t *tally) ack(partition int32, offset int64) {
	now := time.Now()
	i := t.index(partition, offset)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case i < 0:
		t.failLocked(fmt.Errorf("partition %d offset %d is not in the backlog", partition, offset))
		return
	case t.seen[i]:
		t.dups++
		return
	}
	t.seen[i] = true
	t.distinct++
	if p := int(partition); !t.prev[p].IsZero() {
		t.gaps.add(p, now.Sub(t.prev[p]))
	}
	t.prev[partition] = now
	if t.distinct == 1 {
		t.first = now
	}
	if t.distinct == t.records {
		t.last = now
		close(t.done)
	}
}

func (t *tally) fail(err error) {
	t.mu.Lock()
	t.failLocked(err)
	t.mu.Unlock()
}

func (t *tally) failLocked(err error) {
	t.errs++
	if t.firstErr == nil {
		t.firstErr = err
	}
}

// tallied is a copy of the counts so far.
type tallied struct {
	distinct    int
	dups, errs  int64
	firstErr    error
	first, last time.Time
	gaps        gaps
}

func (t *tally) snapshot() tallied {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tallied{distinct: t.distinct, dups: t.dups, errs: t.errs, firstErr: t.firstErr, first: t.first, last: t.last, gaps: t.gaps}
}

// complete reports whether every record was acknowledged.
func (t *tally) complete() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}
