package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// api is one of kbridge's ways to publish.
type api int

const (
	apiUnary    api = iota // gRPC Publish
	apiStream              // gRPC PublishStream
	apiRESTJSON            // POST /v1/topics/{topic}/records
	apiRESTRaw             // POST /v1/topics/{topic}
	apiKinds
)

var apiNames = [apiKinds]string{"grpc unary", "grpc stream", "rest json", "rest raw"}

// loopbackPort is cut from error texts, so that errors group by kind.
var loopbackPort = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)

// published is one publish kbridge acknowledged: where Kafka put it.
type published struct {
	id        int64
	partition int32
	offset    int64
}

// callCount counts one API's calls and records.
type callCount struct {
	calls, failedCalls       int
	records, failedOrUnknown int
}

// publisherWorkers is how many callers publish at once, each at its share
// of the rate: calls overlap, so kills and shutdowns meet calls in flight,
// and kbridge batches records of different callers.
const publisherWorkers = 4

// publisher offers records to random live instances through all four
// APIs at a steady rate, and keeps every acknowledged publish. A failed
// call is not retried with the same ids: its records may or may not be in
// Kafka (an instance killed mid-call, a deadline), and the run treats
// whatever the log holds as records to deliver.
type publisher struct {
	topic     string
	fleet     *fleet
	seed      uint64
	pad       string
	poisonOne int
	http      *http.Client
	nextID    atomic.Int64
	began     time.Time
	logf      func(format string, args ...any) // failed calls are logged one by one
	halted    chan struct{}
	haltOnce  sync.Once

	mu     sync.Mutex
	ok     []published
	counts [apiKinds]callCount
	errors map[string]int   // failed calls by error text, cut short
	failed map[int64]string // records not acknowledged: why, by id
}

func newPublisher(topic string, f *fleet, s settings, began time.Time, logf func(string, ...any)) *publisher {
	return &publisher{topic: topic, fleet: f, seed: s.seed, began: began, logf: logf, halted: make(chan struct{}), pad: strings.Repeat("x", s.valueBytes),
		poisonOne: s.poisonOne, http: &http.Client{Timeout: 2 * publishTimeout},
		errors: map[string]int{}, failed: map[int64]string{}}
}

// run publishes until target records were acknowledged (target 0: until
// halt), offering rate records a second, or until ctx ends. Reaching the
// target or halt stops new calls; calls in flight finish.
func (p *publisher) run(ctx context.Context, target int, rate float64) {
	defer p.http.CloseIdleConnections()
	var wg sync.WaitGroup
	for w := range uint64(publisherWorkers) {
		rng := rand.New(rand.NewPCG(p.seed, 10+w))
		wg.Go(func() { p.work(ctx, rng, rate/publisherWorkers, target) })
	}
	wg.Wait()
}

// halt stops new calls; it may be called more than once.
func (p *publisher) halt() { p.haltOnce.Do(func() { close(p.halted) }) }

// work is one caller: it calls at its rate until ctx ends or the
// publisher halts, and halts it once target records were acknowledged.
func (p *publisher) work(ctx context.Context, rng *rand.Rand, rate float64, target int) {
	began := time.Now()
	offered := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.halted:
			return
		case <-timer.C:
		}
		inst := p.fleet.pick(rng)
		if inst == nil {
			timer.Reset(100 * time.Millisecond)
			continue
		}
		kind := api(rng.IntN(int(apiKinds)))
		n := 1 + rng.IntN(5)
		if kind == apiRESTRaw {
			n = 1
		}
		offered += n
		if p.publish(ctx, rng, inst, kind, p.records(n)) >= target && target > 0 {
			p.halt()
		}
		// The next call is due when the records offered so far are due.
		timer.Reset(time.Until(began.Add(time.Duration(float64(offered) / rate * float64(time.Second)))))
	}
}

// acknowledged returns the acknowledged publishes; call it after run.
func (p *publisher) acknowledged() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

// records makes n records with fresh ids: keyed JSON values, one in
// poisonOne of them poison.
func (p *publisher) records(n int) []*kbridgev1.Record {
	recs := make([]*kbridgev1.Record, n)
	for i := range recs {
		id := p.nextID.Add(1)
		poison := p.poisonOne > 0 && id%int64(p.poisonOne) == 0
		key := "key-" + strconv.FormatInt(id%97, 10)
		value := recordValue(id, poison, p.pad)
		recs[i] = &kbridgev1.Record{Key: &key, Value: &value}
	}
	return recs
}

// recordValue is the value of the record with id: what the log holds, and
// what the webhook must receive byte for byte (a request's body, or a batch
// event's data or decoded data_base64).
func recordValue(id int64, poison bool, pad string) string {
	return fmt.Sprintf(`{"id":%d,"poison":%t,"pad":"%s"}`, id, poison, pad)
}

// publish makes one call, keeps the records it acknowledged and returns
// how many were acknowledged in all so far.
func (p *publisher) publish(ctx context.Context, rng *rand.Rand, inst *instance, kind api, recs []*kbridgev1.Record) int {
	ctx, cancel := context.WithTimeout(ctx, 2*publishTimeout)
	defer cancel()
	sent := time.Now()
	var results []*kbridgev1.PublishResult
	var err error
	switch kind {
	case apiUnary:
		var resp *kbridgev1.PublishResponse
		resp, err = kbridgev1.NewProducerServiceClient(inst.conn).Publish(ctx, &kbridgev1.PublishRequest{Topic: p.topic, Records: recs})
		results = resp.GetResults()
	case apiStream:
		results, err = p.stream(ctx, rng, inst, recs)
	case apiRESTJSON, apiRESTRaw:
		results, err = p.rest(ctx, inst, kind, recs)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &p.counts[kind]
	c.calls++
	callErr := "no result"
	if err != nil {
		c.failedCalls++
		callErr = apiNames[kind] + ": " + shortError(err.Error())
		p.errors[callErr]++
		p.logf("%6.1fs publish to %s failed after %v (%d records): %s: %v", sent.Sub(p.began).Seconds(), inst.name,
			time.Since(sent).Round(time.Millisecond), len(recs), apiNames[kind], err)
	}
	for i, rec := range recs {
		var r *kbridgev1.PublishResult
		if i < len(results) {
			r = results[i]
		}
		var v valueFields
		_ = json.Unmarshal([]byte(rec.GetValue()), &v)
		switch {
		case r.GetError() != nil:
			p.failed[v.ID] = apiNames[kind] + " record error: " + shortError(r.GetError().GetCode()+": "+r.GetError().GetMessage())
		case r == nil || r.Partition == nil || r.Offset == nil:
			p.failed[v.ID] = callErr
		default:
			c.records++
			p.ok = append(p.ok, published{id: v.ID, partition: r.GetPartition(), offset: r.GetOffset()})
			continue
		}
		c.failedOrUnknown++
	}
	return len(p.ok)
}

// shortError cuts an error text to group errors by kind.
func shortError(msg string) string {
	msg = loopbackPort.ReplaceAllString(msg, "127.0.0.1:*")
	return msg[:min(len(msg), 100)]
}

// stream sends the records as up to three requests on a new PublishStream
// and collects the answers it gets; a broken stream leaves the rest nil.
func (p *publisher) stream(ctx context.Context, rng *rand.Rand, inst *instance, recs []*kbridgev1.Record) ([]*kbridgev1.PublishResult, error) {
	st, err := kbridgev1.NewProducerServiceClient(inst.conn).PublishStream(ctx)
	if err != nil {
		return nil, err
	}
	var chunks [][]*kbridgev1.Record
	for rest := recs; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(2))
		chunks, rest = append(chunks, rest[:n]), rest[n:]
	}
	for i, chunk := range chunks {
		if err := st.Send(&kbridgev1.PublishStreamRequest{Topic: p.topic, Records: chunk, RequestId: strconv.Itoa(i)}); err != nil {
			break // Recv reports why
		}
	}
	_ = st.CloseSend()
	results := make([]*kbridgev1.PublishResult, 0, len(recs))
	for i := range chunks {
		resp, err := st.Recv()
		if err != nil {
			return results, err
		}
		if resp.GetRequestId() != strconv.Itoa(i) {
			return results, fmt.Errorf("stream answered request %q in place of %d", resp.GetRequestId(), i)
		}
		if resp.GetError() != nil {
			return results, fmt.Errorf("stream request %d: %s: %s", i, resp.GetError().GetCode(), resp.GetError().GetMessage())
		}
		results = append(results, resp.GetResults()...)
	}
	return results, nil
}

// rest publishes over the REST API: the JSON route, or the raw route with
// one record whose body is its value.
func (p *publisher) rest(ctx context.Context, inst *instance, kind api, recs []*kbridgev1.Record) ([]*kbridgev1.PublishResult, error) {
	u := "http://" + inst.http + "/v1/topics/" + p.topic
	var body []byte
	if kind == apiRESTRaw {
		u += "?key=" + url.QueryEscape(recs[0].GetKey())
		body = []byte(recs[0].GetValue())
	} else {
		u += "/records"
		type jsonRecord struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		var req struct {
			Records []jsonRecord `json:"records"`
		}
		for _, r := range recs {
			req.Records = append(req.Records, jsonRecord{r.GetKey(), r.GetValue()})
		}
		body, _ = json.Marshal(req)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.100s", resp.StatusCode, reply)
	}
	var out kbridgev1.PublishResponse
	if err := protojson.Unmarshal(reply, &out); err != nil {
		return nil, fmt.Errorf("decode %.100s: %w", reply, err)
	}
	return out.GetResults(), nil
}
