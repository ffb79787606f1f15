package bridge

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The two benchmarks produce the same 1 KiB keyless records to the same kind
// of in-process cluster, so their ratio is kbridge's overhead over franz-go's
// own synchronous produce (validation, topic lookup cache, result plumbing).
// The cluster discards what it is sent (BlackholeProduce) so memory stays flat,
// and SetParallelism(16) gives many concurrent callers even on few cores.
// Numbers depend on the machine; nothing here asserts on them.

var benchValue = make([]byte, 1024)

func BenchmarkPublish(b *testing.B) {
	c := newCluster(b, kfake.BlackholeProduce())
	p := newTestProducer(b, testProducerConfig(c.ListenAddrs()))
	ctx := context.Background()
	if _, err := p.Publish(ctx, testTopic, []Record{{Value: benchValue}}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchValue)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		records := []Record{{Value: benchValue}}
		for pb.Next() {
			res, err := p.Publish(ctx, testTopic, records)
			if err == nil {
				err = res[0].Err
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkProduceSyncDirect(b *testing.B) {
	c := newCluster(b, kfake.BlackholeProduce())
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(testTopic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: benchValue}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchValue)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: benchValue}).FirstErr(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
