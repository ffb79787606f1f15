package bridge

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// consumerMetrics are one subscription's metrics. Every subscription
// registers the same names with its own constant subscription label, so
// several live side by side in one registry.
type consumerMetrics struct {
	attempts     *prometheus.CounterVec // by outcome
	attemptTime  prometheus.Histogram
	acked        prometheus.Counter
	deadLettered prometheus.Counter
	blocked      prometheus.Counter
	commits      *prometheus.CounterVec // by result
	rebalances   *prometheus.CounterVec // by event
	fetchErrors  prometheus.Counter
	offsetResets prometheus.Counter
	assigned     prometheus.Gauge
	paused       prometheus.Gauge
	failing      *prometheus.GaugeVec // by topic, partition
	batchEvents  prometheus.Histogram

	outcomes map[OutcomeKind]prometheus.Counter // attempts by kind, resolved once
}

func newConsumerMetrics(subscription string, reg prometheus.Registerer) (*consumerMetrics, error) {
	m := &consumerMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbridge_webhook_attempts_total",
			Help: "Webhook attempts by outcome: acked, permanent, retryable, unreachable, cancelled.",
		}, []string{"outcome"}),
		attemptTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kbridge_webhook_attempt_duration_seconds",
			Help:    "Time from sending a webhook request to its reply or failure.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbridge_records_delivered_total",
			Help: "Records the app acknowledged with a 2xx.",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbridge_records_dead_lettered_total",
			Help: "Records written to the dead-letter topic (and then counted as done).",
		}),
		blocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbridge_records_blocked_total",
			Help: "Records that exhausted their retries under on_exhausted: block (they are retried forever).",
		}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbridge_offset_commits_total",
			Help: "Partition offset commits, by result (ok, error).",
		}, []string{"result"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbridge_rebalance_events_total",
			Help: "Group rebalance events that changed this member's partitions: assigned, revoked, lost.",
		}, []string{"event"}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbridge_fetch_errors_total",
			Help: "Errors returned by fetches (franz-go retries them).",
		}),
		offsetResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbridge_offset_resets_total",
			Help: "Partitions whose position was lost (offset out of range, data loss) and reset to the earliest offset.",
		}),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kbridge_partitions_assigned",
			Help: "Partitions this member delivers.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kbridge_partitions_paused",
			Help: "Partitions whose fetches are paused because their worker is behind.",
		}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kbridge_partition_failing_attempts",
			Help: "Failed attempts of the record a partition waits on; non-zero means the partition is stuck behind it.",
		}, []string{"topic", "partition"}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kbridge_webhook_batch_events",
			Help:    "Events per batch request (batch delivery only).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
	}
	m.outcomes = make(map[OutcomeKind]prometheus.Counter)
	for _, k := range []OutcomeKind{Acked, Permanent, Retryable, Unreachable, Cancelled} {
		m.outcomes[k] = m.attempts.WithLabelValues(k.String())
	}
	m.commits.WithLabelValues("ok")
	m.commits.WithLabelValues("error")
	if reg == nil {
		return m, nil
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"subscription": subscription}, reg)
	for _, c := range []prometheus.Collector{m.attempts, m.attemptTime, m.acked, m.deadLettered, m.blocked,
		m.commits, m.rebalances, m.fetchErrors, m.offsetResets, m.assigned, m.paused, m.failing, m.batchEvents} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register consumer metrics: %w", err)
		}
	}
	return m, nil
}

func (m *consumerMetrics) observe(o Outcome, d time.Duration) {
	if c, ok := m.outcomes[o.Kind]; ok {
		c.Inc()
	}
	if o.Kind != Cancelled {
		m.attemptTime.Observe(d.Seconds())
	}
}
