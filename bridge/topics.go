package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"golang.org/x/sync/singleflight"
)

// topicTTL is how long a topic's partition count is trusted. Partitions can
// be added to a topic at any time; within this window an explicit partition
// that was just added may be refused as out of range.
const topicTTL = 30 * time.Second

// lookupTimeout bounds one topic lookup (including auto-creation). Kafka not
// answering within it is reported as ErrUnavailable.
const lookupTimeout = 5 * time.Second

// topics answers "does this topic exist, and how many partitions has it"
// before anything is produced, so that an unknown topic is refused promptly
// (the producer itself would retry it for the whole publish timeout) and an
// explicit partition can be checked. With autoCreate it creates missing
// topics with the broker's default partitions and replication.
type topics struct {
	adm        *kadm.Client
	autoCreate bool
	log        *slog.Logger
	now        func() time.Time

	// partitionsChanged is called when a topic's partition count changed.
	partitionsChanged func()

	group singleflight.Group
	mu    sync.Mutex
	known map[string]topicInfo
}

type topicInfo struct {
	partitions int32
	fetched    time.Time
}

func newTopics(adm *kadm.Client, autoCreate bool, log *slog.Logger, partitionsChanged func()) *topics {
	return &topics{adm: adm, autoCreate: autoCreate, log: log, now: time.Now, known: make(map[string]topicInfo), partitionsChanged: partitionsChanged}
}

// partitions returns the topic's partition count.
func (t *topics) partitions(ctx context.Context, topic string) (int32, error) {
	if n, ok := t.cached(topic); ok {
		return n, nil
	}
	// One metadata request per topic however many callers miss at once. It
	// runs detached from the caller that started it, bounded by its own
	// timeout, so that caller giving up does not fail the others; each
	// caller waits on its own context.
	ch := t.group.DoChan(topic, func() (any, error) { return t.lookupDetached(ctx, topic) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return 0, res.Err
		}
		return res.Val.(int32), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("look up topic %s: %w", topic, ErrDeadline)
	}
}

// cached answers from the cache, if the topic is known.
func (t *topics) cached(topic string) (int32, bool) {
	t.mu.Lock()
	info, ok := t.known[topic]
	t.mu.Unlock()
	if ok {
		if t.now().Sub(info.fetched) >= topicTTL {
			// Refresh in the background and answer from the cache meanwhile:
			// a publish to a known topic never waits on a metadata round
			// trip, nor fails because Kafka hiccuped during one. The lookup
			// is bounded by lookupTimeout; its channel is buffered, so
			// nobody needs to read it.
			t.group.DoChan(topic, func() (any, error) { return t.lookupDetached(context.Background(), topic) })
		}
		return info.partitions, true
	}
	return 0, false
}

// forget drops a cached topic, for example after Kafka said it is gone.
func (t *topics) forget(topic string) {
	t.mu.Lock()
	delete(t.known, topic)
	t.mu.Unlock()
}

func (t *topics) lookupDetached(ctx context.Context, topic string) (any, error) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
	defer cancel()
	return t.lookup(lctx, topic)
}

// lookup asks Kafka and updates the cache. A failed refresh keeps the old
// entry, except when the topic is gone.
func (t *topics) lookup(ctx context.Context, topic string) (int32, error) {
	n, err := t.describe(ctx, topic)
	if errors.Is(err, ErrTopicNotFound) && t.autoCreate {
		n, err = t.create(ctx, topic)
	}
	if errors.Is(err, ErrTopicNotFound) {
		t.forget(topic)
	}
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	prev, known := t.known[topic]
	t.known[topic] = topicInfo{partitions: n, fetched: t.now()}
	t.mu.Unlock()
	if known && prev.partitions != n && t.partitionsChanged != nil {
		// The producer refreshes its own metadata only every few minutes;
		// without this it would refuse an explicit partition we now accept.
		t.partitionsChanged()
	}
	return n, nil
}

func (t *topics) describe(ctx context.Context, topic string) (int32, error) {
	details, err := t.adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, metadataError(topic, err)
	}
	d, ok := details[topic]
	switch {
	case !ok, errors.Is(d.Err, kerr.UnknownTopicOrPartition):
		return 0, fmt.Errorf("topic %s: %w", topic, ErrTopicNotFound)
	case errors.Is(d.Err, kerr.TopicAuthorizationFailed):
		return 0, fmt.Errorf("topic %s: %w", topic, ErrPermission)
	case d.Err != nil:
		return 0, fmt.Errorf("describe topic %s: %w", topic, classifyKafka(d.Err))
	case len(d.Partitions) == 0:
		return 0, fmt.Errorf("topic %s has no partitions yet: %w", topic, ErrUnavailable)
	}
	return int32(len(d.Partitions)), nil
}

func (t *topics) create(ctx context.Context, topic string) (int32, error) {
	// -1 partitions and replication: the broker's defaults (KIP-464).
	resp, err := t.adm.CreateTopic(ctx, -1, -1, nil, topic)
	switch {
	case err == nil:
		t.log.Info("created topic", "topic", topic, "partitions", resp.NumPartitions)
		if resp.NumPartitions > 0 {
			return resp.NumPartitions, nil
		}
	case errors.Is(err, kerr.TopicAlreadyExists):
		// Another publisher won the race; fine.
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return 0, fmt.Errorf("create topic %s: %w", topic, ErrPermission)
	default:
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return 0, fmt.Errorf("create topic %s: %w", topic, classifyKafka(err))
		}
		return 0, metadataError(topic, err)
	}
	// Kafka before 2.4 does not answer the partition count, and a topic
	// another publisher just created takes a moment to appear in metadata.
	for {
		n, err := t.describe(ctx, topic)
		if err == nil || !(errors.Is(err, ErrTopicNotFound) || errors.Is(err, ErrUnavailable)) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for new topic %s: %w", topic, ErrUnavailable)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// metadataError wraps a failed metadata request: Kafka did not answer.
func metadataError(topic string, err error) error {
	return fmt.Errorf("look up topic %s: %w: %w", topic, ErrUnavailable, err)
}
