package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The JSON punctuation of a batch body, shared by every request (never
// written to).
var (
	openBracket  = []byte("[")
	comma        = []byte(",")
	closeBracket = []byte("]")
)

// maxBatchReply bounds the body of a batch's 2xx reply: room for a failed
// list naming every event of the largest batch.
const maxBatchReply = 1 << 20

// batchPart is one lane's records in a batch: a run the lane delivers in
// order, encoded as events. Its owner waits on result.
type batchPart struct {
	// ctx is the worker's: once it ends (revoke, shutdown) nobody waits for
	// the part's verdict, and a request all of whose parts ended is cut.
	ctx    context.Context
	events [][]byte
	ids    []string
	size   int
	// alone sends the part in a request of its own: a whole request
	// refused with a permanent status says nothing about which of its
	// events is at fault until each goes alone.
	alone  bool
	result chan []eventOutcome // buffered: one verdict, one outcome per event
}

// eventOutcome is the verdict on one event of a batch.
type eventOutcome struct {
	Outcome
	// shared marks an outcome of the whole request of several events (a
	// non-2xx status, a timeout), not of this event.
	shared bool
}

// batcher gathers the parts the lanes of a subscription submit into
// requests: up to max_records events and max_bytes of body, waiting at most
// max_wait for a batch to fill. It sends each request on a goroutine of its
// own, within the subscription's max_concurrency, and hands every part its
// outcomes. The Consumer owns it: start in Run, stop in close once the
// workers are done.
type batcher struct {
	c   *Consumer
	cfg BatchConfig
	in  chan *batchPart

	quit     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup // the loop and the requests in flight
}

func newBatcher(c *Consumer) *batcher {
	return &batcher{c: c, cfg: c.cfg.Batch, in: make(chan *batchPart), quit: make(chan struct{})}
}

func (b *batcher) start() { b.wg.Go(b.loop) }

// stop ends the loop, answers the parts it held Cancelled and waits for the
// requests in flight, which end with their parts' workers.
func (b *batcher) stop() {
	b.stopOnce.Do(func() { close(b.quit) })
	b.wg.Wait()
}

// submit hands p to the batcher and waits for its outcomes. It gives up
// (false) when quit closes before the batcher took p, or when p's context
// ends before the verdict: the records are then not done.
func (b *batcher) submit(p *batchPart, quit <-chan struct{}) ([]eventOutcome, bool) {
	select {
	case <-quit: // stopped: select would pick at random between ready cases
		return nil, false
	default:
	}
	select {
	case b.in <- p:
	case <-quit:
		return nil, false
	case <-b.quit:
		return nil, false
	}
	select {
	case outs := <-p.result:
		return outs, true
	case <-p.ctx.Done():
		return nil, false
	}
}

func (b *batcher) loop() {
	var (
		open    []*batchPart
		events  int
		size    int
		timer   = time.NewTimer(time.Hour)
		timeout <-chan time.Time
	)
	timer.Stop()
	defer timer.Stop()
	flush := func() {
		if len(open) > 0 {
			b.send(open)
		}
		open, events, size, timeout = nil, 0, 0, nil
	}
	add := func(p *batchPart) {
		if p.alone {
			b.send([]*batchPart{p})
			return
		}
		if len(open) > 0 && (events+len(p.events) > b.cfg.MaxRecords || size+p.size > b.cfg.MaxBytes) {
			flush()
		}
		open = append(open, p)
		events += len(p.events)
		size += p.size
		if events >= b.cfg.MaxRecords || size >= b.cfg.MaxBytes {
			flush()
		}
	}
	for {
		select {
		case p := <-b.in:
			add(p)
			// Whatever else is waiting joins at once.
			for more := true; more && len(open) > 0; {
				select {
				case p := <-b.in:
					add(p)
				default:
					more = false
				}
			}
			switch {
			case len(open) == 0:
			case b.cfg.MaxWait <= 0:
				flush()
			case timeout == nil:
				timer.Reset(b.cfg.MaxWait)
				timeout = timer.C
			}
		case <-timeout:
			flush()
		case <-b.quit:
			cancelParts(open)
			return
		}
	}
}

// send waits for the subscription's pace and a request slot, then sends
// the parts as one request on a goroutine of its own. Parts whose worker
// has stopped meanwhile are left out: their partition is no longer this
// lane's to deliver.
func (b *batcher) send(parts []*batchPart) {
	c := b.c
	live := parts[:0:0]
	for _, p := range parts {
		if p.ctx.Err() != nil {
			p.result <- cancelledOutcomes(len(p.events))
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	if !c.pace.wait(b.quit) || !c.acquireRequest(b.quit) {
		cancelParts(live)
		return
	}
	b.wg.Go(func() {
		defer c.releaseRequest()
		b.post(live)
	})
}

// post makes one attempt for a batch and hands each part its outcomes.
func (b *batcher) post(parts []*batchPart) {
	c := b.c
	// The request ends when every part's worker has stopped: nobody would
	// read its verdict.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waiting atomic.Int32
	waiting.Store(int32(len(parts)))
	for _, p := range parts {
		stop := context.AfterFunc(p.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}

	// The body is the parts' events joined, read from where the lanes
	// encoded them rather than copied into one buffer: a batch is written
	// once, and half the allocation of a batched delivery was that copy.
	n, size := 0, 2
	for _, p := range parts {
		n += len(p.events)
		size += p.size
	}
	size += n - 1 // commas
	body := make(net.Buffers, 0, 2*n+1)
	for _, p := range parts {
		for _, ev := range p.events {
			sep := comma
			if len(body) == 0 {
				sep = openBracket
			}
			body = append(body, sep, ev)
		}
	}
	body = append(body, closeBracket)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, &body)
	if err != nil { // the URL was validated at start: a bug
		c.log.Error("building the batch request", "error", err)
		cancelParts(parts)
		return
	}
	req.ContentLength = int64(size)
	req.GetBody = nil // no replays by the Transport: every attempt is counted
	req.Header = make(http.Header, 1+len(c.cfg.Request.ExtraHeaders))
	for name, values := range c.cfg.Request.ExtraHeaders {
		req.Header[name] = append([]string(nil), values...)
	}
	req.Header["Content-Type"] = []string{BatchContentType}

	start := time.Now()
	out, reply := c.webhook.DeliverReading(ctx, req, maxBatchReply)
	c.m.observe(out, time.Since(start))
	c.m.batchEvents.Observe(float64(n))
	if out.Throttled() {
		c.pace.slow(c.cfg.Retry.Backoff(1, out.RetryAfter, nil))
	}
	var failed map[string]int
	if out.Kind == Acked {
		if failed, err = parseBatchReply(reply); err != nil {
			out = Outcome{Kind: Retryable, Status: out.Status, ErrorText: boundText("batch reply: " + err.Error())}
		}
	}
	matched := 0
	for _, p := range parts {
		outs := make([]eventOutcome, len(p.events))
		for i := range outs {
			switch status, listed := failed[p.ids[i]]; {
			case out.Kind != Acked:
				outs[i] = eventOutcome{Outcome: out, shared: n > 1}
			case listed:
				matched++
				outs[i].Outcome = Outcome{Kind: c.webhook.statusKind(status), Status: status,
					ErrorText: fmt.Sprintf("HTTP %d for this event in the batch reply", status)}
			default:
				outs[i].Outcome = Outcome{Kind: Acked, Status: out.Status}
			}
		}
		p.result <- outs
	}
	if matched < len(failed) {
		c.log.Warn("the batch reply lists events that were not in the batch; ignoring them", "listed", len(failed), "matched", matched)
	}
}

func cancelParts(parts []*batchPart) {
	for _, p := range parts {
		p.result <- cancelledOutcomes(len(p.events))
	}
}

func cancelledOutcomes(n int) []eventOutcome {
	outs := make([]eventOutcome, n)
	for i := range outs {
		outs[i].Outcome = Outcome{Kind: Cancelled, ErrorText: "cancelled: the subscription stopped"}
	}
	return outs
}

// parseBatchReply reads a batch's 2xx reply: the ids of the events it lists
// as failed, with their statuses. An empty body, or one that is not a JSON
// object, acks every event (as a 2xx does for one record); an object
// without "failed" does too. An object that is not valid JSON, or whose
// failed list is not [{"id": string, "status": number}, …], is an error:
// the app meant to say something kbridge cannot read, and acking on a guess
// could skip records. A status missing, or outside 300-599, counts as 500.
func parseBatchReply(body []byte) (map[string]int, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, nil
	}
	var reply struct {
		Failed []struct {
			ID     *string      `json:"id"`
			Status *json.Number `json:"status"`
		} `json:"failed"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&reply); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("%s must be %s, not %s", typeErr.Field, expectedType(typeErr.Field), typeErr.Value)
		}
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if len(reply.Failed) == 0 {
		return nil, nil
	}
	failed := make(map[string]int, len(reply.Failed))
	for i, f := range reply.Failed {
		if f.ID == nil || *f.ID == "" {
			return nil, fmt.Errorf("failed[%d] has no id", i)
		}
		status := http.StatusInternalServerError
		if f.Status != nil {
			s, err := strconv.Atoi(f.Status.String())
			if err != nil {
				return nil, fmt.Errorf("failed[%d].status %s is not an integer", i, f.Status)
			}
			if s >= 300 && s <= 599 {
				status = s
			}
		}
		failed[*f.ID] = status
	}
	return failed, nil
}

func expectedType(field string) string {
	switch field {
	case "failed":
		return "a list"
	case "failed.id":
		return "a string"
	case "failed.status":
		return "a number"
	}
	return "an object"
}
