package bridge

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// attemptState is one record's history across the batches it was sent in.
type attemptState struct {
	tries   int       // requests it was in: its deliveryattempt
	counted int       // failed attempts that count towards exhaustion
	first   time.Time // the first counted attempt
	blocked bool      // exhausted under block, and said so
}

// deliverBatched delivers a lane's run through the subscription's batcher,
// within the partition's in-flight limit: true once every record is done
// (acked or dead-lettered), false when the worker was stopped first.
//
// The run goes as one part of a batch (cut at max_bytes). Its acked prefix
// is done; the first record that is not acked fails, by the ordering rule,
// every record after it in the run, which are sent again behind it without
// counting an attempt. The failed record is then handled as a single
// delivery would be: retried with backoff, dead-lettered when permanent or
// exhausted under dead-letter. A failure of a whole request of several
// events says nothing about which is at fault: it counts for none, and the
// run's head is sent alone until it is done.
func (w *partitionWorker) deliverBatched(run []*kgo.Record) bool {
	if !w.sched.acquire(w.quit) {
		return false
	}
	defer w.sched.release()
	c := w.c
	policy := c.cfg.Retry
	states := make([]attemptState, len(run))
	alone := false
	for len(run) > 0 {
		part := w.batchPart(run, states, alone)
		start := time.Now()
		outs, ok := c.batch.submit(part, w.quit)
		if !ok {
			w.log.Info("partition stopped before a record finished; it is not committed and will be delivered again",
				"offset", run[0].Offset)
			return false
		}
		acked := 0
		for acked < len(outs) && outs[acked].Kind == Acked {
			acked++
		}
		for _, rec := range run[:acked] {
			if err := w.tracker.Done(rec.Offset); err != nil {
				w.log.Error("commit tracker", "offset", rec.Offset, "error", err)
			}
		}
		c.m.acked.Add(float64(acked))
		run, states = run[acked:], states[acked:]
		if acked == len(outs) {
			alone = false
			w.setFailing(0)
			continue
		}

		out, st := outs[acked], &states[0]
		switch out.Kind {
		case Cancelled:
			w.log.Info("partition stopped before a record finished; it is not committed and will be delivered again",
				"offset", run[0].Offset)
			return false
		case Unreachable: // the app is not up: waits, but is never counted
		default:
			if !out.shared { // see below
				if st.counted++; st.counted == 1 {
					st.first = start
				}
			}
		}
		w.setFailing(st.tries)
		if out.shared {
			// The whole request of several events failed (a status, a
			// timeout, a reset): which record is at fault is unknown, and
			// one that breaks the app's batch handler must not have its
			// batch-mates dead-lettered. So nothing is counted, and the
			// head of the run goes alone until it is done: only its own
			// failures count. A 429 or 503 has slowed the subscription
			// already (the batcher waits for its pace).
			w.log.Warn("webhook failed a whole batch; sending the head of the run alone to find the record at fault",
				"offset", run[0].Offset, "status", out.Status, "error", out.ErrorText)
			alone = true
			continue
		}
		exhausted := policy.Exhausted(st.counted, st.first, time.Now())
		if c.dlq != nil && (out.Kind == Permanent || exhausted) {
			if !w.deadLetter(run[0], out.Outcome, st.counted, st.first) {
				return false
			}
			if err := w.tracker.Done(run[0].Offset); err != nil {
				w.log.Error("commit tracker", "offset", run[0].Offset, "error", err)
			}
			run, states = run[1:], states[1:]
			alone = false
			w.setFailing(0)
			continue
		}
		w.logFailure(run[0], out.Outcome, st.tries, st.counted)
		if exhausted && !st.blocked {
			st.blocked = true
			c.m.blocked.Inc()
			w.log.Error("retries exhausted and on_exhausted is block: retrying until the webhook accepts the record; its lane waits behind it",
				"offset", run[0].Offset, "attempt", st.tries, "status", out.Status)
		}
		if !sleep(policy.Backoff(st.tries, out.RetryAfter, nil), w.quit) {
			return false
		}
	}
	return true
}

// batchPart encodes the head of run as a part: every record (one when
// alone) while the part stays within max_bytes, and always the first.
// Each record encoded counts a try.
func (w *partitionWorker) batchPart(run []*kgo.Record, states []attemptState, alone bool) *batchPart {
	n := len(run)
	if alone {
		n = 1
	}
	var (
		buf  = make([]byte, 0, eventsSizeHint(run[:n], w.c.cfg.Batch.MaxBytes))
		ends = make([]int, 0, n)
		ids  = make([]string, 0, n)
	)
	for i, rec := range run[:n] {
		start := len(buf)
		var id string
		buf, id = AppendBatchEvent(buf, rec, states[i].tries+1, w.c.cfg.Request)
		if i > 0 && len(buf) > w.c.cfg.Batch.MaxBytes {
			buf = buf[:start]
			break
		}
		states[i].tries++
		ends = append(ends, len(buf))
		ids = append(ids, id)
	}
	p := &batchPart{ctx: w.ctx, ids: ids, size: len(buf), alone: alone, result: make(chan []eventOutcome, 1)}
	p.events = make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		p.events[i] = buf[start:end:end]
		start = end
	}
	return p
}

// eventsSizeHint guesses the bytes of recs' events, at most limit (and a
// little over, for the first event): the part's buffer is allocated once
// instead of doubling its way there, which left as much garbage again.
func eventsSizeHint(recs []*kgo.Record, limit int) int {
	n := 0
	for _, r := range recs {
		// Attributes and extensions take about 400 bytes; a value may go
		// as base64, headers and key percent-encoded.
		n += 400 + (len(r.Value)+2)/3*4 + 3*(recordBytes(r)-len(r.Value))
		if n > limit {
			return limit + 1024
		}
	}
	return n
}
