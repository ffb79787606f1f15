package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

	// commitTimeout bounds one commit request, so a broker that does not
	// answer cannot hold the revoke lock for long.
	commitTimeout = 10 * time.Second
	// regexMetadataMaxAge is how soon a regex subscription sees a new topic.
	regexMetadataMaxAge = 10 * time.Second
)

// ConsumerConfig is one subscription: the topics it consumes in its own
// consumer group and the webhook it delivers them to.
type ConsumerConfig struct {
	// Name identifies the subscription in logs, metrics and health.
	Name   string
	Client ClientConfig

	// Topics and TopicRegex (RE2, matched against the whole topic name)
	// say what is consumed; at least one is set.
	Topics     []string
	TopicRegex string

	Group string
	// InstanceID, if set, makes the member static (KIP-345): it sends no
	// LeaveGroup on close, so its partitions wait for SessionTimeout
	// rather than moving at once, and a restart with the same ID gets them
	// back without a rebalance.
	InstanceID       string
	StartAtLatest    bool // where a new group starts: the log end instead of the start
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	CommitInterval   time.Duration
	// MetadataMaxAge bounds how long a regex subscription takes to see a
	// new topic; zero means regexMetadataMaxAge.
	MetadataMaxAge time.Duration

	URL     string
	Request WebhookRequestSettings
	Webhook WebhookClientConfig
	Retry   RetryPolicy

	// DeadLetterTopic, if set, is where exhausted and permanently refused
	// records go (the dead-letter policy); empty means the block policy:
	// retry forever.
	DeadLetterTopic string
}

// Validate reports every problem of cfg at once.
func (cfg ConsumerConfig) Validate() error {
	var errs []error
	if len(cfg.Topics) == 0 && cfg.TopicRegex == "" {
		errs = append(errs, errors.New("no topics and no topic regex"))
	}
	if cfg.TopicRegex != "" {
		if _, err := regexp.Compile(cfg.TopicRegex); err != nil {
			errs = append(errs, fmt.Errorf("topic regex: %w", err))
		}
	}
	if cfg.Group == "" {
		errs = append(errs, errors.New("group: required"))
	}
	if cfg.URL == "" {
		errs = append(errs, errors.New("webhook url: required"))
	}
	if cfg.SessionTimeout <= 0 || cfg.RebalanceTimeout <= 0 || cfg.CommitInterval <= 0 {
		errs = append(errs, errors.New("session timeout, rebalance timeout and commit interval must be positive"))
	}
	if err := cfg.Request.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Webhook.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("subscription %s: %w", cfg.Name, err)
	}
	return nil
}

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
	c.state.set("starting", "")
	if c.opts, err = c.kgoOptions(); err != nil {
		return nil, err
	}
	return c, nil
}

// kgoOptions are the group member's settings; the comments say which trap
// of DESIGN.md each one avoids.
func (c *Consumer) kgoOptions() ([]kgo.Opt, error) {
	cfg := c.cfg
	opts, err := cfg.Client.Options(c.log)
	if err != nil {
		return nil, err
	}
	start := kgo.NewOffset().AtStart()
	if cfg.StartAtLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		// Only the tracker's point is ever committed; franz-go's marks
		// never rewind and would commit past a failed record.
		kgo.DisableAutoCommit(),
		// Callbacks never run between a poll and AllowRebalance, so the
		// poll loop never routes records of a partition that was revoked.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		// Set explicitly: without it franz-go calls the revoke callback,
		// which commits, for partitions another member may already own.
		kgo.OnPartitionsLost(c.lost),
		// Aborted transactions are never delivered.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeStartOffset(start),
		// A committed offset that fell out of the log (retention) resumes
		// at the log start: every record still there is delivered.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	var topics []string
	topics = append(topics, cfg.Topics...)
	if cfg.TopicRegex != "" {
		// ConsumeRegex treats every topic entry as a pattern: quote the
		// literal names, anchor the pattern, and never match Kafka's
		// internal topics or this subscription's own DLQ.
		for i, t := range topics {
			topics[i] = "^" + regexp.QuoteMeta(t) + "$"
		}
		topics = append(topics, "^(?:"+cfg.TopicRegex+")$")
		exclude := []string{`^__.*`}
		if cfg.DeadLetterTopic != "" {
			exclude = append(exclude, "^"+regexp.QuoteMeta(cfg.DeadLetterTopic)+"$")
		}
		maxAge := cfg.MetadataMaxAge
		if maxAge <= 0 {
			maxAge = regexMetadataMaxAge
		}
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeExcludeTopics(exclude...), kgo.MetadataMaxAge(maxAge), kgo.MetadataMinAge(min(maxAge, 5*time.Second)))
	}
	return append(opts, kgo.ConsumeTopics(topics...)), nil
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

// checkDeadLetterTopic makes sure the DLQ topic exists before anything is
// consumed: a subscription that could not dead-letter must not start. Kafka
// being unreachable is not the topic's fault, so that is retried.
func (c *Consumer) checkDeadLetterTopic(ctx context.Context) error {
	if c.dlq == nil {
		return nil
	}
	c.state.set("checking dead-letter topic", "")
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		err := c.dlq.CheckTopic(ctx, c.cfg.DeadLetterTopic)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrUnavailable) {
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

// ConsumerStatus is a subscription's state for the detailed health body.
type ConsumerStatus struct {
	Name       string            `json:"name"`
	Group      string            `json:"group"`
	State      string            `json:"state"`
	LastError  string            `json:"last_error,omitempty"`
	Partitions []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one assigned partition's delivery state.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the last offset this member committed, -1 for none yet.
	Committed int64 `json:"committed"`
	Queued    int   `json:"queued"`
	Paused    bool  `json:"paused"`
	// FailingAttempts counts the failed attempts of the record at the head
	// of the partition: non-zero means the partition is stuck behind it.
	FailingAttempts int `json:"failing_attempts"`
}

// Status reports the subscription's state.
func (c *Consumer) Status() ConsumerStatus {
	state, lastErr := c.state.get()
	st := ConsumerStatus{Name: c.cfg.Name, Group: c.cfg.Group, State: state, LastError: lastErr, Partitions: []PartitionStatus{}}
	c.workersMu.Lock()
	for _, w := range c.workers {
		st.Partitions = append(st.Partitions, w.status())
	}
	c.workersMu.Unlock()
	slices.SortFunc(st.Partitions, func(a, b PartitionStatus) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return st
}

// stateBox holds a status string behind a lock.
type stateBox struct {
	mu           sync.Mutex
	state, error string
}

func (s *stateBox) set(state, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.error = state, err
}

// stopped marks the end, keeping the last error (why it failed to start).
func (s *stateBox) stopped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = "stopped"
}

func (s *stateBox) get() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.error
}
