package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// ProducerConfig configures the shared producer.
type ProducerConfig struct {
	Client ClientConfig
	// PublishTimeout bounds a publish without a caller deadline, and how long
	// any record may wait for Kafka before the client fails it.
	PublishTimeout     time.Duration
	MaxRecordBytes     int
	AutoCreateTopics   bool
	Partitioner        string // "murmur2" or "crc32"
	Acks               string // "all" or "leader"
	Compression        string // "none", "gzip", "snappy", "lz4", "zstd"
	Linger             time.Duration
	MaxBufferedRecords int
	MaxBufferedBytes   int
}

// Producer is the one long-lived Kafka producer shared by every publish call.
// It is safe for concurrent use.
type Producer struct {
	cfg    ProducerConfig
	client *kgo.Client
	adm    *kadm.Client
	topics *topics
	log    *slog.Logger
	// iso sends the records of a batch Kafka refused again, so that only a
	// record at fault fails (isolate.go); limits refuses timestamps Kafka
	// was seen to refuse before they can fail a shared batch.
	iso    *isolator
	limits timestampLimits

	records   *prometheus.CounterVec
	recordsOK prometheus.Counter // records.WithLabelValues("ok"), resolved once: it counts every record

	// rctx bounds the life of records sent until rctxUntil (recordContext).
	rctxMu     sync.Mutex
	rctx       context.Context
	rctxCancel context.CancelFunc // the latest one's, for Close
	rctxUntil  time.Time

	closeOnce sync.Once
}

// recordContextShare is how long Sends share one record context.
const recordContextShare = 10 * time.Millisecond

// recordContext returns the context that bounds the life of records sent
// now (and a wait for buffer room) to the publish timeout. Sends within
// recordContextShare of each other share one, so a record lives at least
// the publish timeout and at most that much longer: a timer per Send was
// 5% of kbridge's CPU while streaming one record per request. It is not
// the caller's context: a caller that gives up must not cancel records
// batched with other callers' records. Each one ends at its deadline,
// which releases its timer; franz-go fails a batch when its first record's
// context ends, and only when that is safe for the idempotent producer.
func (p *Producer) recordContext(now time.Time) context.Context {
	p.rctxMu.Lock()
	defer p.rctxMu.Unlock()
	if p.rctx == nil || now.After(p.rctxUntil) {
		p.rctx, p.rctxCancel = context.WithDeadline(context.Background(), now.Add(p.cfg.PublishTimeout+recordContextShare))
		p.rctxUntil = now.Add(recordContextShare)
	}
	return p.rctx
}

// NewProducer builds the producer client. It does not contact Kafka: the
// client connects lazily, so kbridge starts even while Kafka is down.
func NewProducer(cfg ProducerConfig, log *slog.Logger, reg prometheus.Registerer) (*Producer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := cfg.Client.Options(log)
	if err != nil {
		return nil, err
	}
	popts, err := cfg.kgoOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, popts...)
	// The isolator's client: the producer's settings, without its metrics
	// (registered once) and without linger, so that what it is handed
	// leaves at once, as one batch.
	isoOpts := append(slices.Clone(opts), kgo.ProducerLinger(0))
	if reg != nil {
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("kbridge", kprom.Subsystem("producer"), kprom.Registerer(reg),
			kprom.FetchAndProduceDetail(kprom.ByTopic, kprom.Batches, kprom.Records, kprom.UncompressedBytes, kprom.CompressedBytes, kprom.ConsistentNaming))))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new kafka producer: %w", err)
	}
	adm := kadm.NewClient(client)
	p := &Producer{
		cfg:    cfg,
		client: client,
		adm:    adm,
		topics: newTopics(adm, cfg.AutoCreateTopics, log, client.ForceMetadataRefresh),
		log:    log,
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbridge_publish_records_total",
			Help: "Records handed to the producer, by outcome (ok, or the error kind).",
		}, []string{"result"}),
	}
	p.recordsOK = p.records.WithLabelValues("ok")
	resent := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kbridge_publish_isolated_records_total",
		Help: "Records sent again in smaller batches because Kafka refused their batch (INVALID_RECORD, INVALID_TIMESTAMP, ...), possibly for another record's sake.",
	})
	p.iso = newIsolator(func() (*kgo.Client, error) { return kgo.NewClient(isoOpts...) }, log, resent)
	if reg != nil {
		for _, c := range []prometheus.Collector{p.records, resent} {
			if err := reg.Register(c); err != nil {
				client.Close()
				return nil, fmt.Errorf("register producer metrics: %w", err)
			}
		}
	}
	return p, nil
}

func (cfg ProducerConfig) kgoOptions() ([]kgo.Opt, error) {
	partitioner, err := newPartitioner(cfg.Partitioner)
	if err != nil {
		return nil, err
	}
	codec, err := compressionCodec(cfg.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.RecordPartitioner(partitioner),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(cfg.Linger),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		// A record must never wait forever while Kafka is unreachable; Send
		// bounds each record with a context of PublishTimeout. Not
		// kgo.RecordDeliveryTimeout: it counts from the record's Timestamp,
		// which a caller may set in the past, and would fail that record
		// (and the rest of its batch) at once.
		// Topic existence is checked before producing (topics.go); a topic
		// deleted meanwhile should fail fast, not be retried for long.
		kgo.UnknownTopicRetries(2),
		// After a leader moves, franz-go retries once metadata is refreshed,
		// at most every MetadataMinAge (5 s by default): too slow for callers
		// with second-scale deadlines.
		kgo.MetadataMinAge(time.Second),
		kgo.ProducerBatchMaxBytes(batchMaxBytes(cfg.MaxRecordBytes)),
	}
	if cfg.MaxBufferedBytes > 0 {
		opts = append(opts, kgo.MaxBufferedBytes(cfg.MaxBufferedBytes))
	}
	switch cfg.Acks {
	case "all", "":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks())) // idempotent by default
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("unknown acks %q", cfg.Acks)
	}
	return opts, nil
}

// batchMaxBytes is the largest record batch the producer builds. Kafka
// refuses a batch over its message.max.bytes (1 MiB + 12 by default) as a
// whole, whatever the size of its records, so batches stay at 1 MiB; only a
// record limit raised above 1 MiB (which needs the broker's or topic's limit
// raised too) raises it. At the default limit, a record within ~100 bytes
// of 1 MiB does not fit with its overhead and fails as MESSAGE_TOO_LARGE.
func batchMaxBytes(maxRecordBytes int) int32 {
	const kafkaDefault = 1 << 20
	if maxRecordBytes <= kafkaDefault {
		return kafkaDefault
	}
	return int32(maxRecordBytes + 1024) // room for record and batch overhead
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy", "":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q", name)
}

// Client is the underlying franz-go client, for the health monitor.
func (p *Producer) Client() *kgo.Client { return p.client }

// Publish validates the records, then produces them to topic and waits for
// Kafka's acknowledgements or the caller's deadline, whichever comes first.
// It is Send followed by Wait.
//
// Each record succeeds or fails on its own. A record Kafka refuses fails
// alone, never the other records of its batch, whoever sent them (see
// isolate.go); a refusal the record can be blamed for names the field
// (a ValidationError with a Cause): a timestamp too far from the broker's
// clock, a missing key on a compacted topic.
func (p *Producer) Publish(ctx context.Context, topic string, records []Record) ([]Result, error) {
	_, callerDeadline := ctx.Deadline()
	if !callerDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.PublishTimeout)
		defer cancel()
	}
	// The publish timeout the producer set itself passing means Kafka did
	// not answer in time (ErrUnavailable); ErrDeadline is kept for the
	// caller's own deadline.
	ownTimeout := func(err error) bool {
		return !callerDeadline && errors.Is(err, ErrDeadline) && errors.Is(ctx.Err(), context.DeadlineExceeded)
	}
	pending, err := p.send(ctx, topic, records, false)
	if err != nil {
		if ownTimeout(err) {
			return nil, p.lookupTimeoutError(topic)
		}
		return nil, err
	}
	results, err := pending.Wait(ctx)
	if ownTimeout(err) {
		return nil, fmt.Errorf("publish to %s: %w: not acknowledged within %s (records may have been written)", topic, ErrUnavailable, p.cfg.PublishTimeout)
	}
	return results, err
}

// lookup asks Kafka about a topic not in the cache, bounded by the caller's
// deadline or, without one, the publish timeout.
func (p *Producer) lookup(ctx context.Context, topic string) (int32, error) {
	_, callerDeadline := ctx.Deadline()
	if !callerDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.PublishTimeout)
		defer cancel()
	}
	partitions, err := p.topics.partitions(ctx, topic)
	if err != nil && !callerDeadline && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return 0, p.lookupTimeoutError(topic)
	}
	return partitions, err
}

// lookupTimeoutError reports the topic lookup outlasting the publish timeout
// of a caller without a deadline; nothing was produced.
func (p *Producer) lookupTimeoutError(topic string) error {
	return fmt.Errorf("look up topic %s: %w: no answer within %s", topic, ErrUnavailable, p.cfg.PublishTimeout)
}

// Send validates the records and hands them to the client, in order,
// without waiting for Kafka's acknowledgements. Records of successive Send
// calls reach each partition in call order, which is what lets one
// PublishStream keep its order while many requests are in flight — except
// after Kafka refused a batch: its valid records are sent again, after
// records produced meanwhile (isolate.go says why that is the lesser harm).
//
// Unlike Publish, which fails fast with ErrBufferFull, Send waits for room
// in the producer's buffer (at most the publish timeout): a stream applies
// back-pressure by reading no further, never by failing records, and a
// failed record in the middle of a stream would break its order.
//
// A validation failure returns an ErrInvalid error and nothing is produced;
// so do ErrTopicNotFound, ErrUnavailable and ErrDeadline from the topic
// lookup. ctx bounds only that lookup (the publish timeout applies when it
// has no deadline); the records themselves never see it.
func (p *Producer) Send(ctx context.Context, topic string, records []Record) (*Pending, error) {
	return p.send(ctx, topic, records, true)
}

func (p *Producer) send(ctx context.Context, topic string, records []Record, waitForRoom bool) (*Pending, error) {
	pending, err := p.prepare(ctx, topic, records)
	if err != nil {
		p.records.WithLabelValues(resultLabel(err)).Add(float64(len(records)))
		return nil, err
	}
	produce := p.client.TryProduce
	if waitForRoom {
		produce = p.client.Produce
	}
	rctx := p.recordContext(time.Now())
	for i := range records {
		callerTime := !records[i].Timestamp.IsZero()
		done := func(r *kgo.Record, err error) {
			if err != nil {
				err = p.recordError(topic, i, r, callerTime, err)
				p.records.WithLabelValues(resultLabel(err)).Inc()
				pending.complete(i, Result{Err: err})
				return
			}
			p.recordsOK.Inc()
			pending.complete(i, Result{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp})
		}
		produce(rctx, records[i].toKgo(topic), func(r *kgo.Record, err error) {
			if batchRefused(err) {
				p.iso.retry(r, err, done) // maybe for a batch-mate's sake
				return
			}
			done(r, err)
		})
	}
	return pending, nil
}

// recordError is the error of records[i], produced as r, failed with err.
// callerTime says whether the caller set the record's timestamp.
func (p *Producer) recordError(topic string, i int, r *kgo.Record, callerTime bool, err error) error {
	var alone *aloneError
	if !errors.As(err, &alone) {
		return p.produceError(topic, err)
	}
	cause := classifyKafka(alone.err)
	switch {
	case errors.Is(err, kerr.InvalidTimestamp):
		now := time.Now()
		if callerTime {
			p.limits.learn(topic, r.Timestamp, now)
		}
		return &ValidationError{Record: i, Field: "timestamp", Reason: timestampRefusal(r.Timestamp, now), Cause: cause}
	case errors.Is(err, kerr.InvalidRecord) && r.Key == nil:
		// franz-go builds well-formed batches: for a record without a key,
		// INVALID_RECORD alone means a compacted topic.
		return &ValidationError{Record: i, Field: "key", Cause: cause,
			Reason: "is required: Kafka refused a record without a key (INVALID_RECORD), as a compacted topic (cleanup.policy=compact) does; set key or key_bytes"}
	}
	return cause
}

// prepare runs every check that can be made before producing and returns
// the Pending the records will complete.
func (p *Producer) prepare(ctx context.Context, topic string, records []Record) (*Pending, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if err := validateRecords(records, p.cfg.MaxRecordBytes); err != nil {
		return nil, err
	}
	if err := p.limits.check(topic, records, time.Now()); err != nil {
		return nil, err
	}
	partitions, ok := p.topics.cached(topic) // the common case: no timer, no wait
	if !ok {
		var err error
		if partitions, err = p.lookup(ctx, topic); err != nil {
			return nil, err
		}
	}
	if err := validatePartitions(records, partitions); err != nil {
		return nil, err
	}
	return newPending(len(records)), nil
}

// Pending is a Send in flight: its records' results once Kafka answered all
// of them. Every record completes, at the latest after the publish timeout.
type Pending struct {
	results []Result
	left    atomic.Int64
	done    chan struct{}
}

// NewPending returns a Pending for n records whose results are all given.
// It lets fakes of the producer hand back finished sends.
func NewPending(results []Result) *Pending {
	p := newPending(len(results))
	for i, r := range results {
		p.complete(i, r)
	}
	return p
}

func newPending(n int) *Pending {
	p := &Pending{results: make([]Result, n), done: make(chan struct{})}
	p.left.Store(int64(n))
	if n == 0 {
		close(p.done)
	}
	return p
}

func (p *Pending) complete(i int, r Result) {
	p.results[i] = r
	if p.left.Add(-1) == 0 {
		close(p.done)
	}
}

// Done is closed when every record has its result.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait returns the results once every record has one, or ErrDeadline if ctx
// ends first; the records then go on, and their outcome is unknown.
func (p *Pending) Wait(ctx context.Context) ([]Result, error) {
	select {
	case <-p.done:
		return p.results, nil
	case <-ctx.Done():
		return nil, ErrDeadline
	}
}

// produceError classifies a record failure from the client.
func (p *Producer) produceError(topic string, err error) error {
	switch {
	case errors.Is(err, kgo.ErrMaxBuffered):
		return ErrBufferFull
	case errors.Is(err, kgo.ErrClientClosed):
		return ErrClosed
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: not acknowledged within %s (it may have been written)", ErrUnavailable, p.cfg.PublishTimeout)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		p.topics.forget(topic)
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return classifyKafka(err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// classifyKafka turns a Kafka protocol error into a KafkaError of the right
// kind.
func classifyKafka(err error) error {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	kind := ErrRejected
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		kind = ErrTopicNotFound
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		kind = ErrPermission
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.InvalidTimestamp):
		kind = ErrInvalid
	case ke.Retriable:
		kind = ErrUnavailable
	}
	return &KafkaError{Code: ke.Message, kind: kind, err: err}
}

func resultLabel(err error) string {
	for _, k := range []struct {
		err   error
		label string
	}{
		{ErrBufferFull, "buffer_full"}, {ErrTopicNotFound, "topic_not_found"}, {ErrInvalid, "invalid"},
		{ErrPermission, "permission"}, {ErrClosed, "closed"}, {ErrUnavailable, "unavailable"},
	} {
		if errors.Is(err, k.err) {
			return k.label
		}
	}
	return "rejected"
}

// Flush waits until every buffered record is acknowledged or failed, or ctx
// ends. The client comes first: a batch it has refused hands its records to
// the isolator before they count as done.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.client.Flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	if err := p.iso.flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return nil
}

// Close closes the clients; buffered records that were not flushed fail with
// ErrClosed. Closing more than once is safe.
func (p *Producer) Close() {
	p.closeOnce.Do(func() {
		p.client.Close()
		p.iso.close() // after the client, which may still hand it records
		p.rctxMu.Lock()
		if p.rctxCancel != nil {
			p.rctxCancel() // the older ones end at their deadlines
		}
		p.rctxMu.Unlock()
	})
}

// BufferedRecords is how many records wait for Kafka.
func (p *Producer) BufferedRecords() int64 {
	return p.client.BufferedProduceRecords() + p.iso.buffered()
}
