package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bridge/bridgetest"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestPublishRoundTrip(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))

	ts := time.UnixMilli(1_700_000_000_123)
	records := []Record{
		{Key: []byte("k1"), Value: []byte(`{"a":1}`), Partition: 0, HasPartition: true,
			Headers: []Header{{Key: "b", Value: []byte("1")}, {Key: "a", Value: []byte("2")}, {Key: "b", Value: []byte("3")}}},
		{Key: nil, Value: []byte{}, Partition: 2, HasPartition: true},   // null key, empty value
		{Key: []byte{}, Value: nil, Partition: 1, HasPartition: true},   // empty key, null (tombstone) value
		{Key: []byte("foobar"), Value: []byte("by key"), Timestamp: ts}, // partition from murmur2
		{Key: nil, Value: []byte("no key"), Headers: []Header{{Key: "h", Value: nil}, {Key: "e", Value: []byte{}}}},
		{Key: []byte("k1"), Value: []byte("second on p0"), Partition: 0, HasPartition: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results, err := p.Publish(ctx, testTopic, records)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if len(results) != len(records) {
		t.Fatalf("got %d results for %d records", len(results), len(records))
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("records[%d]: %v", i, r.Err)
		}
		if r.Timestamp.IsZero() {
			t.Errorf("records[%d]: result without timestamp", i)
		}
	}
	wantPartition := map[int]int32{0: 0, 1: 2, 2: 1, 3: int32(partitionFor(t, "murmur2", &kgo.Record{Key: []byte("foobar"), Partition: -1}, testPartitions)), 5: 0}
	for i, want := range wantPartition {
		if results[i].Partition != want {
			t.Errorf("records[%d]: partition %d, want %d", i, results[i].Partition, want)
		}
	}
	if results[5].Offset <= results[0].Offset {
		t.Errorf("second record on partition 0 has offset %d, first %d", results[5].Offset, results[0].Offset)
	}
	if !results[3].Timestamp.Equal(ts) {
		t.Errorf("records[3]: timestamp %v, want %v", results[3].Timestamp, ts)
	}

	type at struct {
		partition int32
		offset    int64
	}
	byPos := make(map[at]*kgo.Record)
	for _, r := range bridgetest.ReadRecords(t, c.ListenAddrs(), testTopic, len(records)) {
		byPos[at{r.Partition, r.Offset}] = r
	}
	for i, want := range records {
		got, ok := byPos[at{results[i].Partition, results[i].Offset}]
		if !ok {
			t.Errorf("records[%d]: nothing read back at %d/%d", i, results[i].Partition, results[i].Offset)
			continue
		}
		sameBytes(t, fmt.Sprintf("records[%d].key", i), got.Key, want.Key)
		sameBytes(t, fmt.Sprintf("records[%d].value", i), got.Value, want.Value)
		if len(got.Headers) != len(want.Headers) {
			t.Errorf("records[%d]: %d headers read back, want %d", i, len(got.Headers), len(want.Headers))
			continue
		}
		for j, h := range want.Headers {
			if got.Headers[j].Key != h.Key || !bytes.Equal(got.Headers[j].Value, h.Value) {
				t.Errorf("records[%d].headers[%d] = %s=%q, want %s=%q", i, j, got.Headers[j].Key, got.Headers[j].Value, h.Key, h.Value)
			}
		}
		if !got.Timestamp.Equal(results[i].Timestamp) {
			t.Errorf("records[%d]: timestamp read back %v, result %v", i, got.Timestamp, results[i].Timestamp)
		}
	}

	if n := counterValue(t, p.records.WithLabelValues("ok")); n != float64(len(records)) {
		t.Errorf("ok counter = %v, want %d", n, len(records))
	}
}

// TestPublishOldTimestamp: a caller-set create time far in the past is
// stored as given and does not count against the record's publish timeout,
// nor against other records batched behind it.
func TestPublishOldTimestamp(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))
	old := time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 20 {
		res, err := p.Publish(ctx, testTopic, []Record{
			{Value: []byte("old"), Timestamp: old, Partition: 1, HasPartition: true},
			{Value: []byte("fresh"), Partition: 1, HasPartition: true},
		})
		if err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		for j, r := range res {
			if r.Err != nil {
				t.Fatalf("Publish %d records[%d]: %v", i, j, r.Err)
			}
		}
		if !res[0].Timestamp.Equal(old) {
			t.Fatalf("timestamp %v, want %v", res[0].Timestamp, old)
		}
	}
	if got := bridgetest.ReadRecords(t, c.ListenAddrs(), testTopic, 40)[0]; !got.Timestamp.Equal(old) {
		t.Fatalf("read back timestamp %v, want %v", got.Timestamp, old)
	}
}

// counterValue reads a counter without prometheus/testutil, whose diff
// dependency is not in go.mod.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// sameBytes compares two byte strings, telling Kafka's null (nil) from the
// empty string.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestPublishConcurrentCallers(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))
	const callers, perCaller = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	var mu sync.Mutex
	seen := make(map[[2]int64]bool)
	for g := range callers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range perCaller {
				res, err := p.Publish(ctx, testTopic, []Record{{Key: fmt.Appendf(nil, "%d-%d", g, i), Value: []byte("v")}})
				if err == nil {
					err = res[0].Err
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				pos := [2]int64{int64(res[0].Partition), res[0].Offset}
				if seen[pos] {
					errs <- fmt.Errorf("two records reported at %v", pos)
				}
				seen[pos] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var total int64
	for _, off := range endOffsets(t, newAdmin(t, c.ListenAddrs()), testTopic) {
		total += off
	}
	if total != callers*perCaller {
		t.Errorf("topic holds %d records, want %d", total, callers*perCaller)
	}
}

func TestPublishUnknownTopic(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))
	adm := newAdmin(t, c.ListenAddrs())

	// Well under the publish timeout's worth of retries: the caller's
	// deadline only keeps a regression from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := p.Publish(ctx, "missing", []Record{{Value: []byte("v")}})
	if !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("Publish to a missing topic: %v, want ErrTopicNotFound", err)
	}
	if errors.Is(err, ErrDeadline) {
		t.Fatalf("Publish to a missing topic waited for the deadline: %v", err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("missing") {
		t.Fatal("publishing to a missing topic created it")
	}
}

func TestPublishAutoCreatesTopic(t *testing.T) {
	c := newCluster(t, kfake.DefaultNumPartitions(4))
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.AutoCreateTopics = true
	p := newTestProducer(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.Publish(ctx, "fresh", []Record{{Key: []byte("k"), Value: []byte("v")}})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if res[0].Err != nil {
		t.Fatalf("record: %v", res[0].Err)
	}
	// The partition count came from the broker's default.
	res, err = p.Publish(ctx, "fresh", []Record{{Value: []byte("v"), Partition: 3, HasPartition: true}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Publish to partition 3 of a new 4-partition topic: %v / %v", err, res)
	}
	got := bridgetest.ReadRecords(t, c.ListenAddrs(), "fresh", 2)
	if string(got[0].Value) != "v" {
		t.Fatalf("read back %q", got[0].Value)
	}
}

func TestPublishValidationWritesNothing(t *testing.T) {
	c := newCluster(t)
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.MaxRecordBytes = 1024
	p := newTestProducer(t, cfg)
	adm := newAdmin(t, c.ListenAddrs())

	tests := []struct {
		name    string
		topic   string
		records []Record
		record  int
	}{
		{"third record oversize", testTopic, []Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: make([]byte, 1025)}}, 2},
		{"partition == count", testTopic, []Record{{Value: []byte("a")}, {Value: []byte("b"), Partition: testPartitions, HasPartition: true}}, 1},
		{"negative partition", testTopic, []Record{{Value: []byte("a")}, {Partition: -1, HasPartition: true}}, 1},
		{"empty header key", testTopic, []Record{{Value: []byte("a")}, {Headers: []Header{{Key: ""}}}}, 1},
		{"no records", testTopic, nil, -1},
		{"invalid topic", "bad topic", []Record{{Value: []byte("a")}}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := p.Publish(ctx, tt.topic, tt.records)
			var ve *ValidationError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) {
				t.Fatalf("Publish: %v, want a ValidationError", err)
			}
			if ve.Record != tt.record {
				t.Errorf("error names records[%d], want %d: %v", ve.Record, tt.record, err)
			}
			if res != nil {
				t.Errorf("results %v with a validation error", res)
			}
		})
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for part, off := range endOffsets(t, adm, testTopic) {
		if off != 0 {
			t.Errorf("partition %d has end offset %d after refused publishes", part, off)
		}
	}
}

func TestPublishAfterClose(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Learn the topic first, so that the publish after Close reaches the
	// client rather than failing in the lookup.
	if _, err := p.Publish(ctx, testTopic, []Record{{Value: []byte("warm")}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if n := p.BufferedRecords(); n != 0 {
		t.Fatalf("%d records buffered after Flush", n)
	}
	p.Close()

	res, err := p.Publish(ctx, testTopic, []Record{{Value: []byte("late")}, {Value: []byte("later")}})
	if err != nil {
		t.Fatalf("Publish after Close: %v, want per-record errors", err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, ErrClosed) {
			t.Errorf("records[%d] after Close: %v, want ErrClosed", i, r.Err)
		}
	}
	// A topic the producer has not seen fails in the lookup, also promptly.
	if _, err := p.Publish(ctx, "other", []Record{{Value: []byte("v")}}); err == nil || errors.Is(err, ErrDeadline) {
		t.Errorf("Publish to an unknown topic after Close: %v, want a prompt error", err)
	}
	if n := counterValue(t, p.records.WithLabelValues("closed")); n != 2 {
		t.Errorf("closed counter = %v, want 2", n)
	}
}

func TestNewProducerRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*ProducerConfig)
	}{
		{"partitioner", func(c *ProducerConfig) { c.Partitioner = "fnv" }},
		{"compression", func(c *ProducerConfig) { c.Compression = "brotli" }},
		{"acks", func(c *ProducerConfig) { c.Acks = "none" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testProducerConfig([]string{"127.0.0.1:1"})
			tt.edit(&cfg)
			if p, err := NewProducer(cfg, nil, nil); err == nil {
				p.Close()
				t.Fatal("NewProducer succeeded")
			}
		})
	}
	for _, codec := range []string{"", "none", "gzip", "snappy", "lz4", "zstd"} {
		if _, err := compressionCodec(codec); err != nil {
			t.Errorf("compression %q: %v", codec, err)
		}
	}
}
