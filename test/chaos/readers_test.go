package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// dlqCopy is one record of the dead-letter topic, with its provenance.
type dlqCopy struct {
	topic      string // the source topic
	partition  int32
	offset     int64
	id         int64
	lastStatus string
	reason     string // kbridge-dlq-error
	attempts   string
	group      string
}

// reader follows one topic from its start (read_committed), as any
// consumer would, and hands each record to a callback. It keeps, per
// partition, the offset after the last record it read.
type reader struct {
	cl   *kgo.Client
	mu   sync.Mutex
	next map[int32]int64
	done chan struct{}
}

// startReader consumes topic on brokers until ctx ends; each record goes to
// handle, from one goroutine.
func startReader(ctx context.Context, brokers []string, topic string, handle func(*kgo.Record)) (*reader, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return nil, fmt.Errorf("reader of %s: %w", topic, err)
	}
	r := &reader{cl: cl, next: map[int32]int64{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			// Fetch errors (a broker restarting) are retried by the
			// client; the records that did arrive are still good.
			r.cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
				handle(rec)
				r.mu.Lock()
				r.next[rec.Partition] = rec.Offset + 1
				r.mu.Unlock()
			})
		}
	}()
	return r, nil
}

// reached reports whether the reader has read every record below end, for
// every partition of end.
func (r *reader) reached(end map[int32]int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, off := range end {
		if off > 0 && r.next[p] < off {
			return false
		}
	}
	return true
}

// close stops the reader after ctx was cancelled.
func (r *reader) close() {
	<-r.done
	r.cl.Close()
}

// logRecord hands a record of the delivered topic to the ledger.
func logRecord(l *ledger, problems *problemLog) func(*kgo.Record) {
	return func(rec *kgo.Record) {
		var v valueFields
		if err := json.Unmarshal(rec.Value, &v); err != nil || !l.logged(rec.Partition, rec.Offset, v.ID, v.Poison) {
			problems.add("log record %d/%d: unexpected value %.80q", rec.Partition, rec.Offset, rec.Value)
		}
	}
}

// dlqRecords hands each dead-letter record to the ledger and keeps its
// provenance for the final checks.
type dlqRecords struct {
	mu     sync.Mutex
	copies []dlqCopy
}

func (d *dlqRecords) handle(l *ledger, problems *problemLog) func(*kgo.Record) {
	return func(rec *kgo.Record) {
		h := map[string]string{}
		for _, kv := range rec.Headers {
			h[kv.Key] = string(kv.Value)
		}
		c := dlqCopy{topic: h["kbridge-dlq-topic"], lastStatus: h["kbridge-dlq-last-status"], reason: h["kbridge-dlq-error"], attempts: h["kbridge-dlq-attempts"], group: h["kbridge-dlq-group"]}
		p, err1 := strconv.ParseInt(h["kbridge-dlq-partition"], 10, 32)
		off, err2 := strconv.ParseInt(h["kbridge-dlq-offset"], 10, 64)
		var v valueFields
		err3 := json.Unmarshal(rec.Value, &v)
		c.partition, c.offset, c.id = int32(p), off, v.ID
		if err1 != nil || err2 != nil || err3 != nil || !l.deadLettered(c.partition, c.offset, rec.Partition, rec.Offset) {
			problems.add("dead-letter record %d/%d: bad provenance %v or value %.80q", rec.Partition, rec.Offset, h, rec.Value)
			return
		}
		d.mu.Lock()
		d.copies = append(d.copies, c)
		d.mu.Unlock()
	}
}

func (d *dlqRecords) all() []dlqCopy {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dlqCopy(nil), d.copies...)
}
