package bridge

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The rebalance callbacks and the committer: together they hold the rule
// that only partitions this member owns are committed (see Consumer).

// assigned starts a worker per new partition. Fetches are resumed because a
// pause persists across revoke and re-assign in franz-go.
func (c *Consumer) assigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.workersMu.Lock()
	n := 0
	for topic, partitions := range assigned {
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if _, ok := c.workers[tp]; !ok {
				c.workers[tp] = c.startWorker(tp)
				n++
			}
		}
	}
	c.workersMu.Unlock()
	cl.ResumeFetchPartitions(assigned)
	if n > 0 {
		c.m.rebalances.WithLabelValues("assigned").Inc()
		c.log.Info("partitions assigned", "partitions", assigned)
	}
}

// revoked stops the revoked partitions' workers (no new dispatch, backoff
// waits cancelled, the in-flight request given until the revoke deadline),
// commits their points and resumes their fetches for the next assignment.
// It runs inside the rebalance, so everything fits in the rebalance timeout:
// the workers get half of it, the commit up to commitTimeout.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	ws := c.remove(revoked)
	if len(ws) > 0 {
		c.m.rebalances.WithLabelValues("revoked").Inc()
		c.log.Info("partitions revoked: finishing in-flight deliveries and committing", "partitions", revoked)
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.RebalanceTimeout/2)
	stopWorkers(dctx, ws)
	cancel()
	c.commitMu.Lock()
	c.commit(ctx, ws)
	c.commitMu.Unlock()
	releaseWorkers(ws)
	cl.ResumeFetchPartitions(revoked)
}

// lost stops the lost partitions' workers at once and commits nothing: the
// group may have given them to another member already.
func (c *Consumer) lost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	ws := c.remove(lost)
	if len(ws) > 0 {
		c.m.rebalances.WithLabelValues("lost").Inc()
		c.log.Warn("partitions lost (session expired or fenced): stopping their deliveries without committing", "partitions", lost)
	}
	stopWorkers(cancelled(), ws) // no grace: nothing of theirs may be committed
	releaseWorkers(ws)
	cl.ResumeFetchPartitions(lost)
}

// remove takes the partitions' workers out of the map under the revoke
// lock, so that no periodic commit covers them afterwards.
func (c *Consumer) remove(partitions map[string][]int32) []*partitionWorker {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.workersMu.Lock()
	defer c.workersMu.Unlock()
	var ws []*partitionWorker
	for topic, ps := range partitions {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if w, ok := c.workers[tp]; ok {
				delete(c.workers, tp)
				ws = append(ws, w)
			}
		}
	}
	return ws
}

// stopWorkers stops the workers and waits for them: their in-flight
// deliveries may finish until ctx ends, then they are cancelled.
func stopWorkers(ctx context.Context, ws []*partitionWorker) {
	for _, w := range ws {
		w.stop()
	}
	for _, w := range ws {
		select {
		case <-w.done:
		case <-ctx.Done():
		}
	}
	for _, w := range ws {
		w.cancel()
		<-w.done
	}
}

// releaseWorkers drops what stopped workers hold; only whoever took them
// out of the map calls it, once.
func releaseWorkers(ws []*partitionWorker) {
	for _, w := range ws {
		w.release()
	}
}

// cancelled returns a context that has ended: stop without grace.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// commitLoop commits every partition's point each CommitInterval.
func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.commitOwned(ctx)
		}
	}
}

// commitOwned commits the points of the partitions this member owns now.
func (c *Consumer) commitOwned(ctx context.Context) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.workersMu.Lock()
	ws := make([]*partitionWorker, 0, len(c.workers))
	for _, w := range c.workers {
		ws = append(ws, w)
	}
	c.workersMu.Unlock()
	c.commit(ctx, ws)
}

// commit commits the trackers' points of ws that moved; commitMu held. A
// failed commit is logged and left for the next one: the point only grows.
func (c *Consumer) commit(ctx context.Context, ws []*partitionWorker) {
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	byTP := make(map[topicPartition]*partitionWorker)
	for _, w := range ws {
		off, ok := w.tracker.Committable()
		if !ok || off < 0 {
			continue
		}
		if offsets[w.tp.topic] == nil {
			offsets[w.tp.topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[w.tp.topic][w.tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
		byTP[w.tp] = w
	}
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	c.client.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			c.m.commits.WithLabelValues("error").Inc()
			c.log.Warn("commit failed; retrying with the next commit", "error", err)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				w := byTP[topicPartition{t.Topic, p.Partition}]
				if w == nil {
					continue
				}
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					c.m.commits.WithLabelValues("error").Inc()
					c.log.Warn("commit failed; retrying with the next commit", "topic", t.Topic, "partition", p.Partition, "error", err)
					continue
				}
				off := offsets[t.Topic][p.Partition].Offset
				if err := w.tracker.MarkCommitted(off); err != nil {
					c.log.Error("commit bookkeeping", "topic", t.Topic, "partition", p.Partition, "error", err)
				}
				c.m.commits.WithLabelValues("ok").Inc()
				w.markCommitted(off)
			}
		}
	})
}
