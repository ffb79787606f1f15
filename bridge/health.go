package bridge

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaMonitor decides readiness: kbridge is ready once Kafka has answered a
// metadata request since start. Later outages do not flip readiness (that
// would pull the app's pod out of its Service for a Kafka problem the app
// cannot fix); they show in Status and in the kbridge_kafka_up metric.
type KafkaMonitor struct {
	client   *kgo.Client
	log      *slog.Logger
	interval time.Duration
	up       prometheus.Gauge

	ready chan struct{} // closed on the first answer
	once  sync.Once

	mu     sync.Mutex
	status KafkaStatus
}

// KafkaStatus is the monitor's latest view, for the detailed health body.
type KafkaStatus struct {
	Reachable   bool      `json:"reachable"`
	Brokers     int       `json:"brokers"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastCheck   time.Time `json:"last_check,omitzero"`
}

// NewKafkaMonitor watches Kafka through client. interval is the time between
// checks once Kafka has answered; before that it retries faster.
func NewKafkaMonitor(client *kgo.Client, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) (*KafkaMonitor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &KafkaMonitor{
		client:   client,
		log:      log,
		interval: interval,
		ready:    make(chan struct{}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kbridge_kafka_up",
			Help: "1 if the last metadata request to Kafka succeeded, else 0.",
		}),
	}
	if reg != nil {
		if err := reg.Register(m.up); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Ready is closed once Kafka has answered.
func (m *KafkaMonitor) Ready() <-chan struct{} { return m.ready }

// Status returns the latest check's outcome.
func (m *KafkaMonitor) Status() KafkaStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Run checks Kafka until ctx ends: at once, then every 250 ms (growing to 5 s)
// until the first answer, then every interval.
func (m *KafkaMonitor) Run(ctx context.Context) error {
	wait := 250 * time.Millisecond
	warned := time.Time{}
	for {
		err := m.check(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			m.once.Do(func() {
				close(m.ready)
				m.log.Info("kafka answered; ready", "brokers", m.Status().Brokers)
			})
			wait = m.interval
		case !m.isReady():
			// Say clearly, but not on every retry, why kbridge is not ready.
			if time.Since(warned) > 30*time.Second {
				m.log.Warn("kafka is not reachable yet; not ready, retrying", "error", err)
				warned = time.Now()
			}
			wait = min(wait*2, 5*time.Second)
		default:
			m.log.Warn("kafka check failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (m *KafkaMonitor) isReady() bool {
	select {
	case <-m.ready:
		return true
	default:
		return false
	}
}

func (m *KafkaMonitor) check(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A request of its own, every time: kadm's BrokerMetadata answers from
	// the client's metadata cache once brokers are known, and so would
	// never notice an outage.
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // brokers only
	md, err := req.RequestWith(cctx, m.client)
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status.LastCheck = now
	if err != nil {
		m.status.Reachable = false
		m.status.LastError = err.Error()
		m.up.Set(0)
		return err
	}
	m.status = KafkaStatus{Reachable: true, Brokers: len(md.Brokers), LastSuccess: now, LastCheck: now}
	m.up.Set(1)
	return nil
}
