package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Bounds on what one partition may hold fetched but not yet dispatched.
// Past either, the partition's fetches pause until its worker has taken half
// of it; with FetchMaxPartitionBytes that keeps a partition's memory to a
// few MiB however slow the app is.
const (
	maxQueuedRecords       = 512
	maxQueuedBytes         = 4 << 20
	fetchMaxBytes          = 16 << 20
	fetchMaxPartitionBytes = 1 << 20
	maxPollRecords         = 1024
	// fetchMaxWait bounds how long the broker holds a fetch for more data.
	// A partition resumed after a pause joins the next fetch request only,
	// so with franz-go's 5 s default a caught-up topic would leave a
	// resumed partition idle for seconds; 100 ms costs a few empty fetches
	// a second while idle.
	fetchMaxWait = 100 * time.Millisecond

	// commitTimeout bounds one commit request, so a broker that does not
	// answer cannot hold the revoke lock for long.
	commitTimeout = 10 * time.Second
	// deadLetterTopicGrace is how long a DLQ topic reported missing is
	// looked up again before kbridge gives up on the subscription.
	deadLetterTopicGrace = 3 * time.Second
	// regexMetadataMaxAge is how soon a regex subscription sees a new topic.
	regexMetadataMaxAge = 10 * time.Second
)

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

// Consumer runs one subscription: a franz-go group member whose poll loop
// hands each assigned partition's records to that partition's worker, a
// committer that commits each partition's tracker point, and the rebalance
// callbacks that start and stop workers.
//
// Locking: workersMu guards the workers map and is held only briefly.
// commitMu is the revoke lock: the periodic commit takes its snapshot of the
// workers and commits under it, and the revoke and lost paths take it to
// remove their workers, so once a partition is removed no commit can cover
// it (a periodic commit racing a revoke could otherwise rewind the offset
// the partition's next owner committed).
type Consumer struct {
	cfg     ConsumerConfig
	log     *slog.Logger
	webhook *WebhookClient
	dlq     *DeadLetterWriter // nil under the block policy
	m       *consumerMetrics
	pace    pacer
	// requests holds a token per webhook request in flight, so that the
	// subscription never has more than max_concurrency requests at the app
	// across all its partitions (12 partitions × 100 in flight would swamp
	// a five-thread Puma).
	requests chan struct{}
	batch    *batcher // nil without batch delivery

	opts   []kgo.Opt
	client *kgo.Client // set by Run once the subscription may join its group

	commitMu  sync.Mutex
	workersMu sync.Mutex
	workers   map[topicPartition]*partitionWorker

	state stateBox

	closing   bool               // Close was called; Run must not start
	stopPoll  context.CancelFunc // ends the poll loop; set by Run
	pollDone  chan struct{}      // closed when Run's poll loop returned
	closeOnce sync.Once
}

// NewConsumer builds a subscription's consumer. It does not contact Kafka;
// Run does. dlq may be nil only when cfg.DeadLetterTopic is empty.
func NewConsumer(cfg ConsumerConfig, dlq *DeadLetterWriter, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DeadLetterTopic != "" && dlq == nil {
		return nil, fmt.Errorf("subscription %s: dead-letter topic %s without a dead-letter writer", cfg.Name, cfg.DeadLetterTopic)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("subscription", cfg.Name)
	if cfg.Webhook.AttemptTimeout == 0 {
		cfg.Webhook.AttemptTimeout = cfg.Retry.AttemptTimeout
	}
	webhook, err := NewWebhookClient(cfg.Webhook)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", cfg.Name, err)
	}
	m, err := newConsumerMetrics(cfg.Name, reg)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", cfg.Name, err)
	}
	c := &Consumer{
		requests: make(chan struct{}, cmp.Or(cfg.Webhook.MaxConcurrency, DefaultWebhookConcurrency)),
		cfg:      cfg,
		log:      log,
		webhook:  webhook,
		m:        m,
		workers:  make(map[topicPartition]*partitionWorker),
		pollDone: make(chan struct{}),
	}
	if cfg.DeadLetterTopic != "" {
		c.dlq = dlq
	}
	if cfg.Batch.Enabled() {
		c.batch = newBatcher(c)
	}
	c.state.set("starting", "")
	if c.opts, err = c.kgoOptions(); err != nil {
		return nil, err
	}
	return c, nil
}

// Run checks the dead-letter topic, then consumes and delivers until ctx
// ends or Close is called. It returns an error only when the subscription
// cannot run at all (its dead-letter topic does not exist).
func (c *Consumer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.workersMu.Lock()
	if c.closing {
		c.workersMu.Unlock()
		return nil
	}
	c.stopPoll = cancel
	if c.batch != nil {
		c.batch.start() // close stops it, once the workers are done
	}
	c.workersMu.Unlock()
	defer close(c.pollDone)

	// The group is joined only once the DLQ is known to exist: a member
	// that could not dead-letter must not take partitions.
	if err := c.checkDeadLetterTopic(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		c.state.set("failed", err.Error())
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	client, err := kgo.NewClient(c.opts...)
	if err != nil {
		return fmt.Errorf("subscription %s: new kafka consumer: %w", c.cfg.Name, err)
	}
	c.workersMu.Lock()
	c.client = client
	c.workersMu.Unlock()
	c.state.set("consuming", "")
	c.log.Info("subscription started", "topics", c.cfg.Topics, "topic_regex", c.cfg.TopicRegex, "group", c.cfg.Group, "webhook", redactURL(c.cfg.URL))

	var wg sync.WaitGroup
	wg.Go(func() { c.commitLoop(ctx) })
	defer wg.Wait()
	c.poll(ctx)
	return nil
}

// acquireRequest takes a token for one webhook request; false if quit
// closed first.
func (c *Consumer) acquireRequest(quit <-chan struct{}) bool {
	select {
	case c.requests <- struct{}{}:
		return true
	case <-quit:
		return false
	}
}

func (c *Consumer) releaseRequest() { <-c.requests }

// checkDeadLetterTopic makes sure the DLQ topic exists before anything is
// consumed: a subscription that could not dead-letter must not start. Kafka
// being unreachable is not the topic's fault, so that is retried.
func (c *Consumer) checkDeadLetterTopic(ctx context.Context) error {
	if c.dlq == nil {
		return nil
	}
	c.state.set("checking dead-letter topic", "")
	start := time.Now()
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		err := c.dlq.CheckTopic(ctx, c.cfg.DeadLetterTopic)
		if err == nil {
			return nil
		}
		// A topic created just before kbridge started may not be in every
		// broker's metadata yet: "not found" is believed after a grace.
		young := errors.Is(err, ErrTopicNotFound) && time.Since(start) < deadLetterTopicGrace
		if !errors.Is(err, ErrUnavailable) && !young {
			return fmt.Errorf("subscription %s: dead-letter topic %s: %w", c.cfg.Name, c.cfg.DeadLetterTopic, err)
		}
		c.log.Warn("cannot check the dead-letter topic yet; retrying", "topic", c.cfg.DeadLetterTopic, "error", err)
		c.state.set("checking dead-letter topic", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// poll is the poll loop. It never blocks on a slow partition: records are
// queued on their partition's worker, which pauses the partition's fetches
// when its queue is full.
func (c *Consumer) poll(ctx context.Context) {
	for {
		fetches := c.client.PollRecords(ctx, maxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			c.client.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			c.fetchError(topic, partition, err)
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				c.worker(p.Topic, p.Partition).enqueue(p.Records)
			}
		})
		c.client.AllowRebalance()
	}
}

func (c *Consumer) fetchError(topic string, partition int32, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	var loss *kgo.ErrDataLoss
	if errors.As(err, &loss) {
		// The broker lost data or the log moved under us: franz-go resets
		// to the log start. Loud, because records may have been skipped.
		c.m.offsetResets.Inc()
		c.log.Error("offset out of range: consuming resets to the earliest offset", "topic", topic, "partition", partition, "error", err)
		return
	}
	c.m.fetchErrors.Inc()
	c.log.Warn("fetch failed", "topic", topic, "partition", partition, "error", err)
}

// worker returns the partition's worker. The assigned callback creates it;
// creating it here too keeps a fetch that races the callback from being
// dropped (its records would then never be delivered by this member).
func (c *Consumer) worker(topic string, partition int32) *partitionWorker {
	tp := topicPartition{topic, partition}
	c.workersMu.Lock()
	defer c.workersMu.Unlock()
	w, ok := c.workers[tp]
	if !ok {
		w = c.startWorker(tp)
		c.workers[tp] = w
	}
	return w
}

// startWorker starts a worker for a new assignment of tp; workersMu held.
func (c *Consumer) startWorker(tp topicPartition) *partitionWorker {
	w := newPartitionWorker(c, tp)
	go w.run()
	c.m.assigned.Inc()
	return w
}

// Close shuts the subscription down in DESIGN.md's order: stop fetching;
// let in-flight deliveries finish until drain ends, then cancel them;
// commit; leave the group (unless static membership). The final commit and
// the leave are bounded by final. Close is idempotent; Run returns once it
// was called.
func (c *Consumer) Close(drain, final context.Context) {
	c.closeOnce.Do(func() { c.close(drain, final) })
}

func (c *Consumer) close(drain, final context.Context) {
	c.workersMu.Lock()
	c.closing = true
	stop, client := c.stopPoll, c.client
	c.workersMu.Unlock()
	if client != nil {
		client.PauseFetchTopics(client.GetConsumeTopics()...)
	}
	if stop != nil {
		stop()
		<-c.pollDone
	}
	c.workersMu.Lock()
	client = c.client // Run may have created it meanwhile
	c.workersMu.Unlock()
	defer c.webhook.CloseIdleConnections()
	if c.batch != nil {
		// After the workers: they wait on the batcher until they stop.
		defer c.batch.stop()
	}
	if client == nil {
		c.state.stopped()
		return
	}
	c.state.set("stopping", "")
	// The workers are stopped but stay in the map while they drain, so a
	// rebalance meanwhile revokes them the normal way (committing while
	// this member still owns them). Whatever is in the map afterwards is
	// still owned, and is committed here under the revoke lock; committing
	// a partition the drain lost to another member would rewind its commit.
	c.workersMu.Lock()
	draining := make([]*partitionWorker, 0, len(c.workers))
	for _, w := range c.workers {
		draining = append(draining, w)
	}
	c.workersMu.Unlock()
	stopWorkers(drain, draining)

	c.commitMu.Lock()
	c.workersMu.Lock()
	owned := make([]*partitionWorker, 0, len(c.workers))
	for tp, w := range c.workers {
		owned = append(owned, w)
		delete(c.workers, tp)
	}
	c.workersMu.Unlock()
	stopWorkers(cancelled(), owned) // any assigned during the drain
	c.commit(final, owned)
	c.commitMu.Unlock()
	releaseWorkers(owned)

	if c.cfg.InstanceID == "" {
		if err := client.LeaveGroupContext(final); err != nil {
			c.log.Warn("leaving the group", "error", err)
		}
	}
	client.Close()
	c.state.stopped()
	c.log.Info("subscription stopped")
}
