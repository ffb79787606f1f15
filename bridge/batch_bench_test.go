package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// benchRecord is a typical record: a 1 KiB JSON value with a key, a
// content type and a trace header.
func benchRecord() *kgo.Record {
	return &kgo.Record{
		Topic: "orders", Partition: 7, Offset: 123456789, Key: []byte("customer-42"),
		Value:     []byte(`{"payload":"` + strings.Repeat("x", 1000) + `"}`),
		Timestamp: time.UnixMilli(1700000000123),
		Headers: []kgo.RecordHeader{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
			{Key: "tenant", Value: []byte("acme")},
		},
	}
}

// BenchmarkWebhookRequest is the per-record cost of building a single
// delivery's request.
func BenchmarkWebhookRequest(b *testing.B) {
	rec := benchRecord()
	s := WebhookRequestSettings{Group: "billing"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewWebhookRequest(context.Background(), "http://127.0.0.1:3000/events", rec, 1, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchEvent is the per-record cost of encoding an event of a
// batch.
func BenchmarkBatchEvent(b *testing.B) {
	rec := benchRecord()
	s := WebhookRequestSettings{Group: "billing"}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Value)))
	for b.Loop() {
		buf, _ = AppendBatchEvent(buf[:0], rec, 1, s)
	}
}
