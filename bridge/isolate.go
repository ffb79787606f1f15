package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka validates a record batch as a whole. One record whose timestamp is
// further from the broker's clock than the topic allows (INVALID_TIMESTAMP),
// or that has no key on a compacted topic (INVALID_RECORD), makes the broker
// refuse the whole batch, and franz-go fails every record of it — and every
// record buffered behind it for that partition — with that one error. KIP-467
// added per-record errors to the produce response, but franz-go does not
// surface them, and they would not be enough: the batch-mates were not
// written either.
//
// The producer's batches mix the records of every caller, so one caller's
// bad record would fail the others' valid ones. The isolator sends the
// refused records again, on a second client of its own: the first half of
// them in one batch, then the second, then halves of whatever is refused
// again, until a record refused in a batch of its own is known to be at
// fault. Only that record fails; the others are written. One bad record among
// n costs about 2·log2(n) extra round trips, paid only by the records of the
// refused batch.
//
// What must hold:
//   - Sending a refused record again cannot duplicate it. Kafka validates a
//     batch before appending any of it, so a refused batch was not written;
//     records failed with it because they were buffered behind it were not
//     sent, or were refused by the broker as out of sequence (the
//     idempotent producer), or were never in flight (without idempotence
//     franz-go keeps one produce request in flight per broker). The one
//     exception would be a batch written, its acknowledgement lost, and its
//     retry then refused because its timestamp had meanwhile crossed the
//     topic's message.timestamp.before.max.ms; that needs a limit crossed
//     within a retry's seconds.
//   - Every record still completes within its Send's publish timeout: it is
//     sent again with its original context.
//   - Re-sent records of one partition keep the order in which they failed,
//     which is the order in which they were produced: one batch at a time per
//     partition, halves in order.
//
// What does not hold: order against records that were not refused. A record
// produced to the same partition after the refusal went through the shared
// client at once and may be written before the re-sent ones. Unary Publish
// calls promise no order between each other (a caller that waits for one
// call before the next is not affected), but a PublishStream, which has
// later requests in flight while earlier ones are answered, can see a later
// request's record written before an earlier one's; so, in the tiny window
// in which a refusal arrives while Send is still handing over one request's
// records, can one request's own records. Each result carries the record's
// offset, so the reordering is visible. It happens only where Kafka refused a
// batch; without the isolator those records would have failed instead, for
// another caller's record. Holding every later record of the topic back
// while the isolator works would keep the order, but would stall the topic's
// other callers for as long and need the partitions chosen before producing.

// batchRefusals are the errors with which Kafka refuses a whole batch for
// what may be a single record's sake: its validation errors, and the size
// limits, which a batch can exceed where each of its records would not.
var batchRefusals = []error{kerr.InvalidRecord, kerr.InvalidTimestamp, kerr.CorruptMessage, kerr.MessageTooLarge, kerr.RecordListTooLarge}

// batchRefused reports whether err is Kafka refusing a record's whole batch.
func batchRefused(err error) bool {
	for _, r := range batchRefusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// aloneError is a batch refusal of a record sent in a batch of its own: the
// record itself is at fault.
type aloneError struct{ err error }

func (e *aloneError) Error() string { return e.err.Error() }
func (e *aloneError) Unwrap() error { return e.err }

// isolator sends records of refused batches again in ever smaller batches.
// It is safe for concurrent use.
type isolator struct {
	newClient func() (*kgo.Client, error)
	log       *slog.Logger
	resent    prometheus.Counter

	mu     sync.Mutex
	client *kgo.Client // created at the first refusal: most producers never need it
	// queues holds each partition's refused records waiting to be sent
	// again; a partition's key is present while its worker runs.
	queues  map[topicPartition][]*isolated
	pending int           // records handed to retry and not yet completed
	idle    chan struct{} // closed while pending is 0
	closed  bool
	workers sync.WaitGroup
}

// isolated is one refused record on its way to a result.
type isolated struct {
	rec  *kgo.Record // as first produced; never produced again itself
	ctx  context.Context
	done func(*kgo.Record, error)

	// The latest attempt's outcome; at first, the refusal.
	res *kgo.Record
	err error
}

func newIsolator(newClient func() (*kgo.Client, error), log *slog.Logger, resent prometheus.Counter) *isolator {
	idle := make(chan struct{})
	close(idle)
	return &isolator{newClient: newClient, log: log, resent: resent, queues: make(map[topicPartition][]*isolated), idle: idle}
}

// retry takes over r, which failed with err, a batch refusal, and calls done
// with its final outcome. It never blocks: it runs on franz-go's promise
// goroutine.
func (iso *isolator) retry(r *kgo.Record, err error, done func(*kgo.Record, error)) {
	iso.mu.Lock()
	if iso.closed {
		iso.mu.Unlock()
		done(r, kgo.ErrClientClosed)
		return
	}
	if iso.client == nil {
		cl, cerr := iso.newClient()
		if cerr != nil { // cannot happen: the producer's own client took the same options
			iso.mu.Unlock()
			iso.log.Error("cannot send refused records again", "topic", r.Topic, "error", cerr)
			done(r, err)
			return
		}
		iso.client = cl
	}
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	tp := topicPartition{r.Topic, r.Partition}
	q, running := iso.queues[tp]
	iso.queues[tp] = append(q, &isolated{rec: r, ctx: ctx, done: done, err: err})
	if iso.pending == 0 {
		iso.idle = make(chan struct{})
	}
	iso.pending++
	if !running {
		iso.workers.Add(1)
		go iso.work(tp, iso.client)
	}
	iso.mu.Unlock()
}

// work sends tp's refused records again until its queue is empty.
func (iso *isolator) work(tp topicPartition, cl *kgo.Client) {
	defer iso.workers.Done()
	for {
		iso.mu.Lock()
		recs := iso.queues[tp]
		if len(recs) == 0 {
			delete(iso.queues, tp)
			iso.mu.Unlock()
			return
		}
		iso.queues[tp] = nil
		iso.mu.Unlock()
		iso.log.Debug("kafka refused a batch; sending its records again in smaller batches",
			"topic", tp.topic, "partition", tp.partition, "records", len(recs), "error", recs[0].err)
		iso.resent.Add(float64(len(recs)))
		iso.split(cl, recs)
	}
}

// split settles recs, refused together: it sends each half in a batch of
// its own, in order, and splits again whatever is refused again. The halves
// shrink, so it ends; a record refused alone is at fault.
func (iso *isolator) split(cl *kgo.Client, recs []*isolated) {
	if len(recs) == 1 {
		iso.send(cl, recs)
		return
	}
	mid := len(recs) / 2
	for _, half := range [][]*isolated{recs[:mid], recs[mid:]} {
		if again := iso.send(cl, half); len(again) > 0 {
			iso.split(cl, again)
		}
	}
}

// send produces recs together and waits for all of them. It completes every
// record that is settled and returns those that are not: refused with their
// batch while in company, or failed because a batch-mate's context ended
// (franz-go fails a batch by its first record's context). With linger 0 and
// nothing else produced to the partition meanwhile, recs form one batch,
// or a few if franz-go drains the first before the rest are buffered.
func (iso *isolator) send(cl *kgo.Client, recs []*isolated) (again []*isolated) {
	var wg sync.WaitGroup
	for _, r := range recs {
		if err := r.ctx.Err(); err != nil {
			r.res, r.err = r.rec, err
			continue
		}
		wg.Add(1)
		cl.Produce(r.ctx, resendable(r.rec), func(kr *kgo.Record, err error) {
			r.res, r.err = kr, err
			wg.Done()
		})
	}
	wg.Wait()
	for _, r := range recs {
		mateExpired := isContextErr(r.err) && r.ctx.Err() == nil
		switch {
		case len(recs) > 1 && (batchRefused(r.err) || mateExpired):
			again = append(again, r)
			continue
		case batchRefused(r.err):
			r.err = &aloneError{r.err}
		}
		iso.finish(r)
	}
	return again
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// resendable is a fresh record with r's contents, pinned to the partition r
// was given, with the timestamp it was given.
func resendable(r *kgo.Record) *kgo.Record {
	return &kgo.Record{
		Topic:     r.Topic,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   r.Headers,
		Timestamp: r.Timestamp,
		Partition: r.Partition,
	}
}

func (iso *isolator) finish(r *isolated) {
	r.done(r.res, r.err)
	iso.mu.Lock()
	iso.pending--
	if iso.pending == 0 {
		close(iso.idle)
	}
	iso.mu.Unlock()
}

// buffered is how many records the isolator holds.
func (iso *isolator) buffered() int64 {
	iso.mu.Lock()
	defer iso.mu.Unlock()
	return int64(iso.pending)
}

// flush waits until the isolator holds no record, or ctx ends.
func (iso *isolator) flush(ctx context.Context) error {
	iso.mu.Lock()
	idle := iso.idle
	iso.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close fails what the isolator holds with kgo.ErrClientClosed, and what
// it is handed later, and waits for its workers.
func (iso *isolator) close() {
	iso.mu.Lock()
	iso.closed = true
	cl := iso.client
	iso.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
	iso.workers.Wait()
}
