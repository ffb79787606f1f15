package bridge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable time source for the topic cache.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestTopicsRefreshInBackground: past the TTL a known topic answers from the
// cache at once while a background lookup refreshes it; a grown partition
// count is picked up and reported, and a failed refresh keeps the old entry.
func TestTopicsRefreshInBackground(t *testing.T) {
	c := newCluster(t)
	adm := newAdmin(t, c.ListenAddrs())
	var changed atomic.Int32
	tp := newTopics(adm, false, slog.New(slog.DiscardHandler), func() { changed.Add(1) })
	clock := &fakeClock{now: time.Now()}
	tp.now = clock.Now
	ctx := context.Background()

	if n, err := tp.partitions(ctx, testTopic); err != nil || n != testPartitions {
		t.Fatalf("partitions = %d, %v; want %d", n, err, testPartitions)
	}
	if _, err := adm.CreatePartitions(ctx, 2, testTopic); err != nil {
		t.Fatalf("add partitions: %v", err)
	}
	clock.Add(topicTTL)
	if n, err := tp.partitions(ctx, testTopic); err != nil || n != testPartitions {
		t.Fatalf("stale answer = %d, %v; want the cached %d at once", n, err, testPartitions)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := tp.partitions(ctx, testTopic)
		if err != nil {
			t.Fatal(err)
		}
		if n == testPartitions+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition count never refreshed: %d", n)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if changed.Load() != 1 {
		t.Errorf("partitionsChanged called %d times, want 1", changed.Load())
	}

	// Kafka gone: the refresh fails, the cached count stays usable.
	c.Close()
	clock.Add(topicTTL)
	for range 3 {
		if n, err := tp.partitions(ctx, testTopic); err != nil || n != testPartitions+2 {
			t.Fatalf("with Kafka gone: %d, %v; want the cached %d", n, err, testPartitions+2)
		}
	}
}
