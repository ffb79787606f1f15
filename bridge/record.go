package bridge

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one record to publish. A nil Key or Value is Kafka's null; an
// empty non-nil one is an empty byte string.
type Record struct {
	Key     []byte
	Value   []byte
	Headers []Header
	// Partition is the explicit partition when HasPartition is set;
	// otherwise the partitioner chooses one from the key.
	Partition    int32
	HasPartition bool
	// Timestamp is the create time; zero means now.
	Timestamp time.Time
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Result is the outcome of one published record: where it was written, or
// why it was not.
type Result struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Err       error
}

// size is what counts against the record size limit: key, value and headers.
func (r *Record) size() int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func (r *Record) toKgo(topic string) *kgo.Record {
	kr := &kgo.Record{
		Topic:     topic,
		Key:       r.Key,
		Value:     r.Value,
		Partition: -1, // explicitPartitioner: let the key decide
		Timestamp: r.Timestamp,
	}
	if r.HasPartition {
		kr.Partition = r.Partition
	}
	if len(r.Headers) > 0 {
		kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return kr
}
