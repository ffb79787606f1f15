package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Values of Subscription.StartOffset, Subscription.OnExhausted and
// Subscription.Ordering.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"

	OnExhaustedDeadLetter = "dead-letter"
	OnExhaustedBlock      = "block"

	OrderingPartition = "partition"
	OrderingKey       = "key"
	OrderingNone      = "none"
)

// Consumer holds the consumer-group settings shared by every subscription.
type Consumer struct {
	// InstanceID turns on static group membership (KIP-345): a stable id,
	// unique in the group, such as the pod name. A static member sends no
	// LeaveGroup when it stops, so its partitions wait for SessionTimeout
	// before they move; a restart within it keeps them without a rebalance.
	// Empty means dynamic membership.
	InstanceID string
	// SessionTimeout is how long the group waits for a silent member before
	// it reassigns the member's partitions.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for members to finish
	// their revoked work and rejoin. It must exceed every subscription's
	// AttemptTimeout (see Config.validateConsumer).
	RebalanceTimeout time.Duration
	// CommitInterval is how often the finished prefix of each partition is
	// committed (it is also committed on revoke and at shutdown).
	CommitInterval time.Duration
}

// Subscription delivers the records of some topics to one webhook, in one
// consumer group. Start from DefaultSubscription: the zero value is not valid.
type Subscription struct {
	// Name identifies the subscription in logs and metrics; unique. A file
	// entry without one is named after its GroupID.
	Name string
	// Topics and TopicRegex say what to consume: the listed topics plus every
	// topic whose whole name TopicRegex (Go RE2 syntax) matches. At least one
	// of the two is set. Consume with AnchoredTopicRegex, not TopicRegex.
	Topics     []string
	TopicRegex string
	// WebhookURL is the absolute http or https URL each record is POSTed to.
	WebhookURL string
	// GroupID is the subscription's own consumer group. It is required: a
	// shared default would make two apps split each other's topics.
	GroupID string
	// StartOffset is where a group without committed offsets starts:
	// "earliest" (so records published before it joined are delivered) or
	// "latest".
	StartOffset string
	// AttemptTimeout bounds one webhook attempt, from dial to the reply's end.
	AttemptTimeout time.Duration
	Retry          Retry
	// PermanentStatuses are the replies that retrying will not fix: with
	// "dead-letter" the record goes to the DLQ at once, with "block" they are
	// retried like any failure. An empty, non-nil list means none.
	PermanentStatuses []int
	// OnExhausted is what happens to a record whose attempts are exhausted:
	// "dead-letter" writes it to DeadLetterTopic; "block" retries it forever.
	OnExhausted     string
	DeadLetterTopic string
	// CloudEventType is the ce-type of a record that is not a CloudEvent.
	CloudEventType string
	// ContentType is the Content-Type of a record without a content-type
	// header.
	ContentType string
	// Headers are extra static request headers, such as Authorization. Their
	// values may be credentials: they are never logged.
	Headers map[string]string
	// Ordering is "partition": one record in flight per partition, in order.
	// "key" and "none" are part of the design but refused until implemented.
	Ordering string
	// MaxInFlight is how many records of one partition may be in flight; 1
	// with Ordering "partition".
	MaxInFlight int
	// MaxConcurrency caps the requests in flight to the app across all the
	// subscription's partitions (12 partitions × 100 would swamp a
	// five-thread Puma).
	MaxConcurrency int
	// Batch, when its MaxRecords is set, delivers records as CloudEvents
	// batches instead of one request per record. The zero value is off.
	Batch Batch
}

// Batch shapes a subscription's batch delivery: a request carries up to
// MaxRecords records and about MaxBytes of body, and a batch that is not
// full waits at most MaxWait for more. A file or the one-subscription
// options turn it on only with MaxRecords; MaxBytes and MaxWait then take
// DefaultBatchMaxBytes and DefaultBatchMaxWait unless given.
type Batch struct {
	// MaxRecords is the most records in one request, 1 to 10000; zero
	// turns batching off.
	MaxRecords int
	// MaxBytes bounds a request's body, 1 to 64 MiB; a record larger on
	// its own goes in a batch of one.
	MaxBytes int
	// MaxWait is how long a batch that is not full waits for more records,
	// at most a minute; zero sends at once what is there.
	MaxWait time.Duration
}

// Defaults of a batch whose MaxRecords is given.
const (
	DefaultBatchMaxBytes = 1 << 20
	DefaultBatchMaxWait  = 10 * time.Millisecond
)

// Limits of Batch, the same as the bridge's (bridge.MaxBatchRecords and
// bridge.MaxBatchBytes), plus a bound on MaxWait: a longer wait is a typo
// (10m for 10ms), not a batching policy.
const (
	maxBatchRecords = 10000
	maxBatchBytes   = 64 << 20
	maxBatchWait    = time.Minute
)

// Enabled reports whether records are delivered in batches.
func (b Batch) Enabled() bool { return b.MaxRecords > 0 }

// Retry is a subscription's retry policy for failed webhook attempts.
type Retry struct {
	// InitialBackoff is the ceiling of the wait after the first attempt.
	InitialBackoff time.Duration
	// MaxBackoff caps the ceiling (and any Retry-After); at least
	// InitialBackoff.
	MaxBackoff time.Duration
	// Multiplier grows the ceiling after each attempt; finite, at least 1.
	Multiplier float64
	// Jitter is the share of the ceiling that is random: 1 draws the wait
	// from [0, ceiling] ("full jitter", so that retries of many records do
	// not arrive together); 0 waits the ceiling exactly.
	Jitter float64
	// MaxAttempts is how many counted attempts exhaust a record.
	MaxAttempts int
	// MaxElapsed, if positive, also exhausts a record once that long has
	// passed since its first attempt. Zero means no limit.
	MaxElapsed time.Duration
}

// DefaultRetry returns the webhook contract's retry defaults: 200 ms
// initial, ×2, 30 s max, full jitter, 10 attempts, no elapsed-time limit.
func DefaultRetry() Retry {
	return Retry{
		InitialBackoff: 200 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
		Multiplier:     2,
		Jitter:         1,
		MaxAttempts:    10,
	}
}

// DefaultSubscription returns a subscription with every default filled in
// and no topics, webhook or group. Its OnExhausted is "block" because it has
// no DeadLetterTopic; setting one is expected to set "dead-letter" too.
func DefaultSubscription() Subscription {
	return Subscription{
		StartOffset:       StartEarliest,
		AttemptTimeout:    30 * time.Second,
		Retry:             DefaultRetry(),
		PermanentStatuses: []int{400, 410, 413, 415, 422},
		OnExhausted:       OnExhaustedBlock,
		CloudEventType:    "kbridge.record",
		ContentType:       "application/octet-stream",
		Ordering:          OrderingPartition,
		MaxInFlight:       1,
		MaxConcurrency:    64,
	}
}

// defaultMaxInFlight is MaxInFlight where ordering allows more than one.
const defaultMaxInFlight = 100

// AnchoredTopicRegex returns TopicRegex anchored so that it must match a
// whole topic name, or "" without a TopicRegex. Consumers must use it:
// regexp (and so franz-go's ConsumeRegex) matches substrings, which would
// make "orders" consume "orders-dlq" too.
func (s Subscription) AnchoredTopicRegex() string {
	if s.TopicRegex == "" {
		return ""
	}
	return `^(?:` + s.TopicRegex + `)$`
}

// LogValue implements slog.LogValuer. It logs header names only: their
// values may be credentials.
func (s Subscription) LogValue() slog.Value {
	r := s.Retry
	return slog.GroupValue(
		slog.String("name", s.Name),
		slog.String("group_id", s.GroupID),
		slog.Any("topics", s.Topics),
		slog.String("topic_regex", s.TopicRegex),
		slog.String("webhook_url", redactURL(s.WebhookURL)),
		slog.String("start_offset", s.StartOffset),
		slog.String("ordering", s.Ordering),
		slog.Int("max_in_flight", s.MaxInFlight),
		slog.Int("max_concurrency", s.MaxConcurrency),
		slog.Group("batch",
			slog.Int("max_records", s.Batch.MaxRecords), slog.Int("max_bytes", s.Batch.MaxBytes),
			slog.Duration("max_wait", s.Batch.MaxWait)),
		slog.String("on_exhausted", s.OnExhausted),
		slog.String("dead_letter_topic", s.DeadLetterTopic),
		slog.Duration("attempt_timeout", s.AttemptTimeout),
		slog.Group("retry",
			slog.Duration("initial_backoff", r.InitialBackoff), slog.Duration("max_backoff", r.MaxBackoff),
			slog.Float64("multiplier", r.Multiplier), slog.Float64("jitter", r.Jitter),
			slog.Int("max_attempts", r.MaxAttempts), slog.Duration("max_elapsed", r.MaxElapsed)),
		slog.Any("permanent_statuses", s.PermanentStatuses),
		slog.String("cloudevent_type", s.CloudEventType),
		slog.String("default_content_type", s.ContentType),
		slog.Any("header_names", sortedKeys(s.Headers)),
	)
}

// redactURL hides the values of a URL's query, which often carry tokens
// (?token=…), and any password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a valid URL)"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// subscriptionsLogValue logs each subscription under its name.
func subscriptionsLogValue(subs []Subscription) slog.Value {
	attrs := make([]slog.Attr, 0, len(subs))
	for i, s := range subs {
		key := s.Name
		if key == "" {
			key = fmt.Sprintf("#%d", i)
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: s.LogValue()})
	}
	return slog.GroupValue(attrs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// shorthandOptions holds the one-subscription options while Load reads its
// sources. Only once all are read is it known whether subscribe-topics
// ended up set, so resolveShorthand runs last.
type shorthandOptions struct {
	topics                                         []string
	webhookURL, groupID, deadLetterTopic, ordering string
	maxInFlight, maxConcurrency                    *int // nil: not given
	batchMaxRecords, batchMaxBytes                 *int
	batchMaxWait                                   *time.Duration
}

// shorthandFields maps a subscription's YAML field to the option that sets
// it in the shorthand, so that Validate can name what the user typed.
var shorthandFields = map[string]string{
	"topics":            "subscribe-topics",
	"webhook_url":       "webhook-url",
	"group_id":          "group-id",
	"dead_letter_topic": "dead-letter-topic",
	"ordering":          "ordering",
	"max_in_flight":     "max-in-flight",
	"max_concurrency":   "max-concurrency",
	"batch.max_records": "batch-max-records",
	"batch.max_bytes":   "batch-max-bytes",
	"batch.max_wait":    "batch-max-wait",
}

// given lists the options set besides subscribe-topics, in --help order. An
// empty value counts as unset, as an empty environment variable does.
func (sh shorthandOptions) given() []string {
	var names []string
	for _, g := range []struct {
		name string
		set  bool
	}{
		{"webhook-url", sh.webhookURL != ""},
		{"group-id", sh.groupID != ""},
		{"dead-letter-topic", sh.deadLetterTopic != ""},
		{"ordering", sh.ordering != ""},
		{"max-in-flight", sh.maxInFlight != nil},
		{"max-concurrency", sh.maxConcurrency != nil},
		{"batch-max-records", sh.batchMaxRecords != nil},
		{"batch-max-bytes", sh.batchMaxBytes != nil},
		{"batch-max-wait", sh.batchMaxWait != nil},
	} {
		if g.set {
			names = append(names, g.name)
		}
	}
	return names
}

// resolveShorthand turns the one-subscription options into Subscriptions[0],
// named "default". They may not be mixed with the file's subscriptions list:
// which would win is anyone's guess.
func (c *Config) resolveShorthand() error {
	sh := c.shorthand
	c.shorthand = shorthandOptions{}
	given := sh.given()
	switch {
	case len(sh.topics) == 0 && len(given) == 0:
		return nil
	case len(c.Subscriptions) > 0:
		if len(sh.topics) > 0 {
			given = append([]string{"subscribe-topics"}, given...)
		}
		return fmt.Errorf("subscriptions: use either the config file's subscriptions list or the one-subscription options (%s), not both", strings.Join(given, ", "))
	case len(sh.topics) == 0:
		var errs []error
		for _, name := range given {
			errs = append(errs, fmt.Errorf("%s: set, but subscribe-topics (KBRIDGE_SUBSCRIBE_TOPICS) is not: the one-subscription options need the topics to consume", name))
		}
		return errors.Join(errs...)
	}
	s := DefaultSubscription()
	s.Name = "default"
	s.Topics = sh.topics
	s.WebhookURL = sh.webhookURL
	s.GroupID = sh.groupID
	s.DeadLetterTopic = sh.deadLetterTopic
	if s.DeadLetterTopic != "" {
		s.OnExhausted = OnExhaustedDeadLetter
	}
	if sh.ordering != "" {
		s.Ordering = sh.ordering
	}
	switch {
	case sh.maxInFlight != nil:
		s.MaxInFlight = *sh.maxInFlight
	case s.Ordering != OrderingPartition:
		s.MaxInFlight = defaultMaxInFlight
	}
	if sh.maxConcurrency != nil {
		s.MaxConcurrency = *sh.maxConcurrency
	}
	var errs []error
	s.Batch, errs = sh.batch()
	c.Subscriptions = []Subscription{s}
	c.fromShorthand = true
	return errors.Join(errs...)
}

// batch returns the shorthand's batch settings. Without batch-max-records
// batching is off, so batch-max-bytes or batch-max-wait alone would be
// silently ignored: that is an error instead.
func (sh shorthandOptions) batch() (Batch, []error) {
	if sh.batchMaxRecords == nil {
		var errs []error
		for _, g := range []struct {
			name string
			set  bool
		}{
			{"batch-max-bytes", sh.batchMaxBytes != nil},
			{"batch-max-wait", sh.batchMaxWait != nil},
		} {
			if g.set {
				errs = append(errs, fmt.Errorf("%s: needs batch-max-records (KBRIDGE_BATCH_MAX_RECORDS), which turns batching on; without it records go one per request", g.name))
			}
		}
		return Batch{}, errs
	}
	b := Batch{MaxRecords: *sh.batchMaxRecords, MaxBytes: DefaultBatchMaxBytes, MaxWait: DefaultBatchMaxWait}
	if sh.batchMaxBytes != nil {
		b.MaxBytes = *sh.batchMaxBytes
	}
	if sh.batchMaxWait != nil {
		b.MaxWait = *sh.batchMaxWait
	}
	return b, nil
}
