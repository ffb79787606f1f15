package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// checkEvery is how often the checker samples the committed offsets.
const checkEvery = 100 * time.Millisecond

// confirmWait bounds how long a suspected commit-ahead waits for the log
// and dead-letter readers to catch up before it is judged.
const confirmWait = time.Minute

// checker samples the group's committed offsets while the run goes on and
// fails the run the moment one lies beyond the acknowledged-or-dead-
// lettered prefix of its partition. It also counts commits that move
// backwards and changes of the group's members (rebalances).
type checker struct {
	kafka       *kafka
	group       string
	topic, dlq  string
	ledger      *ledger
	dlqReader   *reader
	failRun     func(msg string) // records a violation and stops the run at once
	regressions problemLog

	mu         sync.Mutex
	last       map[int32]int64 // highest committed offset seen per partition
	samples    int
	errors     int
	ahead      int
	members    string
	rebalances int
}

// run samples until ctx ends.
func (c *checker) run(ctx context.Context) {
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	for {
		c.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample checks the committed offsets once. The ledger's sequence number
// and the DLQ's end offsets are read after the committed offsets, so
// everything that justified those commits is within the limits (the
// webhook records an acknowledgement before the 2xx, and kbridge commits
// a dead-lettered record only once its DLQ write was acknowledged).
func (c *checker) sample(ctx context.Context) {
	committed, err := c.kafka.committed(ctx, c.group, c.topic)
	var dlqEnd map[int32]int64
	if err == nil {
		lim := limits{seq: c.ledger.sequence()}
		dlqEnd, err = c.kafka.endOffsets(ctx, c.dlq)
		lim.dlqEnd = dlqEnd
		for p, off := range committed {
			if err == nil {
				c.check(ctx, p, off, lim)
			}
		}
	}
	c.mu.Lock()
	c.samples++
	if err != nil && ctx.Err() == nil {
		c.errors++ // the broker restarting, typically
	}
	c.mu.Unlock()
	c.countRebalance(ctx)
}

// check judges one partition's committed offset.
func (c *checker) check(ctx context.Context, p int32, off int64, lim limits) {
	c.mu.Lock()
	prev, seen := c.last[p]
	c.last[p] = max(prev, off)
	c.mu.Unlock()
	if seen && off < prev {
		c.regressions.add("partition %d: committed offset moved back from %d to %d", p, prev, off)
	}
	if off <= c.ledger.prefix(p, lim) {
		return
	}
	// Maybe the readers have not yet read what justifies the commit: the
	// record at the prefix may be dead-lettered, or no record at all.
	deadline := time.Now().Add(confirmWait)
	for c.ledger.logEnd(p) < off || !c.dlqReader.reached(lim.dlqEnd) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.failRun(fmt.Sprintf("partition %d: committed %d, and the readers did not reach it within %v to confirm it", p, off, confirmWait))
			return
		}
		poll := time.NewTimer(20 * time.Millisecond)
		<-poll.C
	}
	if prefix := c.ledger.prefix(p, lim); off > prefix {
		c.mu.Lock()
		c.ahead++
		c.mu.Unlock()
		c.failRun(fmt.Sprintf("COMMIT AHEAD: partition %d committed offset %d, but offset %d was neither acknowledged nor dead-lettered when the commit was read (%s)",
			p, off, prefix, c.describe(p, prefix)))
	}
}

// describe says what the ledger knows of one offset.
func (c *checker) describe(p int32, off int64) string {
	c.ledger.mu.Lock()
	defer c.ledger.mu.Unlock()
	s := c.ledger.slot(p, off)
	return fmt.Sprintf("in log %t, poison %t, webhook requests %d, acks %d (first at seq %d), dead-letter copies %d",
		s.inLog, s.poison, s.arrivals, s.acks, s.ackSeq, s.dlqs)
}

// countRebalance counts a change of the group's members. A group in the
// middle of a rebalance may list none; that is not a change.
func (c *checker) countRebalance(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	described, err := c.kafka.adm.DescribeGroups(ctx, c.group)
	if err != nil {
		return
	}
	g, ok := described[c.group]
	if !ok || g.Err != nil {
		return
	}
	var ids []string
	for _, m := range g.Members {
		ids = append(ids, m.MemberID)
	}
	slices.Sort(ids)
	members := strings.Join(ids, ",")
	if members == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members != "" && members != c.members {
		c.rebalances++
	}
	c.members = members
}

// counts returns the checker's tallies.
func (c *checker) counts() (samples, errors, ahead, rebalances int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.samples, c.errors, c.ahead, c.rebalances
}
