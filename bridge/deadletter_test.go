package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bridge/bridgetest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newTestDeadLetterWriter builds a writer with a fresh registry, closed at
// the end of the test (before the cluster: cleanups run last-in first-out).
func newTestDeadLetterWriter(tb testing.TB, cfg DeadLetterConfig, log *slog.Logger) *DeadLetterWriter {
	tb.Helper()
	if cfg.Client.ClientID == "" {
		cfg.Client.ClientID = "test-dlq"
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = 1 << 20
	}
	w, err := NewDeadLetterWriter(cfg, log, prometheus.NewRegistry())
	if err != nil {
		tb.Fatalf("NewDeadLetterWriter: %v", err)
	}
	tb.Cleanup(w.Close)
	return w
}

// deadLetterSource is a record as the consumer fetched it.
func deadLetterSource() *kgo.Record {
	return &kgo.Record{
		Topic: "orders", Partition: 3, Offset: 42,
		Key:   []byte("order-7"),
		Value: []byte(`{"id":7}`),
		Headers: []kgo.RecordHeader{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "trace", Value: []byte("a")},
			{Key: "trace", Value: []byte("b")}, // repeated keys keep their order
			{Key: "bin", Value: []byte{0, 0xff, '\n'}},
		},
		// The source's timestamp: milliseconds, as Kafka stores it.
		Timestamp: time.Date(2025, 12, 31, 23, 59, 58, 7_000_000, time.UTC),
	}
}

func deadLetterTestInfo() DeadLetterInfo {
	cet := time.FixedZone("CET", 3600)
	return DeadLetterInfo{
		Group:        "billing",
		Attempts:     10,
		LastStatus:   503,
		ErrorText:    "HTTP 503 Service Unavailable",
		FirstAttempt: time.Date(2026, 1, 2, 4, 4, 5, 0, cet),           // whole second: still .000
		LastAttempt:  time.Date(2026, 1, 2, 4, 9, 7, 891_234_567, cet), // truncated, not rounded
	}
}

// wantDeadLetterHeaders is what Write must append to the source's headers
// for deadLetterSource and deadLetterTestInfo.
func wantDeadLetterHeaders() []kgo.RecordHeader {
	return headers(
		"kbridge-dlq-topic", "orders",
		"kbridge-dlq-partition", "3",
		"kbridge-dlq-offset", "42",
		"kbridge-dlq-group", "billing",
		"kbridge-dlq-attempts", "10",
		"kbridge-dlq-last-status", "503",
		"kbridge-dlq-error", "HTTP 503 Service Unavailable",
		"kbridge-dlq-first-attempt", "2026-01-02T03:04:05.000Z",
		"kbridge-dlq-last-attempt", "2026-01-02T03:09:07.891Z",
		"kbridge-dlq-timestamp", "2025-12-31T23:59:58.007Z",
	)
}

func writeDeadLetter(t *testing.T, w *DeadLetterWriter, topic string, rec *kgo.Record, info DeadLetterInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Write(ctx, topic, rec, info); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func checkHeaders(t *testing.T, got, want []kgo.RecordHeader) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d headers, want %d:\n got %s\nwant %s", len(got), len(want), headerList(got), headerList(want))
		return
	}
	for i := range want {
		if got[i].Key != want[i].Key || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Errorf("headers[%d] = %s=%q, want %s=%q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
}

func headerList(hs []kgo.RecordHeader) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s=%q ", h.Key, h.Value)
	}
	return b.String()
}

func TestDeadLetterWriteRoundTrip(t *testing.T) {
	c := bridgetest.NewCluster(t)
	dlq := c.Topic(t, 1)
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}}, nil)
	src := deadLetterSource()
	start := time.Now().Truncate(time.Millisecond)
	writeDeadLetter(t, w, dlq, src, deadLetterTestInfo())

	got := c.ReadAll(t, dlq, 1)[0]
	sameBytes(t, "key", got.Key, src.Key)
	sameBytes(t, "value", got.Value, src.Value)
	checkHeaders(t, got.Headers, append(src.Headers, wantDeadLetterHeaders()...))
	if got.Timestamp.Before(start) {
		t.Errorf("timestamp %v is before the write started (%v): want the write's time", got.Timestamp, start)
	}
	if ok, failed := counterValue(t, w.writesOK), counterValue(t, w.writesErr); ok != 1 || failed != 0 {
		t.Errorf("writes ok=%v error=%v, want 1 and 0", ok, failed)
	}
	if n := counterValue(t, w.omitted); n != 0 {
		t.Errorf("omitted counter = %v, want 0", n)
	}
	if c.EndOffsets(t, dlq) != 1 {
		t.Errorf("DLQ holds %d records, want 1", c.EndOffsets(t, dlq))
	}
}

// TestDeadLetterWriteNullAndBinary: null stays null, empty stays empty, and
// bytes are copied as they are; without an HTTP reply there is no
// last-status header.
func TestDeadLetterWriteNullAndBinary(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	tests := []struct {
		name       string
		key, value []byte
	}{
		{"null key, binary value", nil, binary},
		{"empty key, null value", []byte{}, nil},
		{"binary key, empty value", binary, []byte{}},
	}
	c := bridgetest.NewCluster(t)
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dlq := c.Topic(t, 1)
			src := &kgo.Record{Topic: "in", Partition: 0, Offset: 0, Key: tt.key, Value: tt.value}
			info := DeadLetterInfo{Group: "g", Attempts: 3, ErrorText: "timeout: no reply within 30s"}
			writeDeadLetter(t, w, dlq, src, info)

			got := c.ReadAll(t, dlq, 1)[0]
			sameBytes(t, "key", got.Key, tt.key)
			sameBytes(t, "value", got.Value, tt.value)
			for _, h := range got.Headers {
				if h.Key == DeadLetterHeaderLastStatus {
					t.Errorf("%s=%q written for an attempt without HTTP reply", h.Key, h.Value)
				}
			}
			if v := headerValue(got.Headers, DeadLetterHeaderAttempts); v != "3" {
				t.Errorf("attempts header %q, want 3", v)
			}
		})
	}
}

func headerValue(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return "<absent>"
}

func TestDeadLetterWriteOversizeValue(t *testing.T) {
	c := bridgetest.NewCluster(t)
	dlq := c.Topic(t, 1)
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}, MaxRecordBytes: 4096}, nil)
	src := deadLetterSource()
	src.Value = bytes.Repeat([]byte("v"), 4096)
	writeDeadLetter(t, w, dlq, src, deadLetterTestInfo())

	got := c.ReadAll(t, dlq, 1)[0]
	sameBytes(t, "key", got.Key, src.Key)
	sameBytes(t, "value", got.Value, nil)
	want := append(src.Headers, wantDeadLetterHeaders()...)
	checkHeaders(t, got.Headers, append(want, headers(DeadLetterHeaderValueOmitted, "size")...))
	if n := counterValue(t, w.omitted); n != 1 {
		t.Errorf("omitted counter = %v, want 1", n)
	}
}

// TestDeadLetterWriteAtRecordLimit: a record exactly at the limit was
// accepted by the publish path, but with provenance it no longer fits: the
// write must still succeed (without the value), never loop on the size.
func TestDeadLetterWriteAtRecordLimit(t *testing.T) {
	c := bridgetest.NewCluster(t)
	dlq := c.Topic(t, 1)
	const limit = 1 << 20
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}, MaxRecordBytes: limit}, nil)
	src := &kgo.Record{Topic: "in", Offset: 9, Value: bytes.Repeat([]byte{0xab}, limit)}
	writeDeadLetter(t, w, dlq, src, deadLetterTestInfo())

	got := c.ReadAll(t, dlq, 1)[0]
	sameBytes(t, "value", got.Value, nil)
	if v := headerValue(got.Headers, DeadLetterHeaderValueOmitted); v != "size" {
		t.Errorf("%s = %q, want size", DeadLetterHeaderValueOmitted, v)
	}
	if v := headerValue(got.Headers, DeadLetterHeaderOffset); v != "9" {
		t.Errorf("offset header %q, want 9", v)
	}
}

func contentSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// TestDeadLetterRecordShedding: the least is left out that makes the record
// fit, in the order value, headers, key; markers name only what was there.
func TestDeadLetterRecordShedding(t *testing.T) {
	src := deadLetterSource()
	src.Value = bytes.Repeat([]byte("v"), 1000)
	src.Headers = headers("h1", strings.Repeat("x", 300), "h2", strings.Repeat("y", 300))
	full := assembleDeadLetter("dlq", src, provenanceHeaders(src, deadLetterTestInfo()), shedNothing)
	marker := func(key string) int { return len(key) + len("size") }
	withoutValue := contentSize(full) - len(src.Value) + marker(DeadLetterHeaderValueOmitted)
	withoutHeaders := withoutValue - 2*(2+300) + marker(DeadLetterHeaderHeadersOmitted)
	noValue := &kgo.Record{Topic: "in", Key: []byte("k"), Headers: src.Headers}
	bigKey := &kgo.Record{Topic: "in", Key: bytes.Repeat([]byte("k"), 2000), Value: []byte("v")}

	valueGone := []string{DeadLetterHeaderValueOmitted}
	headersGone := []string{DeadLetterHeaderValueOmitted, DeadLetterHeaderHeadersOmitted}
	allGone := []string{DeadLetterHeaderValueOmitted, DeadLetterHeaderHeadersOmitted, DeadLetterHeaderKeyOmitted}
	tests := []struct {
		name        string
		rec         *kgo.Record
		limit       int
		minShed     shedLevel
		want        shedLevel
		markers     []string // present only for parts that were there
		nothingFits bool
	}{
		{"fits exactly", src, contentSize(full), shedNothing, shedNothing, nil, false},
		{"one byte over", src, contentSize(full) - 1, shedNothing, shedValue, valueGone, false},
		{"fits without value", src, withoutValue, shedNothing, shedValue, valueGone, false},
		{"needs headers gone", src, withoutValue - 1, shedNothing, shedHeaders, headersGone, false},
		{"fits without headers", src, withoutHeaders, shedNothing, shedHeaders, headersGone, false},
		{"nothing fits: written with provenance only", src, 1, shedNothing, shedKey, allGone, true},
		{"broker refused: value left out though it fits", src, 1 << 20, shedValue, shedValue, valueGone, false},
		{"null value: no value marker", noValue, 500, shedNothing, shedHeaders, []string{DeadLetterHeaderHeadersOmitted}, false},
		{"huge key", bigKey, 1000, shedNothing, shedKey, []string{DeadLetterHeaderValueOmitted, DeadLetterHeaderKeyOmitted}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prov := provenanceHeaders(tt.rec, deadLetterTestInfo())
			got, shed := deadLetterRecord("dlq", tt.rec, prov, tt.limit, tt.minShed)
			if shed != tt.want {
				t.Fatalf("shed %v, want %v", shed, tt.want)
			}
			if n := contentSize(got); n > tt.limit && !tt.nothingFits {
				t.Errorf("record of %d bytes, over the limit %d", n, tt.limit)
			}
			checkShedRecord(t, got, tt.rec, prov, shed, tt.markers)
		})
	}
}

// checkShedRecord checks a DLQ record built for rec at level shed: what is
// kept is rec's, the provenance follows the kept headers, the markers come
// last, and the timestamp is left for the client to stamp.
func checkShedRecord(t *testing.T, got, rec *kgo.Record, prov []kgo.RecordHeader, shed shedLevel, markers []string) {
	t.Helper()
	var wantHeaders []kgo.RecordHeader
	if shed < shedHeaders {
		wantHeaders = append(wantHeaders, rec.Headers...)
	}
	wantHeaders = append(wantHeaders, prov...)
	for _, m := range markers {
		wantHeaders = append(wantHeaders, kgo.RecordHeader{Key: m, Value: []byte("size")})
	}
	checkHeaders(t, got.Headers, wantHeaders)
	wantKey, wantValue := rec.Key, rec.Value
	if shed >= shedValue {
		wantValue = nil
	}
	if shed >= shedKey {
		wantKey = nil
	}
	sameBytes(t, "key", got.Key, wantKey)
	sameBytes(t, "value", got.Value, wantValue)
	if got.Topic != "dlq" || !got.Timestamp.IsZero() {
		t.Errorf("topic %q timestamp %v, want dlq and zero (stamped by the client)", got.Topic, got.Timestamp)
	}
}

// produceRefusals counts produce requests refused by refuseProduces.
type produceRefusals struct {
	n     atomic.Int32
	first chan struct{} // closed at the first refusal
}

// refuseProduces answers produce requests with codes in turn: once each,
// then lets requests through; or, if forever, cycling through codes. The
// codes used are not retriable, so each refusal fails the attempt at once
// instead of being retried inside franz-go, out of the test's sight.
func refuseProduces(c *kfake.Cluster, forever bool, codes ...int16) *produceRefusals {
	r := &produceRefusals{first: make(chan struct{})}
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		i := int(r.n.Load())
		if !forever && i >= len(codes) {
			return nil, nil, false // handled normally; the control is dropped
		}
		c.KeepControl()
		r.n.Add(1)
		once.Do(func() { close(r.first) })
		return produceErrorResponse(kreq.(*kmsg.ProduceRequest), codes[i%len(codes)]), nil, true
	})
	return r
}

// recordedLogs is a slog.Handler keeping what was logged at info and above.
type recordedLogs struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *recordedLogs) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelInfo }
func (l *recordedLogs) WithAttrs([]slog.Attr) slog.Handler             { return l }
func (l *recordedLogs) WithGroup(string) slog.Handler                  { return l }
func (l *recordedLogs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// warnings returns the attributes of each warning with message msg.
func (l *recordedLogs) warnings(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.records {
		if r.Level != slog.LevelWarn || r.Message != msg {
			continue
		}
		attrs := make(map[string]string)
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		out = append(out, attrs)
	}
	return out
}

// TestDeadLetterWriteRetriesUntilAcked: the broker refuses the DLQ record
// three times; Write keeps trying, returns only after Kafka took it, and it
// is in the topic once.
func TestDeadLetterWriteRetriesUntilAcked(t *testing.T) {
	c := bridgetest.NewCluster(t)
	fake := c.RequireFake(t, "refuses produce requests")
	dlq := c.Topic(t, 1)
	logs := &recordedLogs{}
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}}, slog.New(logs))
	refused := refuseProduces(fake, false, kerr.PolicyViolation.Code, kerr.InvalidRecord.Code, kerr.PolicyViolation.Code)
	src := deadLetterSource()
	writeDeadLetter(t, w, dlq, src, deadLetterTestInfo())

	if n := refused.n.Load(); n != 3 {
		t.Fatalf("Write returned after %d refusals, want 3", n)
	}
	if ok, failed := counterValue(t, w.writesOK), counterValue(t, w.writesErr); ok != 1 || failed != 3 {
		t.Errorf("writes ok=%v error=%v, want 1 and 3", ok, failed)
	}
	if n := c.EndOffsets(t, dlq); n != 1 {
		t.Fatalf("DLQ holds %d records, want exactly 1", n)
	}
	got := c.ReadAll(t, dlq, 1)[0]
	sameBytes(t, "value", got.Value, src.Value)
	checkHeaders(t, got.Headers, append(src.Headers, wantDeadLetterHeaders()...))

	warns := logs.warnings("dead-letter write failed; retrying")
	if len(warns) != 3 {
		t.Fatalf("%d retry warnings, want 3: %v", len(warns), warns)
	}
	for i, a := range warns {
		if a["topic"] != "orders" || a["partition"] != "3" || a["offset"] != "42" || a["attempt"] != fmt.Sprint(i+1) || a["dead_letter_topic"] != dlq {
			t.Errorf("warning %d: %v", i, a)
		}
	}
}

// TestDeadLetterWriteBrokerTooLarge: a broker whose limit for the DLQ topic
// is below ours refuses the record as too large; the next attempt leaves
// the value out.
func TestDeadLetterWriteBrokerTooLarge(t *testing.T) {
	c := bridgetest.NewCluster(t)
	fake := c.RequireFake(t, "refuses a produce as too large")
	dlq := c.Topic(t, 1)
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}}, nil)
	refuseProduces(fake, false, kerr.MessageTooLarge.Code)
	src := deadLetterSource()
	writeDeadLetter(t, w, dlq, src, deadLetterTestInfo())

	got := c.ReadAll(t, dlq, 1)[0]
	sameBytes(t, "key", got.Key, src.Key)
	sameBytes(t, "value", got.Value, nil)
	want := append(append(src.Headers, wantDeadLetterHeaders()...), headers(DeadLetterHeaderValueOmitted, "size")...)
	checkHeaders(t, got.Headers, want)
	if failed, omitted := counterValue(t, w.writesErr), counterValue(t, w.omitted); failed != 1 || omitted != 1 {
		t.Errorf("writes error=%v omitted=%v, want 1 and 1", failed, omitted)
	}
}

// TestDeadLetterWriteContextEnds: Write never gives up by itself, but
// returns ctx's error once ctx ends, also while Kafka holds the attempt.
func TestDeadLetterWriteContextEnds(t *testing.T) {
	// Each setup returns a channel closed once an attempt is under way.
	refusing := func(code int16) func(*testing.T, *kfake.Cluster) <-chan struct{} {
		return func(_ *testing.T, fake *kfake.Cluster) <-chan struct{} { return refuseProduces(fake, true, code).first }
	}
	holding := func(t *testing.T, fake *kfake.Cluster) <-chan struct{} {
		held, _ := holdProduce(t, fake) // released at the end of the test
		return held
	}
	tests := []struct {
		name     string
		setup    func(*testing.T, *kfake.Cluster) <-chan struct{}
		deadline time.Duration // zero: cancelled once an attempt is under way
		want     error
	}{
		{"cancelled while refused", refusing(kerr.PolicyViolation.Code), 0, context.Canceled},
		{"deadline while refused", refusing(kerr.InvalidRecord.Code), 300 * time.Millisecond, context.DeadlineExceeded},
		{"cancelled while Kafka holds the produce", holding, 0, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bridgetest.NewCluster(t)
			fake := c.RequireFake(t, "refuses or holds produce requests")
			dlq := c.Topic(t, 1)
			w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}}, nil)
			underway := tt.setup(t, fake)
			ctx, cancel := context.WithCancel(context.Background())
			if tt.deadline > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tt.deadline)
			}
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Write(ctx, dlq, deadLetterSource(), deadLetterTestInfo()) }()
			select { // a short deadline may pass before any attempt got under way
			case <-underway:
			case <-ctx.Done():
			}
			if tt.deadline == 0 {
				cancel()
			}
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "dead-letter orders/3/42") {
					t.Fatalf("Write: %v, want %v with the source's coordinates", err, tt.want)
				}
			case <-time.After(20 * time.Second): // a hang guard, not a timing check
				t.Fatal("Write did not return after its context ended")
			}
			if ok, failed := counterValue(t, w.writesOK), counterValue(t, w.writesErr); ok != 0 || failed < 1 {
				t.Errorf("writes ok=%v error=%v, want 0 and at least 1", ok, failed)
			}
		})
	}
}

func TestDeadLetterWriteAfterClose(t *testing.T) {
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: []string{bridgetest.ClosedAddr(t)}}}, nil)
	w.Close()
	w.Close() // idempotent
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := w.Write(ctx, "dlq", deadLetterSource(), deadLetterTestInfo())
	if !errors.Is(err, ErrClosed) || ctx.Err() != nil {
		t.Fatalf("Write after Close: %v, want ErrClosed before the deadline", err)
	}
}

func TestDeadLetterCheckTopic(t *testing.T) {
	c := bridgetest.NewCluster(t)
	tests := []struct {
		name       string
		existing   bool
		autoCreate bool
		want       error // nil: the topic exists afterwards
	}{
		{"existing", true, false, nil},
		{"missing", false, false, ErrTopicNotFound},
		{"missing, auto-create", false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := bridgetest.TopicName(t)
			if tt.existing {
				topic = c.Topic(t, 2)
			}
			w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}, AutoCreateTopics: tt.autoCreate}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := w.CheckTopic(ctx, topic)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckTopic: %v, want %v", err, tt.want)
			}
			if exists := c.Exists(t, topic); exists != (tt.want == nil) {
				t.Errorf("topic exists = %v after CheckTopic, want %v", exists, tt.want == nil)
			}
		})
	}
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: c.Brokers}}, nil)
	if err := w.CheckTopic(context.Background(), "bad topic"); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckTopic(bad name): %v, want ErrInvalid", err)
	}
}

// TestDeadLetterCheckTopicUnreachable: Kafka not answering is ErrUnavailable
// (which the caller retries), reported by the check's own bound, not by the
// caller's deadline.
func TestDeadLetterCheckTopicUnreachable(t *testing.T) {
	w := newTestDeadLetterWriter(t, DeadLetterConfig{Client: ClientConfig{Brokers: []string{bridgetest.ClosedAddr(t)}}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := w.CheckTopic(ctx, "dlq")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("CheckTopic with Kafka unreachable: %v, want ErrUnavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("CheckTopic ran until the caller's deadline instead of its own bound")
	}
}

func TestNewDeadLetterWriterRejectsBadConfig(t *testing.T) {
	brokers := []string{bridgetest.ClosedAddr(t)}
	if _, err := NewDeadLetterWriter(DeadLetterConfig{Client: ClientConfig{Brokers: brokers}}, nil, nil); err == nil {
		t.Error("NewDeadLetterWriter accepted MaxRecordBytes 0")
	}
	reg := prometheus.NewRegistry()
	cfg := DeadLetterConfig{Client: ClientConfig{Brokers: brokers}, MaxRecordBytes: 1 << 20}
	w, err := NewDeadLetterWriter(cfg, nil, reg)
	if err != nil {
		t.Fatalf("NewDeadLetterWriter: %v", err)
	}
	defer w.Close()
	if w2, err := NewDeadLetterWriter(cfg, nil, reg); err == nil {
		w2.Close()
		t.Error("a second writer on the same registry registered its metrics twice")
	}
}
