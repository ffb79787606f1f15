package main

import (
	"bytes"
	"encoding/json"
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
// net/http server in this process that answers 200 after delay (at once by
// default) and tallies each request's Kafka-Partition and Kafka-Offset, or
// with batch delivery the kafkapartition and kafkaoffset of each event of
// the batch.
type webhook struct {
	url      string
	delay    time.Duration
	validate bool // check each batch body with json.Valid too
	srv      *http.Server
	cur      atomic.Pointer[tally] // the measurement under way
	done     chan error            // Serve's result
	bufs     sync.Pool             // *batchBuf
}

// batchBuf is a batch request's body and its events, reused.
type batchBuf struct {
	body   bytes.Buffer
	events []coord
}

func startWebhook(delay time.Duration, validate bool) (*webhook, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook listen: %w", err)
	}
	h := &webhook{url: "http://" + l.Addr().String() + "/kafka/events", delay: delay, validate: validate, done: make(chan error, 1)}
	h.bufs.New = func() any { return new(batchBuf) }
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

// ServeHTTP reads the body (so that the connection is kept alive), sleeps
// the delay (the app's work), tallies the request and answers 200, always:
// a malformed request is counted as an error, not answered with a status
// kbridge would retry. An empty 200 acks every event of a batch.
func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := h.cur.Load()
	if t != nil {
		t.enter()
		defer t.leave()
	}
	if r.Header.Get("Content-Type") == batchContentType {
		h.serveBatch(t, r)
		w.WriteHeader(http.StatusOK)
		return
	}
	_, bodyErr := io.Copy(io.Discard, r.Body)
	if h.delay > 0 {
		time.Sleep(h.delay)
	}
	if t != nil {
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

// serveBatch reads a batch request's body and tallies its events, in the
// order of the batch. A malformed batch is one error; its events that
// could be read before the fault are not counted.
func (h *webhook) serveBatch(t *tally, r *http.Request) {
	buf := h.bufs.Get().(*batchBuf)
	defer h.bufs.Put(buf)
	buf.body.Reset()
	_, err := buf.body.ReadFrom(r.Body)
	if h.delay > 0 {
		time.Sleep(h.delay)
	}
	if t == nil {
		return
	}
	body := buf.body.Bytes()
	if err == nil {
		buf.events, err = scanBatch(body, buf.events[:0])
	}
	if err == nil && h.validate && !json.Valid(body) {
		err = errors.New("the batch body is not valid JSON")
	}
	if err != nil {
		t.fail(fmt.Errorf("webhook batch request: %w", err))
		return
	}
	t.ackAll(buf.events)
}

// tally counts the distinct (partition, offset) acknowledged out of a
// backlog of records spread round-robin over partitions (record i is at
// partition i%partitions, offset i/partitions, with key i%keys if keys > 0),
// and notes when the first and the last of them were. partitions are those
// holding the backlog (-backlog-partitions): a record of any other is
// outside it. A record
// acknowledged after a later one of its lane (its key in its partition, or
// its partition without keys) is an error: every side measured keeps them
// in order.
type tally struct {
	partitions, records, keys int

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
	next     []int         // by lane: 1 + the latest record acknowledged
	gaps     gaps
	inFlight int // requests in the handler now
	peak     int // the most at once
	requests int // requests tallied, single or batch
	events   int // records they carried, duplicates included
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

func newTally(partitions, records, keys int) *tally {
	return &tally{partitions: partitions, records: records, keys: keys, seen: make([]bool, records), done: make(chan struct{}),
		prev: make([]time.Time, partitions), next: make([]int, partitions*max(keys, 1))}
}

// lane is the number of record i's lane: its (partition, key), or its
// partition without keys.
func (t *tally) lane(i int) int {
	if t.keys == 0 {
		return i % t.partitions
	}
	return i%t.partitions*t.keys + i%t.keys
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

// ack tallies one request of one record.
func (t *tally) ack(partition int32, offset int64) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests++
	t.ackLocked(now, partition, offset)
}

// ackAll tallies one batch request, its events in order.
func (t *tally) ackAll(events []coord) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests++
	for _, c := range events {
		t.ackLocked(now, c.partition, c.offset)
	}
}

func (t *tally) ackLocked(now time.Time, partition int32, offset int64) {
	t.events++
	i := t.index(partition, offset)
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
	if l := t.lane(i); t.next[l] > i {
		t.failLocked(fmt.Errorf("partition %d offset %d acknowledged after offset %d of its %s", partition, offset, (t.next[l]-1)/t.partitions, t.laneName()))
	} else {
		t.next[l] = i + 1
	}
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

func (t *tally) laneName() string {
	if t.keys == 0 {
		return "partition"
	}
	return "key"
}

// enter and leave count a request in the handler.
func (t *tally) enter() {
	t.mu.Lock()
	t.inFlight++
	t.peak = max(t.peak, t.inFlight)
	t.mu.Unlock()
}

func (t *tally) leave() {
	t.mu.Lock()
	t.inFlight--
	t.mu.Unlock()
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
	peak        int // requests in the webhook's handler at once
	requests    int // requests tallied
	events      int // records they carried
}

func (t *tally) snapshot() tallied {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tallied{distinct: t.distinct, dups: t.dups, errs: t.errs, firstErr: t.firstErr, first: t.first, last: t.last, gaps: t.gaps, peak: t.peak,
		requests: t.requests, events: t.events}
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
