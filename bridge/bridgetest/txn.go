package bridgetest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProduceTxn writes recs in one transaction of a transactional producer of
// its own, then commits it (commit true) or aborts it, and fails the test if
// any step fails. Records without a topic go to topic; each record's Offset
// is set to where it was written. An aborted transaction leaves its records
// and its abort marker in the log as offsets a read_committed consumer never
// sees, and a committed one is followed by a commit marker: both make gaps.
func (c *Cluster) ProduceTxn(tb testing.TB, topic string, commit bool, recs ...*kgo.Record) {
	tb.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.Brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID(TopicName(tb)),
	)
	if err != nil {
		tb.Fatalf("transactional producer client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		tb.Fatalf("begin transaction: %v", err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		tb.Fatalf("produce %d records to %s in a transaction: %v", len(recs), topic, err)
	}
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	if err := cl.EndTransaction(ctx, end); err != nil {
		tb.Fatalf("end transaction (commit %t): %v", commit, err)
	}
}
