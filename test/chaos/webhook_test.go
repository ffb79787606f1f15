package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// reply is what the webhook does with one request.
type reply int

const (
	replyAck    reply = iota // 204
	replyPoison              // 422: a permanent status, so the record is dead-lettered
	reply500                 // 500: retried
	reply429                 // 429 with Retry-After: retried after a pause of the subscription
	replySlow                // no reply before kbridge's attempt timeout
	replyReset               // the connection is reset without a reply
	replyKinds
)

var replyNames = [replyKinds]string{"204", "422 poison", "500", "429 Retry-After", "slow (timeout)", "connection reset"}

// slowFor is how long a slow reply takes: far past kbridge's attempt
// timeout, so that kbridge always gives up first and never sees a 2xx.
const slowFor = 6 * attemptTimeout

// webhook is the one application every kbridge instance delivers to. It
// answers mostly 204 but injects failures at the configured rates, answers
// 422 to poison records, and records in the ledger every request and every
// acknowledgement — the acknowledgement before the 2xx is written, so the
// commit checker can never see a commit ahead of the ledger. With batch
// delivery it reads CloudEvents batches and answers per event as well
// (serveBatch).
type webhook struct {
	URL string

	topic, group string
	pad          string // the padding of every record value
	batch        bool   // the run delivers in batches…
	batchMax     int    // …of at most this many records
	ledger       *ledger
	faults       faultRates
	srv          *httptest.Server

	mu  sync.Mutex
	rng *rand.Rand

	replies  [replyKinds]atomic.Int64 // one-record requests, by reply
	batches  batchCounts
	problems problemLog
}

func newWebhook(topic, group string, l *ledger, s settings) *webhook {
	w := &webhook{topic: topic, group: group, pad: strings.Repeat("x", s.valueBytes), batch: s.batch > 0, batchMax: s.batch,
		ledger: l, faults: s.faults, rng: rand.New(rand.NewPCG(s.seed, 1))}
	w.srv = httptest.NewServer(w)
	w.URL = w.srv.URL + "/kafka/events"
	return w
}

// Close stops the server, cutting off requests still in progress.
func (w *webhook) Close() {
	w.srv.CloseClientConnections()
	w.srv.Close()
}

// valueFields is what the run puts in every record value.
type valueFields struct {
	ID     int64 `json:"id"`
	Poison bool  `json:"poison"`
}

// batchContentType is the Content-Type of a batch request (the CloudEvents
// JSON batch format). Spelled out here rather than taken from package
// bridge: the run checks kbridge from the outside.
const batchContentType = "application/cloudevents-batch+json"

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // kbridge gave up while sending
	}
	if isBatch := r.Header.Get("Content-Type") == batchContentType; isBatch != w.batch {
		w.problems.add("a request with Content-Type %q in a run with batch delivery %t: body %.80q", r.Header.Get("Content-Type"), w.batch, body)
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	if w.batch {
		w.serveBatch(rw, r, body)
		return
	}
	p, off, ok := coordinates(r.Header)
	var v valueFields
	if err := json.Unmarshal(body, &v); err != nil || !ok || r.Header.Get("Kafka-Topic") != w.topic || !w.ledger.arrived(p, off, v.ID) {
		w.problems.add("unexpected delivery: topic %q partition %q offset %q body %.80q",
			r.Header.Get("Kafka-Topic"), r.Header.Get("Kafka-Partition"), r.Header.Get("Kafka-Offset"), body)
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	if got, want := r.Header.Get("Idempotency-Key"), fmt.Sprintf("%s/%s/%d/%d", w.group, w.topic, p, off); got != want {
		w.problems.add("Idempotency-Key %q, want %q", got, want)
	}
	if string(body) != recordValue(v.ID, v.Poison, w.pad) {
		w.problems.add("%d/%d: the body is not the record's value verbatim: %.80q", p, off, body)
	}
	kind := w.draw(v.Poison)
	w.replies[kind].Add(1)
	if kind == replyAck {
		w.ledger.acked(p, off) // before the 2xx leaves
		rw.WriteHeader(http.StatusNoContent)
		return
	}
	w.fail(rw, r, kind)
}

// fail answers a whole request with a failure of kind.
func (w *webhook) fail(rw http.ResponseWriter, r *http.Request, kind reply) {
	switch kind {
	case replyPoison:
		rw.WriteHeader(http.StatusUnprocessableEntity)
	case reply500:
		rw.WriteHeader(http.StatusInternalServerError)
	case reply429:
		rw.Header().Set("Retry-After", "1")
		rw.WriteHeader(http.StatusTooManyRequests)
	case replySlow:
		timer := time.NewTimer(slowFor)
		defer timer.Stop()
		select {
		case <-r.Context().Done():
		case <-timer.C:
			rw.WriteHeader(http.StatusServiceUnavailable) // never a late 2xx
		}
	case replyReset:
		resetConnection(rw)
	}
}

// draw picks the reply to one request, or with batch delivery to one event.
func (w *webhook) draw(poison bool) reply {
	if poison {
		return replyPoison
	}
	x := w.float()
	for _, f := range []struct {
		rate float64
		kind reply
	}{{w.faults.status500, reply500}, {w.faults.status429, reply429}, {w.faults.slow, replySlow}, {w.faults.reset, replyReset}} {
		if x < f.rate {
			return f.kind
		}
		x -= f.rate
	}
	return replyAck
}

// float is the next number from the webhook's seeded generator, in [0, 1).
func (w *webhook) float() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.Float64()
}

// resetConnection closes the request's connection with a TCP RST.
func resetConnection(rw http.ResponseWriter) {
	conn, _, err := http.NewResponseController(rw).Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// coordinates reads Kafka-Partition and Kafka-Offset.
func coordinates(h http.Header) (int32, int64, bool) {
	p, err1 := strconv.ParseInt(h.Get("Kafka-Partition"), 10, 32)
	off, err2 := strconv.ParseInt(h.Get("Kafka-Offset"), 10, 64)
	return int32(p), off, err1 == nil && err2 == nil
}

// injected is how often each reply was given.
func (w *webhook) injected() [replyKinds]int64 {
	var out [replyKinds]int64
	for i := range out {
		out[i] = w.replies[i].Load()
	}
	return out
}

// problemLog collects contract breaches seen from goroutines that cannot
// fail the test themselves, keeping the first few in full.
type problemLog struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (l *problemLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.first) < 10 {
		l.first = append(l.first, fmt.Sprintf(format, args...))
	}
}

// report returns how many problems there were and the first few.
func (l *problemLog) report() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, append([]string(nil), l.first...)
}
