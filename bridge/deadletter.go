package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The headers a dead-lettered record carries after its own headers, in this
// order. They are the DLQ contract of DESIGN.md; keep them stable. A source
// record that carries kbridge-dlq-* headers itself (one replayed from a DLQ)
// keeps them in place; the writer's come after them, so a reader takes the
// last of each name.
const (
	// DeadLetterHeaderTopic, DeadLetterHeaderPartition and
	// DeadLetterHeaderOffset locate the source record (decimal numbers).
	DeadLetterHeaderTopic     = "kbridge-dlq-topic"
	DeadLetterHeaderPartition = "kbridge-dlq-partition"
	DeadLetterHeaderOffset    = "kbridge-dlq-offset"
	// DeadLetterHeaderGroup is the consumer group of the subscription that
	// gave the record up.
	DeadLetterHeaderGroup = "kbridge-dlq-group"
	// DeadLetterHeaderAttempts is the number of counted webhook attempts
	// (decimal).
	DeadLetterHeaderAttempts = "kbridge-dlq-attempts"
	// DeadLetterHeaderLastStatus is the HTTP status of the last attempt
	// (decimal). It is absent when the last attempt got no HTTP reply
	// (timeout, reset): 0 is no status, and a reader should not have to know
	// that it means "none".
	DeadLetterHeaderLastStatus = "kbridge-dlq-last-status"
	// DeadLetterHeaderError says what went wrong last, in at most 200
	// printable ASCII bytes. Always present, possibly empty.
	DeadLetterHeaderError = "kbridge-dlq-error"
	// DeadLetterHeaderFirstAttempt and DeadLetterHeaderLastAttempt are the
	// start times of the first and last counted attempts, RFC 3339 in UTC
	// with milliseconds ("2006-01-02T15:04:05.000Z").
	DeadLetterHeaderFirstAttempt = "kbridge-dlq-first-attempt"
	DeadLetterHeaderLastAttempt  = "kbridge-dlq-last-attempt"
	// DeadLetterHeaderTimestamp is the source record's own timestamp, in the
	// same format. The DLQ record's Kafka timestamp is the time it was
	// written (see Write), so the original is kept here.
	DeadLetterHeaderTimestamp = "kbridge-dlq-timestamp"

	// DeadLetterHeaderValueOmitted, DeadLetterHeaderHeadersOmitted and
	// DeadLetterHeaderKeyOmitted, each with the value "size", mark a DLQ
	// record that had to leave out the source's value, its headers or its
	// key to fit the size limit. They come last.
	DeadLetterHeaderValueOmitted   = "kbridge-dlq-value-omitted"
	DeadLetterHeaderHeadersOmitted = "kbridge-dlq-headers-omitted"
	DeadLetterHeaderKeyOmitted     = "kbridge-dlq-key-omitted"
)

const (
	// deadLetterTimeFormat is RFC 3339 with exactly three fractional digits;
	// times are converted to UTC first, so the zone is always "Z".
	deadLetterTimeFormat = "2006-01-02T15:04:05.000Z07:00"

	// deadLetterAttemptTimeout bounds one produce attempt of Write: franz-go
	// fails the record when it passes (if that is safe, see produce).
	deadLetterAttemptTimeout = 30 * time.Second
	// deadLetterRecordRetries lets franz-go retry a retriable produce error
	// (NOT_ENOUGH_REPLICAS, a leader moving) a few times itself before it
	// fails the attempt, so that Write logs Kafka's own error every few
	// seconds during an outage rather than a bare timeout every 30 s.
	deadLetterRecordRetries = 8

	// wireOverhead bounds what Kafka's record batch format adds to a record
	// written alone: the batch header (61 bytes) and the record's varints
	// (length, attributes, timestamp and offset deltas, key and value
	// lengths, header count: 36 bytes at most). headerWireOverhead bounds the
	// varints of one header.
	wireOverhead       = 61 + 36
	headerWireOverhead = 10
)

// DeadLetterConfig shapes a DeadLetterWriter.
type DeadLetterConfig struct {
	Client ClientConfig
	// MaxRecordBytes is the largest record the DLQ write may produce
	// (key+value+headers, provenance included). A larger one leaves out the
	// value, then the source's headers, then the key (see Write).
	MaxRecordBytes int
	// AutoCreateTopics lets CheckTopic create a missing DLQ topic (dev mode).
	AutoCreateTopics bool
}

// DeadLetterInfo is the provenance written with a dead-lettered record.
type DeadLetterInfo struct {
	Group        string
	Attempts     int       // counted attempts
	LastStatus   int       // 0 when the last attempt got no HTTP reply
	ErrorText    string    // bounded already by the webhook client
	FirstAttempt time.Time // start of the first counted attempt
	LastAttempt  time.Time // start of the last attempt
}

// DeadLetterWriter produces records that ran out of webhook attempts to
// their subscription's dead-letter topic. One writer, with its own Kafka
// client, serves every subscription of a kbridge. It is safe for concurrent
// use.
//
// Its client is idempotent and always writes with acks=all, whatever the
// publish API's acks setting: a dead-lettered record counts as done and its
// offset gets committed, so the DLQ write must be as durable as Kafka can
// make it.
type DeadLetterWriter struct {
	client         *kgo.Client
	topics         *topics
	log            *slog.Logger
	maxRecordBytes int
	backoff        RetryPolicy
	attemptTimeout time.Duration

	writesOK  prometheus.Counter
	writesErr prometheus.Counter
	duration  prometheus.Histogram
	omitted   prometheus.Counter

	closeOnce sync.Once
}

// NewDeadLetterWriter builds the writer and its client. Like NewProducer it
// does not contact Kafka; CheckTopic does.
func NewDeadLetterWriter(cfg DeadLetterConfig, log *slog.Logger, reg prometheus.Registerer) (*DeadLetterWriter, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRecordBytes <= 0 {
		return nil, fmt.Errorf("dead-letter max record bytes %d: must be positive", cfg.MaxRecordBytes)
	}
	opts, err := cfg.Client.Options(log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()), // and idempotent: franz-go's default
		kgo.ProducerBatchMaxBytes(batchMaxBytes(cfg.MaxRecordBytes)),
		kgo.RecordRetries(deadLetterRecordRetries),
		// As for the producer: retry soon after a leader moved, not after
		// franz-go's default 5 s.
		kgo.MetadataMinAge(time.Second),
	)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new kafka dead-letter producer: %w", err)
	}
	backoff := DefaultRetryPolicy()
	backoff.InitialBackoff, backoff.MaxBackoff = 100*time.Millisecond, 5*time.Second
	w := &DeadLetterWriter{
		client:         client,
		topics:         newTopics(kadm.NewClient(client), cfg.AutoCreateTopics, log, nil),
		log:            log,
		maxRecordBytes: cfg.MaxRecordBytes,
		backoff:        backoff,
		attemptTimeout: deadLetterAttemptTimeout,
	}
	if err := w.initMetrics(reg); err != nil {
		client.Close()
		return nil, err
	}
	return w, nil
}

func (w *DeadLetterWriter) initMetrics(reg prometheus.Registerer) error {
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kbridge_dead_letter_writes_total",
		Help: "Dead-letter produce attempts, by result (ok, error); a failed attempt is retried while its caller waits.",
	}, []string{"result"})
	w.writesOK, w.writesErr = writes.WithLabelValues("ok"), writes.WithLabelValues("error")
	w.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kbridge_dead_letter_write_duration_seconds",
		Help:    "Time from the start of a dead-letter write to Kafka's acknowledgement, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 4, 8), // 5 ms to 82 s
	})
	w.omitted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kbridge_dead_letter_values_omitted_total",
		Help: "Dead-letter records written without the source's value (and maybe headers or key) because they were too large.",
	})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{writes, w.duration, w.omitted} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register dead-letter metrics: %w", err)
		}
	}
	return nil
}

// CheckTopic reports whether topic exists, creating it when AutoCreateTopics
// is set. It returns an error wrapping ErrTopicNotFound when the topic does
// not exist (and may not be created), ErrUnavailable when Kafka could not be
// asked (the caller retries those), ErrPermission when Kafka denied access,
// and ErrInvalid for a name Kafka would refuse. One check takes at most a
// few seconds, whatever ctx's deadline.
func (w *DeadLetterWriter) CheckTopic(ctx context.Context, topic string) error {
	if err := ValidateTopic(topic); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	if _, err := w.topics.lookup(lctx, topic); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return nil
}

// Write produces rec's key, value and headers, followed by the kbridge-dlq-*
// headers, to topic with acks=all, and returns nil only once Kafka
// acknowledged the write. A failed attempt is logged and retried with capped
// exponential backoff and jitter (100 ms doubling to 5 s), each with a new
// record, for as long as ctx lives: Write gives up only when ctx ends
// (returning an error wrapping ctx's) or the writer was closed (ErrClosed).
// After ctx ended the outcome is unknown: an attempt in flight may still be
// written, so a record dead-lettered again later may appear twice in the DLQ.
//
// The DLQ record's timestamp is the time of the write, not the source's: a
// DLQ topic's time-based retention counts from record timestamps, and a
// record that was retried for days (or replayed from far back) must not be
// deleted the moment it is dead-lettered, nor be refused by a broker's
// timestamp bounds. The source's timestamp travels in
// DeadLetterHeaderTimestamp.
//
// Size: a record larger than MaxRecordBytes (key+value+headers, provenance
// included), or than what fits in one Kafka batch, is written without its
// value and with DeadLetterHeaderValueOmitted; if still too large, also
// without the source's headers (DeadLetterHeaderHeadersOmitted), then
// without its key (DeadLetterHeaderKeyOmitted). The provenance is always
// written, so a size never fails the write. A broker refusing the record as
// too large (its topic's limit may be lower) makes the next attempt leave
// out the next part.
func (w *DeadLetterWriter) Write(ctx context.Context, topic string, rec *kgo.Record, info DeadLetterInfo) error {
	start := time.Now()
	prov := provenanceHeaders(rec, info)
	var minShed shedLevel
	for attempt := 1; ; attempt++ {
		out, shed := deadLetterRecord(topic, rec, prov, w.maxRecordBytes, minShed)
		err := w.produce(ctx, out)
		if err == nil {
			w.writesOK.Inc()
			w.duration.Observe(time.Since(start).Seconds())
			if shed > shedNothing {
				w.omitted.Inc()
				w.log.Warn("dead-lettered record too large: written without "+shed.String(), "dead_letter_topic", topic,
					"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "max_record_bytes", w.maxRecordBytes)
			}
			return nil
		}
		w.writesErr.Inc()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("dead-letter %s/%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, ctx.Err())
		case errors.Is(err, kgo.ErrClientClosed):
			return fmt.Errorf("dead-letter %s/%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, ErrClosed)
		case isTooLarge(err) && shed < shedKey:
			minShed = shed + 1
		}
		wait := w.backoff.Backoff(attempt, 0, nil)
		w.log.Warn("dead-letter write failed; retrying", "dead_letter_topic", topic, "topic", rec.Topic,
			"partition", rec.Partition, "offset", rec.Offset, "attempt", attempt, "backoff", wait, "error", err)
		if err := sleepContext(ctx, wait); err != nil {
			return fmt.Errorf("dead-letter %s/%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
	}
}

// produce makes one attempt and waits for its outcome or for ctx to end.
// The attempt's own timeout makes franz-go fail the record, but only when
// that is safe for the idempotent producer (no request of it is in flight);
// otherwise the record's outcome comes with Kafka's answer. Write waits for
// that rather than producing a second copy meanwhile: the copy would queue
// behind the first anyway, and both might be written.
func (w *DeadLetterWriter) produce(ctx context.Context, r *kgo.Record) error {
	actx, cancel := context.WithTimeout(ctx, w.attemptTimeout)
	defer cancel()
	done := make(chan error, 1) // the promise must not block if Write is gone
	w.client.Produce(actx, r, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select { // an acknowledgement that raced ctx still counts
		case err := <-done:
			return err
		default:
			return ctx.Err()
		}
	}
}

func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the client. Call it after every Write returned; a Write
// still waiting then returns ErrClosed. Closing more than once is safe.
func (w *DeadLetterWriter) Close() { w.closeOnce.Do(w.client.Close) }

// provenanceHeaders are the kbridge-dlq-* headers describing rec and its
// delivery, in their documented order.
func provenanceHeaders(rec *kgo.Record, info DeadLetterInfo) []kgo.RecordHeader {
	h := make([]kgo.RecordHeader, 0, 10)
	add := func(key, value string) { h = append(h, kgo.RecordHeader{Key: key, Value: []byte(value)}) }
	add(DeadLetterHeaderTopic, rec.Topic)
	add(DeadLetterHeaderPartition, strconv.FormatInt(int64(rec.Partition), 10))
	add(DeadLetterHeaderOffset, strconv.FormatInt(rec.Offset, 10))
	add(DeadLetterHeaderGroup, info.Group)
	add(DeadLetterHeaderAttempts, strconv.Itoa(info.Attempts))
	if info.LastStatus != 0 {
		add(DeadLetterHeaderLastStatus, strconv.Itoa(info.LastStatus))
	}
	add(DeadLetterHeaderError, info.ErrorText)
	add(DeadLetterHeaderFirstAttempt, formatDeadLetterTime(info.FirstAttempt))
	add(DeadLetterHeaderLastAttempt, formatDeadLetterTime(info.LastAttempt))
	add(DeadLetterHeaderTimestamp, formatDeadLetterTime(rec.Timestamp))
	return h
}

func formatDeadLetterTime(t time.Time) string { return t.UTC().Format(deadLetterTimeFormat) }

// shedLevel is how much of the source record a DLQ record leaves out to fit;
// each level also leaves out what the levels below it do.
type shedLevel int

const (
	shedNothing shedLevel = iota
	shedValue
	shedHeaders
	shedKey
)

func (s shedLevel) String() string {
	switch s {
	case shedValue:
		return "its value"
	case shedHeaders:
		return "its value and headers"
	case shedKey:
		return "its value, headers and key"
	}
	return "nothing"
}

var omittedForSize = []byte("size")

// deadLetterRecord builds a new DLQ record for rec (never one given to the
// client before: franz-go owns a record until its promise ran), leaving out
// the least, but at least minShed, that makes it fit maxRecordBytes and one
// batch. Key, value and header values share rec's memory, which franz-go
// only reads.
func deadLetterRecord(topic string, rec *kgo.Record, prov []kgo.RecordHeader, maxRecordBytes int, minShed shedLevel) (*kgo.Record, shedLevel) {
	shed := minShed
	out := assembleDeadLetter(topic, rec, prov, shed)
	for shed < shedKey && !fitsRecordLimit(out, maxRecordBytes) {
		shed++
		out = assembleDeadLetter(topic, rec, prov, shed)
	}
	return out, shed
}

func assembleDeadLetter(topic string, rec *kgo.Record, prov []kgo.RecordHeader, shed shedLevel) *kgo.Record {
	out := &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value} // zero Timestamp: franz-go stamps now
	headers := make([]kgo.RecordHeader, 0, len(rec.Headers)+len(prov)+3)
	if shed < shedHeaders {
		headers = append(headers, rec.Headers...)
	}
	headers = append(headers, prov...)
	// A marker only for a part that was there to leave out.
	if shed >= shedValue && len(rec.Value) > 0 {
		out.Value = nil
		headers = append(headers, kgo.RecordHeader{Key: DeadLetterHeaderValueOmitted, Value: omittedForSize})
	}
	if shed >= shedHeaders && len(rec.Headers) > 0 {
		headers = append(headers, kgo.RecordHeader{Key: DeadLetterHeaderHeadersOmitted, Value: omittedForSize})
	}
	if shed >= shedKey && len(rec.Key) > 0 {
		out.Key = nil
		headers = append(headers, kgo.RecordHeader{Key: DeadLetterHeaderKeyOmitted, Value: omittedForSize})
	}
	out.Headers = headers
	return out
}

// fitsRecordLimit reports whether r is within the record limit (counted as
// the publish path counts it) and, with its wire overhead, within one batch
// of the client: franz-go fails a record that does not fit one batch
// outright, and the publish path's limit leaves no room for provenance.
func fitsRecordLimit(r *kgo.Record, maxRecordBytes int) bool {
	size := len(r.Key) + len(r.Value)
	wire := wireOverhead + size
	for _, h := range r.Headers {
		size += len(h.Key) + len(h.Value)
		wire += headerWireOverhead + len(h.Key) + len(h.Value)
	}
	return size <= maxRecordBytes && wire <= int(batchMaxBytes(maxRecordBytes))
}
