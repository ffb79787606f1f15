package bridge

import (
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionWorker delivers one partition's records for one assignment. The
// poll loop appends to its queue; the worker's dispatcher takes records in
// fetch order, records them in the tracker and hands each to its lane
// (lanes.go): with ordering partition all records share one lane, so one is
// in flight at a time; with key, records of one key share a lane; with
// none, every record is a lane of its own. A lane delivers its records one
// at a time until each is done (acked or dead-lettered); at most
// MaxInFlight records of the partition are in flight, and at most the
// window are dispatched but unfinished, past which the dispatcher waits and
// the queue, then the fetches, fill up and pause.
//
// Stopping has two steps, so that a revoke or shutdown can let the request
// in flight finish: stop (quit) takes no further record and cuts backoff
// waits short; cancel ends the in-flight request and any DLQ write. A
// record cut short stays unfinished in the tracker, so the commit point
// stays before it and the next owner delivers it again.
type partitionWorker struct {
	c       *Consumer
	tp      topicPartition
	tracker *Tracker
	log     *slog.Logger
	sched   *scheduler

	mu          sync.Mutex
	queue       []*kgo.Record // fetched, not yet dispatched; queue[head:] is live
	head        int
	queuedBytes int
	paused      bool
	failing     int   // failed attempts of the record being delivered
	committed   int64 // last offset committed for this assignment, -1 for none

	wake     chan struct{} // size 1: "the queue grew", coalesced
	quit     chan struct{}
	quitOnce sync.Once
	ctx      context.Context // ends the in-flight request (cancel)
	cancel   context.CancelFunc
	done     chan struct{}
}

func newPartitionWorker(c *Consumer, tp topicPartition) *partitionWorker {
	ctx, cancel := context.WithCancel(context.Background())
	return &partitionWorker{
		c:         c,
		tp:        tp,
		tracker:   NewTracker(-1), // the position is the first record's offset
		log:       c.log.With("topic", tp.topic, "partition", tp.partition),
		sched:     newScheduler(c.cfg.Ordering, c.cfg.MaxInFlight, c.cfg.Batch.MaxRecords),
		committed: -1,
		wake:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
	}
}

// enqueue appends fetched records and pauses the partition's fetches when
// the queue is full. It never blocks: the poll loop calls it.
func (w *partitionWorker) enqueue(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	for _, r := range recs {
		w.queuedBytes += recordBytes(r)
	}
	if !w.paused && (len(w.queue)-w.head >= maxQueuedRecords || w.queuedBytes >= maxQueuedBytes) {
		w.paused = true
		w.c.client.PauseFetchPartitions(w.tp.asMap())
		w.c.m.paused.Inc()
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next takes the head of the queue, waiting for one; false once stopped.
func (w *partitionWorker) next() (*kgo.Record, bool) {
	for {
		select {
		case <-w.quit:
			return nil, false
		default:
		}
		if rec := w.take(); rec != nil {
			return rec, true
		}
		select {
		case <-w.wake:
		case <-w.quit:
			return nil, false
		}
	}
}

func (w *partitionWorker) take() *kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head == len(w.queue) {
		return nil
	}
	rec := w.queue[w.head]
	w.queue[w.head] = nil
	w.head++
	w.queuedBytes -= recordBytes(rec)
	if w.head == len(w.queue) {
		w.queue, w.head = w.queue[:0], 0
	}
	if w.paused && len(w.queue)-w.head <= maxQueuedRecords/2 && w.queuedBytes <= maxQueuedBytes/2 {
		w.paused = false
		w.c.client.ResumeFetchPartitions(w.tp.asMap())
		w.c.m.paused.Dec()
	}
	return rec
}

// run is the worker's dispatcher goroutine, owned by the Consumer: it ends
// when the worker is stopped, once its lanes have ended too; done is closed
// then.
func (w *partitionWorker) run() {
	defer close(w.done)
	defer w.sched.wait()
	deliver := w.deliverOne
	if w.c.batch != nil {
		deliver = w.deliverBatched
	}
	for {
		if !w.sched.waitRoom(w.tracker, w.quit) {
			return
		}
		rec, ok := w.next()
		if !ok {
			return
		}
		if err := w.tracker.Dispatch(rec.Offset); err != nil {
			// Only a client that rewound within this assignment (a data
			// loss reset) fetches an offset again: it was dispatched before,
			// so delivering it again adds nothing the commit point needs.
			w.log.Warn("skipping a record fetched again within one assignment", "offset", rec.Offset, "error", err)
			continue
		}
		w.sched.schedule(rec, deliver)
	}
}

// deliverOne delivers a run of one record within the partition's in-flight
// limit and marks it done in the tracker; false when the worker was
// stopped first.
func (w *partitionWorker) deliverOne(run []*kgo.Record) bool {
	rec := run[0]
	if !w.sched.acquire(w.quit) {
		return false
	}
	defer w.sched.release()
	if !w.deliver(rec) {
		// Stopped: the record stays unfinished, the commit point before
		// it, and the partition's next owner delivers it again.
		w.log.Info("partition stopped before a record finished; it is not committed and will be delivered again",
			"offset", rec.Offset)
		return false
	}
	if err := w.tracker.Done(rec.Offset); err != nil {
		w.log.Error("commit tracker", "offset", rec.Offset, "error", err)
	}
	w.setFailing(0)
	return true
}

// deliver sends rec until it is done: true once acked or dead-lettered,
// false when the worker was stopped first.
func (w *partitionWorker) deliver(rec *kgo.Record) bool {
	c := w.c
	policy := c.cfg.Retry
	var tries, counted int
	var first time.Time
	blockedLogged := false
	for {
		if !c.pace.wait(w.quit) {
			return false
		}
		tries++
		req, err := NewWebhookRequest(w.ctx, c.cfg.URL, rec, tries, c.cfg.Request)
		if err != nil { // the settings were validated at start: a bug
			w.log.Error("building the webhook request", "offset", rec.Offset, "error", err)
			return false
		}
		if !c.acquireRequest(w.quit) {
			return false
		}
		start := time.Now()
		out := c.webhook.Deliver(w.ctx, req)
		c.releaseRequest()
		c.m.observe(out, time.Since(start))
		switch out.Kind {
		case Acked:
			c.m.acked.Inc()
			return true
		case Cancelled:
			return false
		case Unreachable: // the app is not up: waits, but is never counted
		default:
			if counted++; counted == 1 {
				first = start
			}
		}
		w.setFailing(tries)
		if out.Throttled() {
			c.pace.slow(policy.Backoff(tries, out.RetryAfter, nil))
		}
		exhausted := policy.Exhausted(counted, first, time.Now())
		if c.dlq != nil && (out.Kind == Permanent || exhausted) {
			return w.deadLetter(rec, out, counted, first)
		}
		w.logFailure(rec, out, tries, counted)
		if exhausted && !blockedLogged {
			blockedLogged = true
			c.m.blocked.Inc()
			w.log.Error("retries exhausted and on_exhausted is block: retrying until the webhook accepts the record; the partition waits behind it",
				"offset", rec.Offset, "attempt", tries, "status", out.Status)
		}
		if !sleep(policy.Backoff(tries, out.RetryAfter, nil), w.quit) {
			return false
		}
	}
}

func (w *partitionWorker) logFailure(rec *kgo.Record, out Outcome, tries, counted int) {
	msg := "webhook attempt failed; retrying"
	switch {
	case out.Kind == Unreachable:
		msg = "webhook unreachable (the app is not up?); waiting, not counted as an attempt"
	case out.Kind == Permanent:
		msg = "webhook refused the record with a permanent status; on_exhausted is block, so it is retried"
	}
	w.log.Warn(msg, "offset", rec.Offset, "attempt", tries, "counted", counted, "status", out.Status, "error", out.ErrorText)
}

// deadLetter writes rec to the DLQ; true once Kafka acknowledged it, false
// when the worker was cancelled first (the record is then not done).
func (w *partitionWorker) deadLetter(rec *kgo.Record, out Outcome, counted int, first time.Time) bool {
	if first.IsZero() {
		first = time.Now()
	}
	info := DeadLetterInfo{
		Group:        w.c.cfg.Group,
		Attempts:     counted,
		LastStatus:   out.Status,
		ErrorText:    out.ErrorText,
		FirstAttempt: first,
		LastAttempt:  time.Now(),
	}
	if err := w.c.dlq.Write(w.ctx, w.c.cfg.DeadLetterTopic, rec, info); err != nil {
		w.log.Warn("dead-letter write cut short; the record stays uncommitted", "offset", rec.Offset, "error", err)
		return false
	}
	w.c.m.deadLettered.Inc()
	w.log.Warn("record dead-lettered", "offset", rec.Offset, "dead_letter_topic", w.c.cfg.DeadLetterTopic,
		"attempts", counted, "status", out.Status, "error", out.ErrorText)
	return true
}

// stop makes the worker take no further record and cuts its waits short;
// the in-flight request goes on until cancel.
func (w *partitionWorker) stop() { w.quitOnce.Do(func() { close(w.quit) }) }

// release drops what the stopped worker still holds; call it after done.
func (w *partitionWorker) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue, w.head, w.queuedBytes = nil, 0, 0
	if w.paused {
		w.paused = false
		w.c.m.paused.Dec()
	}
	w.c.m.assigned.Dec()
	w.c.m.failing.DeleteLabelValues(w.tp.topic, w.tp.partitionLabel())
}

func (w *partitionWorker) setFailing(n int) {
	w.mu.Lock()
	changed := w.failing != n
	w.failing = n
	w.mu.Unlock()
	if changed {
		w.c.m.failing.WithLabelValues(w.tp.topic, w.tp.partitionLabel()).Set(float64(n))
	}
}

func (w *partitionWorker) markCommitted(offset int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.committed = max(w.committed, offset)
}

func (w *partitionWorker) status() PartitionStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return PartitionStatus{
		Topic:           w.tp.topic,
		Partition:       w.tp.partition,
		Committed:       w.committed,
		Queued:          len(w.queue) - w.head,
		Paused:          w.paused,
		FailingAttempts: w.failing,
	}
}

func (tp topicPartition) asMap() map[string][]int32 {
	return map[string][]int32{tp.topic: {tp.partition}}
}

func (tp topicPartition) partitionLabel() string { return strconv.Itoa(int(tp.partition)) }

func recordBytes(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// sleep waits d; false if quit closed first.
func sleep(d time.Duration, quit <-chan struct{}) bool {
	if d <= 0 {
		select {
		case <-quit:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-quit:
		return false
	}
}

// pacer slows a whole subscription after a 429 or 503: every worker waits
// until the time the app asked for before its next attempt.
type pacer struct {
	mu    sync.Mutex
	until time.Time
}

func (p *pacer) slow(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := time.Now().Add(d); t.After(p.until) {
		p.until = t
	}
}

// wait waits until the pace allows an attempt; false if quit closed first.
func (p *pacer) wait(quit <-chan struct{}) bool {
	p.mu.Lock()
	d := time.Until(p.until)
	p.mu.Unlock()
	return sleep(d, quit)
}

// redactURL drops a URL's user info and query, which may hold credentials,
// for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
