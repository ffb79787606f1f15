package config

import (
	"errors"
	"fmt"
	"math"
	"mime"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// complain records one problem of the field it names.
type complain func(field, format string, args ...any)

// validateConsumer checks the group settings, which bound the subscriptions'
// timeouts.
func (c Config) validateConsumer() []error {
	var errs []error
	bad := func(opt, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", opt, fmt.Sprintf(format, args...)))
	}
	k := c.Consumer
	if k.SessionTimeout <= 0 {
		bad("session-timeout", "must be positive, got %s", k.SessionTimeout)
	}
	if k.CommitInterval <= 0 {
		bad("commit-interval", "must be positive, got %s", k.CommitInterval)
	}
	if k.RebalanceTimeout <= 0 {
		bad("rebalance-timeout", "must be positive, got %s", k.RebalanceTimeout)
		return errs
	}
	// On revoke, kbridge lets in-flight attempts end (each within its
	// attempt timeout) and commits the finished prefix before it rejoins.
	// A member still revoking when the rebalance timeout passes is expelled:
	// its commit is refused, and the partition's new owner redelivers while
	// the old attempt may still be running, out of order. So an attempt must
	// fit in the rebalance with room to spare.
	var longest time.Duration
	var which string
	for i, s := range c.Subscriptions {
		if s.AttemptTimeout > longest {
			longest, which = s.AttemptTimeout, c.subscriptionField(i)("attempt_timeout")
		}
	}
	if k.RebalanceTimeout <= longest {
		bad("rebalance-timeout", "must be longer than %s (%s), got %s: on revoke, in-flight attempts finish before the commit, and both must fit in the rebalance", which, longest, k.RebalanceTimeout)
	}
	return errs
}

// validateSubscriptions checks each subscription and what must hold across
// them.
func (c Config) validateSubscriptions() []error {
	var errs []error
	names := map[string]int{}
	groups := map[string]int{}
	for i, s := range c.Subscriptions {
		field := c.subscriptionField(i)
		bad := func(f, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", field(f), fmt.Sprintf(format, args...)))
		}
		s.validateSource(bad)
		s.validateWebhook(bad)
		s.validateFlow(bad)
		s.Retry.validate(bad)
		s.Batch.validate(bad)
		if j, dup := names[s.Name]; dup && s.Name != "" {
			bad("name", "%q is also the name of subscriptions[%d]; names must be unique", s.Name, j)
		} else {
			names[s.Name] = i
		}
		// Two subscriptions in one group would be two members that take
		// each other's partitions, each consuming topics the other wants.
		if j, dup := groups[s.GroupID]; dup && s.GroupID != "" {
			bad("group_id", "%q is also the group of subscriptions[%d]; each subscription is its own consumer group", s.GroupID, j)
		} else {
			groups[s.GroupID] = i
		}
	}
	return errs
}

// subscriptionField returns how problems of subscription i name a field:
// the option for the one-subscription shorthand, else
// "subscriptions[i] (name).field".
func (c Config) subscriptionField(i int) func(string) string {
	if c.fromShorthand && len(c.Subscriptions) == 1 {
		return func(f string) string {
			if opt, ok := shorthandFields[f]; ok {
				return opt
			}
			return "subscription " + f
		}
	}
	prefix := fmt.Sprintf("subscriptions[%d]", i)
	if name := c.Subscriptions[i].Name; name != "" {
		prefix += " (" + name + ")"
	}
	return func(f string) string { return prefix + "." + f }
}

// validateSource checks where records come from and where exhausted ones
// go.
func (s Subscription) validateSource(bad complain) {
	if s.Name == "" && s.GroupID != "" {
		bad("name", "must not be empty")
	}
	if s.GroupID == "" {
		bad("group_id", "required: there is no shared default, which would make two apps split a topic")
	}
	if !oneOf(s.StartOffset, StartEarliest, StartLatest) {
		bad("start_offset", "must be earliest or latest, got %q", s.StartOffset)
	}
	if len(s.Topics) == 0 && s.TopicRegex == "" {
		bad("topics", "required: the topics to consume (or a topic_regex)")
	}
	seen := map[string]bool{}
	for _, t := range s.Topics {
		if p := topicProblem(t); p != "" {
			bad("topics", "%s", p)
		} else if seen[t] {
			bad("topics", "%q is listed twice", t)
		}
		seen[t] = true
	}
	var re *regexp.Regexp
	if s.TopicRegex != "" {
		// Compiling the regex as written gives an error that quotes what the
		// user wrote; if it compiles, so does its anchored form.
		if _, err := regexp.Compile(s.TopicRegex); err != nil {
			bad("topic_regex", "%v", err)
		} else {
			re = regexp.MustCompile(s.AnchoredTopicRegex())
		}
	}
	s.validateDeadLetter(bad, seen, re)
}

// validateDeadLetter checks on_exhausted and the DLQ. A subscription must
// never consume its own DLQ: an exhausted record would come back, fail
// again and be written again, forever.
func (s Subscription) validateDeadLetter(bad complain, topics map[string]bool, re *regexp.Regexp) {
	dlq := s.DeadLetterTopic
	if dlq != "" {
		switch {
		case topicProblem(dlq) != "":
			bad("dead_letter_topic", "%s", topicProblem(dlq))
		case topics[dlq]:
			bad("dead_letter_topic", "%q is one of the subscription's own topics; it must never consume its own dead-letter topic", dlq)
		case re != nil && re.MatchString(dlq):
			bad("dead_letter_topic", "%q matches the subscription's topic_regex %q; it must never consume its own dead-letter topic", dlq, s.TopicRegex)
		}
	}
	switch s.OnExhausted {
	case OnExhaustedDeadLetter:
		if dlq == "" {
			bad("on_exhausted", "dead-letter needs a dead_letter_topic to write exhausted records to")
		}
	case OnExhaustedBlock:
		if dlq != "" {
			bad("dead_letter_topic", "set, but on_exhausted is block, which never writes to it; drop one of them")
		}
	default:
		bad("on_exhausted", "must be dead-letter or block, got %q", s.OnExhausted)
	}
}

// topicProblem says why t is not a valid Kafka topic name, or "".
func topicProblem(t string) string {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return fmt.Sprintf("%q is not a valid topic name: 1 to 249 characters, not . or ..", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("%q is not a valid topic name: only a-z, A-Z, 0-9, '.', '_' and '-' are allowed", t)
		}
	}
	return ""
}

// validateWebhook checks what shapes the requests to the app.
func (s Subscription) validateWebhook(bad complain) {
	if p := webhookURLProblem(s.WebhookURL); p != "" {
		bad("webhook_url", "%s", p)
	}
	if s.AttemptTimeout <= 0 {
		bad("attempt_timeout", "must be positive, got %s", s.AttemptTimeout)
	}
	for _, code := range s.PermanentStatuses {
		switch {
		case code < 100 || code > 599:
			bad("permanent_statuses", "%d is not an HTTP status (100 to 599)", code)
		case code >= 200 && code <= 299:
			bad("permanent_statuses", "%d is a success: a 2xx always acks the record", code)
		}
	}
	if s.CloudEventType == "" {
		bad("cloudevent_type", "must not be empty: it is the ce-type of records that are not CloudEvents")
	}
	if _, _, err := mime.ParseMediaType(s.ContentType); err != nil {
		bad("default_content_type", "%q is not a media type (such as application/json)", s.ContentType)
	}
	seen := map[string]string{}
	for _, name := range sortedKeys(s.Headers) {
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			bad("headers", "%q is not a valid header name (an RFC 9110 token)", name)
		case reservedHeader(name):
			bad("headers", "%q is set by kbridge or its HTTP client itself", name)
		}
		// The value is not quoted: it may be a credential.
		if !httpguts.ValidHeaderFieldValue(s.Headers[name]) {
			bad("headers", "%q: the value holds a character HTTP does not allow in a header (such as a newline)", name)
		}
		if other, dup := seen[strings.ToLower(name)]; dup {
			bad("headers", "%q and %q are the same header: names are case-insensitive", other, name)
		}
		seen[strings.ToLower(name)] = name
	}
}

// webhookURLProblem says why raw is not a usable webhook URL, or "". It
// never quotes the URL, which may hold a token.
func webhookURLProblem(raw string) string {
	if raw == "" {
		return "required: the URL each record is POSTed to, such as http://127.0.0.1:3000/kafka"
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Sprintf("not a valid URL: %v", err)
	}
	switch {
	case u.User != nil:
		return "must not hold user info (user:password@); send credentials in headers, such as Authorization"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("must be an absolute http or https URL (such as http://127.0.0.1:3000/kafka), got scheme %q", u.Scheme)
	case u.Hostname() == "":
		return "has no host; it must be an absolute URL such as http://127.0.0.1:3000/kafka"
	}
	return ""
}

// reservedHeader reports whether kbridge's webhook contract sets the header
// (a static value would clash with it) or Go's HTTP client manages it (a
// static value would be ignored).
func reservedHeader(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "ce-") || strings.HasPrefix(n, "kafka-") ||
		oneOf(n, "content-type", "idempotency-key", "delivery-attempt", "traceparent", "tracestate",
			"host", "content-length", "transfer-encoding", "connection")
}

// validateFlow checks ordering and the limits on requests in flight.
func (s Subscription) validateFlow(bad complain) {
	switch s.Ordering {
	case OrderingPartition:
		if s.MaxInFlight != 1 {
			bad("max_in_flight", "must be 1 with ordering partition (one record in flight per partition), got %d", s.MaxInFlight)
		}
	case OrderingKey, OrderingNone:
	default:
		bad("ordering", "must be partition, key or none, got %q", s.Ordering)
	}
	if s.Ordering != OrderingPartition && s.MaxInFlight < 1 {
		bad("max_in_flight", "must be at least 1, got %d", s.MaxInFlight)
	}
	if s.MaxConcurrency < 1 {
		bad("max_concurrency", "must be at least 1, got %d", s.MaxConcurrency)
	}
}

func (r Retry) validate(bad complain) {
	if r.InitialBackoff <= 0 {
		bad("retry.initial_backoff", "must be positive, got %s", r.InitialBackoff)
	}
	if r.MaxBackoff <= 0 || r.MaxBackoff < r.InitialBackoff {
		bad("retry.max_backoff", "must be positive and at least retry.initial_backoff (%s), got %s", r.InitialBackoff, r.MaxBackoff)
	}
	if math.IsNaN(r.Multiplier) || math.IsInf(r.Multiplier, 0) || r.Multiplier < 1 {
		bad("retry.multiplier", "must be a finite number of at least 1, got %v", r.Multiplier)
	}
	if math.IsNaN(r.Jitter) || r.Jitter < 0 || r.Jitter > 1 {
		bad("retry.jitter", "must be from 0 (no jitter) to 1 (full jitter), got %v", r.Jitter)
	}
	if r.MaxAttempts < 1 {
		bad("retry.max_attempts", "must be at least 1, got %d", r.MaxAttempts)
	}
	if r.MaxElapsed < 0 {
		bad("retry.max_elapsed", "must be zero (no limit) or positive, got %s", r.MaxElapsed)
	}
}

// validate checks a batch that is on; the zero value is off. The limits
// are the bridge's, so that what passes here the bridge accepts.
func (b Batch) validate(bad complain) {
	if b == (Batch{}) {
		return
	}
	if b.MaxRecords < 1 || b.MaxRecords > maxBatchRecords {
		bad("batch.max_records", "must be from 1 to %d, got %d", maxBatchRecords, b.MaxRecords)
	}
	if b.MaxBytes < 1 || b.MaxBytes > maxBatchBytes {
		bad("batch.max_bytes", "must be from 1 to %d (64 MiB), got %d", maxBatchBytes, b.MaxBytes)
	}
	if b.MaxWait < 0 || b.MaxWait > maxBatchWait {
		bad("batch.max_wait", "must be from 0 (send at once what is there) to %s, got %s", maxBatchWait, b.MaxWait)
	}
}
