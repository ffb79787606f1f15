package bridge

import (
	"fmt"
	"sync"
	"time"
)

// maxTopicLength is Kafka's limit on topic names.
const maxTopicLength = 249

// ValidateTopic checks a topic name against Kafka's rules, so that a bad name
// is refused before anything is produced.
func ValidateTopic(topic string) error {
	switch {
	case topic == "":
		return &ValidationError{Record: -1, Field: "topic", Reason: "must not be empty"}
	case len(topic) > maxTopicLength:
		return &ValidationError{Record: -1, Field: "topic", Reason: fmt.Sprintf("is %d characters long; Kafka allows at most %d", len(topic), maxTopicLength)}
	case topic == "." || topic == "..":
		return &ValidationError{Record: -1, Field: "topic", Reason: fmt.Sprintf("%q is not a valid topic name", topic)}
	}
	for i := 0; i < len(topic); i++ {
		if !topicChar(topic[i]) {
			return &ValidationError{Record: -1, Field: "topic", Reason: fmt.Sprintf("contains %q at position %d; topic names use only ASCII letters, digits, '.', '_' and '-'", rune(topic[i]), i)}
		}
	}
	return nil
}

func topicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validateRecords checks what can be checked without Kafka: at least one
// record, each within the size limit, explicit partitions not negative.
func validateRecords(records []Record, maxRecordBytes int) error {
	if len(records) == 0 {
		return &ValidationError{Record: -1, Field: "records", Reason: "at least one record is required"}
	}
	for i := range records {
		r := &records[i]
		if n := r.size(); n > maxRecordBytes {
			return &ValidationError{Record: i, Field: "value", Reason: fmt.Sprintf("record is %d bytes (key+value+headers); the limit is %d", n, maxRecordBytes)}
		}
		if r.HasPartition && r.Partition < 0 {
			return &ValidationError{Record: i, Field: "partition", Reason: fmt.Sprintf("must not be negative, got %d", r.Partition)}
		}
		for j, h := range r.Headers {
			if h.Key == "" {
				return &ValidationError{Record: i, Field: fmt.Sprintf("headers[%d].key", j), Reason: "must not be empty"}
			}
		}
	}
	return nil
}

// validatePartitions checks explicit partitions against the topic's count.
func validatePartitions(records []Record, partitions int32) error {
	for i := range records {
		if p := records[i].Partition; records[i].HasPartition && p >= partitions {
			return &ValidationError{Record: i, Field: "partition", Reason: fmt.Sprintf("partition %d does not exist: the topic has %d (0 to %d)", p, partitions, partitions-1)}
		}
	}
	return nil
}

// timestampMemory is how long a timestamp limit learned from Kafka is kept:
// long enough that a caller sending many records too far off does not make
// Kafka refuse batch after batch, short enough that raising the topic's
// limit soon takes effect.
const timestampMemory = 5 * time.Minute

// timestampLimits remembers, per topic, how far from now a timestamp was when
// Kafka refused it (INVALID_TIMESTAMP, for a record sent alone), and refuses
// records about as far off (below) before they are produced, where they
// would make Kafka refuse a batch shared with other callers' records.
//
// Why learned, and not a fixed rule such as "at most 1 hour ahead": the
// limits are the topic's message.timestamp.after.max.ms and
// before.max.ms, set per broker and per topic. Since Kafka 4.0 the first is
// 1 hour by default; before 4.0 (and for the second still) the default is
// no limit at all, and kfake (dev mode) has none. A fixed rule would refuse
// records that many clusters accept, and accept some that a topic with a
// tighter limit refuses. A refusal Kafka made is a fact about the topic
// (its limit is below that distance), while its limit is unchanged; the
// broker's clock may differ from kbridge's, but by the same amount both
// times.
//
// "About as far": a refusal at distance d says only that the limit is below
// d. But a caller repeating a fixed timestamp (2100-01-01) sends it a little
// nearer each time, and one with a constant offset (a time zone mistake)
// jitters around d; refusing only at d or beyond would miss both. So a
// record is refused from 1% short of d: a record Kafka would accept is
// refused only if the refused one exceeded the limit by less than 1%, and
// then only for timestamps within that 1%.
//
// The zero value is ready to use.
type timestampLimits struct {
	mu     sync.Mutex
	topics map[string]timestampLimit
}

// timestampLimit is what Kafka refused on one topic: timestamps at least
// ahead in the future, or behind in the past (zero: none seen), until until.
type timestampLimit struct {
	ahead, behind time.Duration
	until         time.Time
}

// learn records that Kafka refused ts, a caller's timestamp, on topic.
func (l *timestampLimits) learn(topic string, ts, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.topics == nil {
		l.topics = make(map[string]timestampLimit)
	}
	lim := l.topics[topic]
	if now.After(lim.until) {
		lim = timestampLimit{}
	}
	lim.until = now.Add(timestampMemory)
	switch d := ts.Sub(now); {
	case d > 0 && (lim.ahead == 0 || d < lim.ahead):
		lim.ahead = d
	case d < 0 && (lim.behind == 0 || -d < lim.behind):
		lim.behind = -d
	}
	l.topics[topic] = lim
}

// check refuses the first record whose timestamp is about as far off as
// one Kafka refused on topic lately, or further.
func (l *timestampLimits) check(topic string, records []Record, now time.Time) error {
	l.mu.Lock()
	lim, ok := l.topics[topic]
	if ok && now.After(lim.until) {
		delete(l.topics, topic)
		ok = false
	}
	l.mu.Unlock()
	if !ok {
		return nil
	}
	for i := range records {
		ts := records[i].Timestamp
		if ts.IsZero() { // now, stamped by the client
			continue
		}
		d, limit, side := ts.Sub(now), lim.ahead, "ahead of"
		if d < 0 {
			d, limit, side = -d, lim.behind, "behind"
		}
		if limit > 0 && d >= limit-limit/100 {
			return &ValidationError{Record: i, Field: "timestamp", Reason: fmt.Sprintf(
				"%s is %s %s now, and Kafka lately refused a timestamp %s %s its clock on this topic (INVALID_TIMESTAMP: see the topic's message.timestamp.%s.max.ms)",
				formatTime(ts), roughly(d), side, roughly(limit), side, limitName(side))}
		}
	}
	return nil
}

// timestampRefusal says why Kafka refused a record's timestamp ts.
func timestampRefusal(ts, now time.Time) string {
	if ts.After(now) {
		return fmt.Sprintf("Kafka refused %s, %s ahead of now, as too far ahead of its clock (INVALID_TIMESTAMP): the topic's message.timestamp.after.max.ms allows 1 hour by default since Kafka 4.0",
			formatTime(ts), roughly(ts.Sub(now)))
	}
	return fmt.Sprintf("Kafka refused %s, %s behind now, as too far behind its clock (INVALID_TIMESTAMP): see the topic's message.timestamp.before.max.ms",
		formatTime(ts), roughly(now.Sub(ts)))
}

func limitName(side string) string {
	if side == "behind" {
		return "before"
	}
	return "after"
}

func formatTime(ts time.Time) string { return ts.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// roughly formats d in its largest sensible unit: "75 years" reads better
// than "657000h0m0s".
func roughly(d time.Duration) string {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	switch {
	case d >= 2*year:
		return fmt.Sprintf("%d years", d/year)
	case d >= 2*day:
		return fmt.Sprintf("%d days", d/day)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.Round(time.Second).String()
}
