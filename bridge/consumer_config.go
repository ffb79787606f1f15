package bridge

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ConsumerConfig is one subscription: the topics it consumes in its own
// consumer group and the webhook it delivers them to.
type ConsumerConfig struct {
	// Name identifies the subscription in logs, metrics and health.
	Name   string
	Client ClientConfig

	// Topics and TopicRegex (RE2, matched against the whole topic name)
	// say what is consumed; at least one is set.
	Topics     []string
	TopicRegex string

	Group string
	// InstanceID, if set, makes the member static (KIP-345): it sends no
	// LeaveGroup on close, so its partitions wait for SessionTimeout
	// rather than moving at once, and a restart with the same ID gets them
	// back without a rebalance.
	InstanceID       string
	StartAtLatest    bool // where a new group starts: the log end instead of the start
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	CommitInterval   time.Duration
	// MetadataMaxAge bounds how long a regex subscription takes to see a
	// new topic; zero means regexMetadataMaxAge.
	MetadataMaxAge time.Duration

	URL     string
	Request WebhookRequestSettings
	Webhook WebhookClientConfig
	Retry   RetryPolicy

	// Ordering is OrderingPartition (the zero value means it), OrderingKey
	// or OrderingNone; MaxInFlight bounds a partition's records in flight
	// with key and none (partition has one).
	Ordering    string
	MaxInFlight int

	// DeadLetterTopic, if set, is where exhausted and permanently refused
	// records go (the dead-letter policy); empty means the block policy:
	// retry forever.
	DeadLetterTopic string

	// Batch, when its MaxRecords is positive, delivers records as
	// CloudEvents batches (batch.go) instead of one request per record.
	Batch BatchConfig
}

// Limits of BatchConfig.
const (
	MaxBatchRecords = 10000
	MaxBatchBytes   = 64 << 20
)

// BatchConfig shapes batch delivery. The zero value turns it off.
type BatchConfig struct {
	// MaxRecords is the most events in one request; zero turns batching
	// off.
	MaxRecords int
	// MaxBytes bounds a request's body; an event larger than it on its own
	// goes in a batch of one.
	MaxBytes int
	// MaxWait is the longest a batch that is not full waits for more
	// records; zero sends at once what is there.
	MaxWait time.Duration
}

// Enabled reports whether records are delivered in batches.
func (b BatchConfig) Enabled() bool { return b.MaxRecords > 0 }

// Validate reports every problem of b at once.
func (b BatchConfig) Validate() error {
	if b == (BatchConfig{}) {
		return nil
	}
	var errs []error
	if b.MaxRecords < 1 || b.MaxRecords > MaxBatchRecords {
		errs = append(errs, fmt.Errorf("batch max records %d: must be within 1-%d", b.MaxRecords, MaxBatchRecords))
	}
	if b.MaxBytes < 1 || b.MaxBytes > MaxBatchBytes {
		errs = append(errs, fmt.Errorf("batch max bytes %d: must be within 1-%d", b.MaxBytes, MaxBatchBytes))
	}
	if b.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("batch max wait %v: must not be negative", b.MaxWait))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of cfg at once.
func (cfg ConsumerConfig) Validate() error {
	var errs []error
	if len(cfg.Topics) == 0 && cfg.TopicRegex == "" {
		errs = append(errs, errors.New("no topics and no topic regex"))
	}
	if cfg.TopicRegex != "" {
		if _, err := regexp.Compile(cfg.TopicRegex); err != nil {
			errs = append(errs, fmt.Errorf("topic regex: %w", err))
		}
	}
	if cfg.Group == "" {
		errs = append(errs, errors.New("group: required"))
	}
	if cfg.URL == "" {
		errs = append(errs, errors.New("webhook url: required"))
	}
	switch cfg.Ordering {
	case "", OrderingPartition, OrderingKey, OrderingNone:
	default:
		errs = append(errs, fmt.Errorf("ordering %q: must be partition, key or none", cfg.Ordering))
	}
	if cfg.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in flight %d: must not be negative", cfg.MaxInFlight))
	}
	if cfg.SessionTimeout <= 0 || cfg.RebalanceTimeout <= 0 || cfg.CommitInterval <= 0 {
		errs = append(errs, errors.New("session timeout, rebalance timeout and commit interval must be positive"))
	}
	if err := cfg.Request.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Webhook.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Batch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("subscription %s: %w", cfg.Name, err)
	}
	return nil
}

// kgoOptions are the group member's settings; the comments say which trap
// of DESIGN.md each one avoids.
func (c *Consumer) kgoOptions() ([]kgo.Opt, error) {
	cfg := c.cfg
	opts, err := cfg.Client.Options(c.log)
	if err != nil {
		return nil, err
	}
	start := kgo.NewOffset().AtStart()
	if cfg.StartAtLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		// Only the tracker's point is ever committed; franz-go's marks
		// never rewind and would commit past a failed record.
		kgo.DisableAutoCommit(),
		// Callbacks never run between a poll and AllowRebalance, so the
		// poll loop never routes records of a partition that was revoked.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		// Set explicitly: without it franz-go calls the revoke callback,
		// which commits, for partitions another member may already own.
		kgo.OnPartitionsLost(c.lost),
		// Aborted transactions are never delivered.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeStartOffset(start),
		// A committed offset that fell out of the log (retention) resumes
		// at the log start: every record still there is delivered.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
		kgo.FetchMaxWait(fetchMaxWait),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	var topics []string
	topics = append(topics, cfg.Topics...)
	if cfg.TopicRegex != "" {
		// ConsumeRegex treats every topic entry as a pattern: quote the
		// literal names, anchor the pattern, and never match Kafka's
		// internal topics or this subscription's own DLQ.
		for i, t := range topics {
			topics[i] = "^" + regexp.QuoteMeta(t) + "$"
		}
		topics = append(topics, "^(?:"+cfg.TopicRegex+")$")
		exclude := []string{`^__.*`}
		if cfg.DeadLetterTopic != "" {
			exclude = append(exclude, "^"+regexp.QuoteMeta(cfg.DeadLetterTopic)+"$")
		}
		maxAge := cfg.MetadataMaxAge
		if maxAge <= 0 {
			maxAge = regexMetadataMaxAge
		}
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeExcludeTopics(exclude...), kgo.MetadataMaxAge(maxAge), kgo.MetadataMinAge(min(maxAge, 5*time.Second)))
	}
	return append(opts, kgo.ConsumeTopics(topics...)), nil
}
