package bridgetest

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// batchContentType is batchContentType (bridge's tests import this
// package, so it cannot import bridge).
const batchContentType = "application/cloudevents-batch+json"

// Delivery is one request the Webhook received, or one event of a batch
// request.
type Delivery struct {
	Topic     string
	Partition int32
	Offset    int64
	Attempt   int
	// Key is the record key as sent (percent-encoded), nil for a null key.
	Key    *string
	Header http.Header // the request's
	Body   []byte      // the record value: the body, or the event's data
	Status int         // what the webhook answered, for this event in a batch
	At     time.Time
	// Batch is the number of events in the request, 0 for a single-record
	// request; Event is the event's JSON members, and Request numbers the
	// batch requests from 1.
	Batch   int
	Event   map[string]json.RawMessage
	Request int
}

// Reply is what a Webhook script answers: a status (0 means 200), extra
// headers, and an optional delay before answering. Hang holds the request
// until the client gives up.
//
// In a batch the script answers each event: an event answered with a
// non-2xx status is listed in the reply's failed list. A reply with Whole
// set, Hang or Reset answers the whole request instead (the first such
// event's); the longest Delay of the events applies.
type Reply struct {
	Status int
	Header http.Header
	Delay  time.Duration
	Hang   bool
	// Reset closes the connection without a reply (a TCP reset).
	Reset bool
	Whole bool
}

// Script decides each reply. It is called under no lock, from the server's
// goroutines, and may be called concurrently.
type Script func(d Delivery) Reply

// Webhook is a real HTTP server that records every delivery and answers
// by script. It records an acknowledgement before it sends the 2xx, so a
// checker that reads Acked can never see a commit ahead of the log.
type Webhook struct {
	URL string

	srv    *httptest.Server
	script Script

	mu         sync.Mutex
	requests   int // batch requests so far
	deliveries []Delivery
	acked      map[Coordinate]int // acked records and how often
	changed    chan struct{}      // closed and replaced on every delivery
}

// Coordinate names one record.
type Coordinate struct {
	Topic     string
	Partition int32
	Offset    int64
}

// NewWebhook starts a webhook on a loopback port, closed at the end of the
// test. A nil script answers 200 to everything.
func NewWebhook(tb testing.TB, script Script) *Webhook {
	tb.Helper()
	w := newWebhook(script)
	w.srv = httptest.NewServer(w)
	w.URL = w.srv.URL + "/events"
	tb.Cleanup(w.srv.Close)
	return w
}

// NewWebhookOn is NewWebhook on a listener the test opened (to start the
// webhook after kbridge, on an address kbridge was told before).
func NewWebhookOn(tb testing.TB, lis net.Listener, script Script) *Webhook {
	tb.Helper()
	w := newWebhook(script)
	w.srv = httptest.NewUnstartedServer(w)
	w.srv.Listener = lis
	w.srv.Start()
	w.URL = w.srv.URL + "/events"
	tb.Cleanup(w.srv.Close)
	return w
}

func newWebhook(script Script) *Webhook {
	if script == nil {
		script = func(Delivery) Reply { return Reply{} }
	}
	return &Webhook{script: script, acked: make(map[Coordinate]int), changed: make(chan struct{})}
}

// ServeHTTP records the delivery and answers by script.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Type") == batchContentType {
		w.serveBatch(rw, r, body)
		return
	}
	d := Delivery{
		Topic:  r.Header.Get("Kafka-Topic"),
		Header: r.Header.Clone(),
		Body:   body,
		At:     time.Now(),
	}
	p, _ := strconv.ParseInt(r.Header.Get("Kafka-Partition"), 10, 32)
	d.Partition = int32(p)
	d.Offset, _ = strconv.ParseInt(r.Header.Get("Kafka-Offset"), 10, 64)
	d.Attempt, _ = strconv.Atoi(r.Header.Get("Delivery-Attempt"))
	if k, ok := r.Header["Kafka-Key"]; ok {
		d.Key = &k[0]
	}
	reply := w.script(d)
	if !w.hold(rw, r, reply) {
		return
	}
	d.Status = cmp.Or(reply.Status, http.StatusOK)
	w.record(d)
	for k, vs := range reply.Header {
		rw.Header()[k] = vs
	}
	rw.WriteHeader(d.Status)
}

// hold carries out a reply's Hang, Reset and Delay; false when there is no
// reply to send.
func (w *Webhook) hold(rw http.ResponseWriter, r *http.Request, reply Reply) bool {
	if reply.Hang {
		<-r.Context().Done()
		return false
	}
	if reply.Reset {
		if conn, _, err := http.NewResponseController(rw).Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close with RST, not FIN
			}
			_ = conn.Close()
		}
		return false
	}
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return false
		}
	}
	return true
}

// serveBatch answers a CloudEvents batch: the script answers each event.
func (w *Webhook) serveBatch(rw http.ResponseWriter, r *http.Request, body []byte) {
	var events []map[string]json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		http.Error(rw, "not a CloudEvents batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.requests++
	request := w.requests
	w.mu.Unlock()
	ds := make([]Delivery, len(events))
	replies := make([]Reply, len(events))
	var whole *Reply
	var delay time.Duration
	for i, ev := range events {
		ds[i] = eventDelivery(ev, r.Header, len(events), request)
		replies[i] = w.script(ds[i])
		if (replies[i].Whole || replies[i].Hang || replies[i].Reset) && whole == nil {
			whole = &replies[i]
		}
		delay = max(delay, replies[i].Delay)
	}
	reply := Reply{Delay: delay}
	if whole != nil {
		reply = *whole
		reply.Delay = max(reply.Delay, delay)
	}
	if !w.hold(rw, r, reply) {
		return
	}
	type failure struct {
		ID     string `json:"id"`
		Status int    `json:"status"`
	}
	var failed []failure
	for i := range ds {
		ds[i].Status = cmp.Or(replies[i].Status, http.StatusOK)
		if whole != nil {
			ds[i].Status = cmp.Or(whole.Status, http.StatusOK)
		} else if ds[i].Status < 200 || ds[i].Status > 299 {
			var id string
			_ = json.Unmarshal(ds[i].Event["id"], &id)
			failed = append(failed, failure{id, ds[i].Status})
		}
		w.record(ds[i])
	}
	for k, vs := range reply.Header {
		rw.Header()[k] = vs
	}
	if whole != nil {
		rw.WriteHeader(ds[0].Status)
		return
	}
	if len(failed) == 0 {
		rw.WriteHeader(http.StatusOK)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(map[string]any{"failed": failed})
}

// eventDelivery reads one event of a batch as a Delivery.
func eventDelivery(ev map[string]json.RawMessage, h http.Header, n, request int) Delivery {
	d := Delivery{Header: h.Clone(), At: time.Now(), Batch: n, Event: ev, Request: request}
	var offset string
	_ = json.Unmarshal(ev["kafkatopic"], &d.Topic)
	_ = json.Unmarshal(ev["kafkapartition"], &d.Partition)
	_ = json.Unmarshal(ev["kafkaoffset"], &offset)
	d.Offset, _ = strconv.ParseInt(offset, 10, 64)
	_ = json.Unmarshal(ev["deliveryattempt"], &d.Attempt)
	if k, ok := ev["kafkakey"]; ok {
		var key string
		_ = json.Unmarshal(k, &key)
		d.Key = &key
	}
	if data, ok := ev["data"]; ok {
		d.Body = []byte(data)
	} else if b64, ok := ev["data_base64"]; ok {
		var s string
		_ = json.Unmarshal(b64, &s)
		d.Body, _ = base64.StdEncoding.DecodeString(s)
	}
	return d
}

func (w *Webhook) record(d Delivery) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deliveries = append(w.deliveries, d)
	if d.Status >= 200 && d.Status < 300 {
		w.acked[Coordinate{d.Topic, d.Partition, d.Offset}]++
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// Deliveries returns every answered delivery so far, in arrival order.
func (w *Webhook) Deliveries() []Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Delivery(nil), w.deliveries...)
}

// Acked returns how often each record was acknowledged.
func (w *Webhook) Acked() map[Coordinate]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[Coordinate]int, len(w.acked))
	for k, v := range w.acked {
		out[k] = v
	}
	return out
}

// AckedPrefix returns, for each partition of topic, the offset after the
// longest run of acknowledged records starting at from[partition] (or 0):
// the most a correct kbridge may have committed. Offsets in gaps (below
// records that exist) are the caller's business: this assumes none.
func (w *Webhook) AckedPrefix(topic string, from map[int32]int64) map[int32]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int32]int64)
	for c := range w.acked {
		if c.Topic == topic {
			out[c.Partition] = from[c.Partition]
		}
	}
	for p := range out {
		for w.acked[Coordinate{topic, p, out[p]}] > 0 {
			out[p]++
		}
	}
	return out
}

// WaitFor waits until cond holds over the deliveries, failing the test at
// the timeout. cond runs under the webhook's lock: it must use its argument
// and not call the webhook's other methods.
func (w *Webhook) WaitFor(tb testing.TB, timeout time.Duration, what string, cond func(ds []Delivery) bool) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok := cond(w.deliveries)
		changed := w.changed
		n := len(w.deliveries)
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("timed out after %v waiting for %s (%d deliveries so far)", timeout, what, n)
		}
	}
}

// WaitAcked waits until n distinct records are acknowledged.
func (w *Webhook) WaitAcked(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	w.WaitFor(tb, timeout, strconv.Itoa(n)+" acknowledged records", func([]Delivery) bool { return len(w.acked) >= n })
}

// Host returns the webhook's host:port.
func (w *Webhook) Host() string {
	u, _ := url.Parse(w.URL)
	return u.Host
}

// Committed returns the group's committed offsets for topic (-1 entries
// omitted).
func (c *Cluster) Committed(tb testing.TB, group, topic string) map[int32]int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.adm.FetchOffsets(ctx, group)
	for err != nil && kerr.IsRetriable(err) && ctx.Err() == nil {
		// A real broker's coordinator may still be loading the group.
		time.Sleep(50 * time.Millisecond)
		resp, err = c.adm.FetchOffsets(ctx, group)
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{} // nothing committed yet
	}
	if err != nil {
		tb.Fatalf("fetch committed offsets of %s: %v", group, err)
	}
	out := make(map[int32]int64)
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}
