package bridge

import "fmt"

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
