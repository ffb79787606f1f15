package chaos

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// wholeStatusShare is the share of batch requests whose injected 500s and
// poison events are answered with a status for the whole request (500 if
// any event drew a 500, else 422) instead of a 2xx listing them as failed.
// Both are part of the contract: a whole 500 fails every event, and a whole
// 422 of several events must not dead-letter any (kbridge sends them again
// one per request, and only a poison record alone is refused and
// dead-lettered).
const wholeStatusShare = 0.25

// eventVerdict is what became of one event of a batch request.
type eventVerdict int

const (
	eventAcked     eventVerdict = iota // in a 2xx, not listed: acknowledged
	eventListed500                     // listed in the 2xx's failed list with 500
	eventListed422                     // a poison event, listed with 422
	eventBehind                        // after a listed event of its partition: not done, by kbridge's rule
	eventWhole                         // in a request that failed as a whole (any status but 2xx, slow, reset)
	eventVerdicts
)

var eventVerdictNames = [eventVerdicts]string{"acked", "listed 500", "listed 422 poison", "behind a listed event of their partition", "in requests failed whole"}

// batchCounts counts the batch requests and their events.
type batchCounts struct {
	requests, events, maxEvents atomic.Int64
	multi                       atomic.Int64 // requests of more than one event
	// isolate counts requests of several events answered 422 as a whole:
	// kbridge must send their events again one per request.
	isolate atomic.Int64
	// whole counts requests by their reply as a whole: replyAck for a 2xx,
	// the others for a request failed whole with that kind.
	whole      [replyKinds]atomic.Int64
	withFailed atomic.Int64 // 2xx replies that list failed events
	verdicts   [eventVerdicts]atomic.Int64
}

// batchTotals is a snapshot of batchCounts, for the summary.
type batchTotals struct {
	requests, events, maxEvents, multi, withFailed int64
	isolate                                        int64
	whole                                          [replyKinds]int64
	verdicts                                       [eventVerdicts]int64
}

func (c *batchCounts) totals() batchTotals {
	t := batchTotals{requests: c.requests.Load(), events: c.events.Load(), maxEvents: c.maxEvents.Load(),
		multi: c.multi.Load(), withFailed: c.withFailed.Load(), isolate: c.isolate.Load()}
	for i := range t.whole {
		t.whole[i] = c.whole[i].Load()
	}
	for i := range t.verdicts {
		t.verdicts[i] = c.verdicts[i].Load()
	}
	return t
}

// batchEvent is what the webhook reads of one event of a batch.
type batchEvent struct {
	ID             string          `json:"id"`
	Topic          string          `json:"kafkatopic"`
	Partition      json.RawMessage `json:"kafkapartition"`  // a JSON integer
	Offset         json.RawMessage `json:"kafkaoffset"`     // a JSON string
	Attempt        json.RawMessage `json:"deliveryattempt"` // a JSON integer
	IdempotencyKey string          `json:"idempotencykey"`
	ContentType    string          `json:"datacontenttype"`
	Data           json.RawMessage `json:"data"`
	DataBase64     *string         `json:"data_base64"`
}

// event is one event of a batch request, checked.
type event struct {
	id  string
	p   int32
	off int64
	v   valueFields
}

// readEvent checks one event against the batch contract and the record's
// value: the coordinates, the id and idempotency key they imply, the
// attempt, and the value byte for byte — as data when its content type is
// JSON (records published through the raw REST route carry content-type
// application/json), else as data_base64 (the others have no content type,
// so the subscription's default, application/octet-stream, applies).
func (w *webhook) readEvent(raw json.RawMessage) (event, error) {
	var e batchEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		return event{}, fmt.Errorf("not an event: %v", err)
	}
	p, err := strconv.ParseInt(string(e.Partition), 10, 32)
	if err != nil {
		return event{}, fmt.Errorf("kafkapartition %s is not a JSON integer", e.Partition)
	}
	var offText string
	if err := json.Unmarshal(e.Offset, &offText); err != nil {
		return event{}, fmt.Errorf("kafkaoffset %s is not a JSON string", e.Offset)
	}
	off, err := strconv.ParseInt(offText, 10, 64)
	if err != nil {
		return event{}, fmt.Errorf("kafkaoffset %q is not an offset", offText)
	}
	ev := event{id: e.ID, p: int32(p), off: off}
	if e.Topic != w.topic {
		return ev, fmt.Errorf("kafkatopic %q, want %q", e.Topic, w.topic)
	}
	if want := fmt.Sprintf("%s/%d/%d", w.topic, p, off); e.ID != want {
		return ev, fmt.Errorf("id %q, want %q", e.ID, want)
	}
	if want := fmt.Sprintf("%s/%s/%d/%d", w.group, w.topic, p, off); e.IdempotencyKey != want {
		return ev, fmt.Errorf("idempotencykey %q, want %q", e.IdempotencyKey, want)
	}
	if n, err := strconv.Atoi(string(e.Attempt)); err != nil || n < 1 {
		return ev, fmt.Errorf("deliveryattempt %s is not a positive JSON integer", e.Attempt)
	}
	var value []byte
	jsonType := e.ContentType == "application/json" || strings.HasSuffix(e.ContentType, "+json")
	switch {
	case e.Data != nil && e.DataBase64 != nil:
		return ev, fmt.Errorf("both data and data_base64")
	case e.Data != nil && jsonType:
		value = e.Data
	case e.DataBase64 != nil && !jsonType:
		if value, err = base64.StdEncoding.DecodeString(*e.DataBase64); err != nil {
			return ev, fmt.Errorf("data_base64: %v", err)
		}
	default: // every value of the run is valid JSON
		return ev, fmt.Errorf("datacontenttype %q with data %t, data_base64 %t: want data exactly for JSON",
			e.ContentType, e.Data != nil, e.DataBase64 != nil)
	}
	if err := json.Unmarshal(value, &ev.v); err != nil {
		return ev, fmt.Errorf("value %.80q: %v", value, err)
	}
	if string(value) != recordValue(ev.v.ID, ev.v.Poison, w.pad) {
		return ev, fmt.Errorf("the value is not the record's verbatim: %.80q", value)
	}
	return ev, nil
}

// failedEvent is one entry of a batch reply's failed list.
type failedEvent struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
}

// serveBatch answers a batch request. Every event is checked and recorded
// as an arrival, in the order of the batch (so a partition's first
// deliveries keep their offset order in the ledger). Then each event draws
// a reply as a one-record request would:
//
//   - 429, slow and reset can only be the whole request's: if any event
//     draws one, the first such applies to the whole request;
//   - a 500 or a poison event (422) is listed in a 2xx's failed list, or in
//     wholeStatusShare of the requests answered with a status for the whole
//     request (500 if any event drew one, else 422);
//   - the rest are acknowledged, except — kbridge's rule with ordering
//     partition — every event after a listed one of the same partition:
//     kbridge sends those again, so they are not done and the ledger must
//     not count them acknowledged (that would let the checker accept a
//     commit kbridge must not make). The run's single subscription uses
//     ordering partition, so a request holds one run per partition and
//     "later in the same partition" is exactly kbridge's "later in the
//     run".
//
// Acknowledgements are recorded before the reply is written, as for one
// record. Failures are counted per request for a reply of the whole
// request, and per event for the events' verdicts (batchCounts).
func (w *webhook) serveBatch(rw http.ResponseWriter, r *http.Request, body []byte) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil || len(raws) == 0 {
		w.problems.add("a batch request whose body is not a JSON array of events (%v): %.80q", err, body)
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	events := make([]event, len(raws))
	bad := false
	for i, raw := range raws {
		ev, err := w.readEvent(raw)
		if err == nil && !w.ledger.arrived(ev.p, ev.off, ev.v.ID) {
			err = fmt.Errorf("coordinates that are not the topic's")
		}
		if err != nil {
			w.problems.add("unexpected batch event %d of %d (%s): %v", i+1, len(raws), ev.id, err)
			bad = true
		}
		events[i] = ev
	}
	if len(events) > w.batchMax {
		w.problems.add("a batch of %d events, over max_records %d", len(events), w.batchMax)
		bad = true
	}
	last := map[int32]int64{}
	for _, ev := range events {
		if prev, seen := last[ev.p]; seen && ev.off <= prev {
			w.problems.add("partition %d: offset %d after offset %d in one batch (ordering partition)", ev.p, ev.off, prev)
			bad = true
		}
		last[ev.p] = ev.off
	}
	if bad {
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	c := &w.batches
	n := int64(len(events))
	c.requests.Add(1)
	c.events.Add(n)
	if n > 1 {
		c.multi.Add(1)
	}
	for m := c.maxEvents.Load(); n > m && !c.maxEvents.CompareAndSwap(m, n); m = c.maxEvents.Load() {
	}

	kinds := make([]reply, len(events))
	whole := replyAck
	var any500, anyPoison bool
	for i, ev := range events {
		kinds[i] = w.draw(ev.v.Poison)
		switch kinds[i] {
		case reply429, replySlow, replyReset:
			if whole == replyAck {
				whole = kinds[i]
			}
		case reply500:
			any500 = true
		case replyPoison:
			anyPoison = true
		}
	}
	if asStatus := w.float() < wholeStatusShare; whole == replyAck && asStatus {
		switch {
		case any500:
			whole = reply500
		case anyPoison:
			whole = replyPoison
		}
	}
	c.whole[whole].Add(1)
	if whole == replyPoison && n > 1 {
		c.isolate.Add(1)
	}
	if whole != replyAck {
		c.verdicts[eventWhole].Add(n)
		w.fail(rw, r, whole)
		return
	}

	verdicts, failed := judge(events, kinds)
	for i, ev := range events {
		if verdicts[i] == eventAcked {
			w.ledger.acked(ev.p, ev.off) // before the 2xx leaves
		}
		c.verdicts[verdicts[i]].Add(1)
	}
	if len(failed) == 0 {
		rw.WriteHeader(http.StatusNoContent)
		return
	}
	c.withFailed.Add(1)
	reply, err := json.Marshal(struct {
		Failed []failedEvent `json:"failed"`
	}{failed})
	if err != nil { // cannot happen: strings and ints
		panic(err)
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(reply)
}

// judge settles the events of a batch answered 2xx, given the reply each
// drew (ack, 500 or poison): a 500 or poison event is listed as failed, and
// fails every later event of its partition; the others are acknowledged.
func judge(events []event, kinds []reply) ([]eventVerdict, []failedEvent) {
	verdicts := make([]eventVerdict, len(events))
	var failed []failedEvent
	blocked := map[int32]bool{} // partitions with a listed event earlier in the batch
	for i, ev := range events {
		switch {
		case kinds[i] == reply500:
			failed = append(failed, failedEvent{ID: ev.id, Status: http.StatusInternalServerError})
			blocked[ev.p], verdicts[i] = true, eventListed500
		case kinds[i] == replyPoison:
			failed = append(failed, failedEvent{ID: ev.id, Status: http.StatusUnprocessableEntity})
			blocked[ev.p], verdicts[i] = true, eventListed422
		case blocked[ev.p]:
			verdicts[i] = eventBehind
		default:
			verdicts[i] = eventAcked
		}
	}
	return verdicts, failed
}

// lines are the summary's account of a batch run's requests and events.
func (t batchTotals) lines() (requests, events string) {
	mean := 0.0
	if t.requests > 0 {
		mean = float64(t.events) / float64(t.requests)
	}
	var whole []string
	for k := replyPoison; k < replyKinds; k++ {
		if k == replyPoison {
			whole = append(whole, fmt.Sprintf("422 %d (%d of several events)", t.whole[k], t.isolate))
			continue
		}
		whole = append(whole, fmt.Sprintf("%s %d", replyNames[k], t.whole[k]))
	}
	requests = fmt.Sprintf("%d requests (%d of several events; %.1f events each on average, at most %d): failed whole (per request) %s; %d answered 2xx, %d of them listing failed events",
		t.requests, t.multi, mean, t.maxEvents, strings.Join(whole, ", "), t.whole[replyAck], t.withFailed)
	var verdicts []string
	for k := range eventVerdicts {
		verdicts = append(verdicts, fmt.Sprintf("%s %d", eventVerdictNames[k], t.verdicts[k]))
	}
	return requests, fmt.Sprintf("%d events (per event): %s", t.events, strings.Join(verdicts, ", "))
}
