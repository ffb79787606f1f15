package bridge

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bridge/bridgetest"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startMonitor runs a KafkaMonitor on a client of brokers until the end of
// the test, and waits for Run to return then.
func startMonitor(t *testing.T, brokers []string, interval time.Duration) *KafkaMonitor {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewKafkaMonitor(cl, interval, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		cl.Close()
	})
	return m
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func waitReady(t *testing.T, m *KafkaMonitor) {
	t.Helper()
	select {
	case <-m.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("monitor not ready; status %+v", m.Status())
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestKafkaMonitorReady: ready once Kafka answers, and a later outage shows
// in Status and the metric but does not take readiness back.
func TestKafkaMonitorReady(t *testing.T) {
	// Slow: a closed kfake leaves connections open and silent, so the
	// outage shows only when the monitor's 5 s check timeout passes.
	t.Parallel()
	c := newCluster(t, kfake.NumBrokers(2))
	m := startMonitor(t, c.ListenAddrs(), 20*time.Millisecond)
	waitReady(t, m)
	st := m.Status()
	if !st.Reachable || st.Brokers != 2 || st.LastSuccess.IsZero() || st.LastError != "" {
		t.Fatalf("status after first answer: %+v", st)
	}
	if v := gaugeValue(t, m.up); v != 1 {
		t.Fatalf("kbridge_kafka_up = %v, want 1", v)
	}

	c.Close()
	waitFor(t, "the outage to show in Status", func() bool { return !m.Status().Reachable })
	st = m.Status()
	if st.LastError == "" || st.LastSuccess.IsZero() {
		t.Fatalf("status during outage: %+v", st)
	}
	if v := gaugeValue(t, m.up); v != 0 {
		t.Fatalf("kbridge_kafka_up = %v during outage, want 0", v)
	}
	if !isClosed(m.Ready()) {
		t.Fatal("an outage after start took readiness back")
	}
}

// TestKafkaMonitorRecovers: Kafka down at start keeps the monitor not ready
// with the error in Status; a broker appearing on that address makes it
// ready.
func TestKafkaMonitorRecovers(t *testing.T) {
	addr := bridgetest.ClosedAddr(t)
	m := startMonitor(t, []string{addr}, time.Second)
	waitFor(t, "the first failed check", func() bool { return m.Status().LastError != "" })
	st := m.Status()
	if st.Reachable || !st.LastSuccess.IsZero() || st.LastCheck.IsZero() {
		t.Fatalf("status with Kafka down: %+v", st)
	}
	if isClosed(m.Ready()) {
		t.Fatal("ready without Kafka")
	}

	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	// The port was free a moment ago; another process taking it meanwhile
	// would fail here, not hang.
	newCluster(t, kfake.Ports(port))
	waitReady(t, m)
	if st := m.Status(); !st.Reachable || st.LastError != "" {
		t.Fatalf("status after recovery: %+v", st)
	}
}

func TestNewKafkaMonitorRegistersOnce(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reg := prometheus.NewRegistry()
	if _, err := NewKafkaMonitor(cl, time.Second, nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKafkaMonitor(cl, time.Second, nil, reg); err == nil {
		t.Fatal("a second monitor registered the same metric")
	}
}
