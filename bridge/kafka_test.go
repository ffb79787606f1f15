package bridge

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Test helpers shared by the producer, health and benchmark tests: an
// in-process kfake cluster, a producer on it, and readers of what landed.
// Unlike bridgetest, which may point at a real broker, these always use
// kfake: most of the tests below need its fault injection.

// testTopic is seeded with testPartitions partitions on every test cluster.
const (
	testTopic      = "t"
	testPartitions = 3
)

// newCluster starts a one-broker kfake cluster with testTopic, closed at the
// end of the test.
func newCluster(tb testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	tb.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, testTopic)}, opts...)...)
	if err != nil {
		tb.Fatalf("start kfake: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

func testProducerConfig(brokers []string) ProducerConfig {
	return ProducerConfig{
		Client:             ClientConfig{Brokers: brokers, ClientID: "test"},
		PublishTimeout:     5 * time.Second,
		MaxRecordBytes:     1 << 20,
		Partitioner:        "murmur2",
		Acks:               "all",
		Compression:        "none",
		MaxBufferedRecords: 1000,
	}
}

// newTestProducer builds a producer with a fresh metrics registry, closed at
// the end of the test (before the cluster, as cleanups run last-in first-out).
func newTestProducer(tb testing.TB, cfg ProducerConfig) *Producer {
	tb.Helper()
	p, err := NewProducer(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		tb.Fatalf("NewProducer: %v", err)
	}
	tb.Cleanup(p.Close)
	return p
}

// newAdmin returns an admin client on brokers, closed at the end of the test.
func newAdmin(tb testing.TB, brokers []string) *kadm.Client {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// endOffsets returns the end offset of each of topic's partitions.
func endOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	if err := offs.Error(); err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	m := make(map[int32]int64)
	offs.Each(func(o kadm.ListedOffset) { m[o.Partition] = o.Offset })
	return m
}

// silentBroker returns the address of a listener that accepts connections
// and never answers, like a broker behind a black hole.
func silentBroker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return // listener closed
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// holdProduce makes the cluster hold the first produce request it sees until
// the returned release is called (also called at cleanup); held is closed
// once that request arrived. Later produce requests pass through, though on
// the producer's single connection their responses queue behind the held one.
func holdProduce(t *testing.T, c *kfake.Cluster) (held <-chan struct{}, release func()) {
	t.Helper()
	heldc, releasec := make(chan struct{}), make(chan struct{})
	var seen atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		// A control function runs again for a request arriving while it
		// sleeps; only the first request is held.
		if seen.Swap(true) {
			return nil, nil, false
		}
		close(heldc)
		c.SleepControl(func() { <-releasec })
		return nil, nil, false // now let the cluster handle it normally
	})
	release = sync.OnceFunc(func() { close(releasec) })
	t.Cleanup(release)
	return heldc, release
}

// failProduce makes the cluster answer every produce request with code for
// all its partitions.
func failProduce(c *kfake.Cluster, code int16) {
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return produceErrorResponse(kreq.(*kmsg.ProduceRequest), code), nil, true
	})
}

// failProduceOnce answers the next produce request with code; later ones are
// handled normally.
func failProduceOnce(c *kfake.Cluster, code int16) {
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		return produceErrorResponse(kreq.(*kmsg.ProduceRequest), code), nil, true
	})
}

func produceErrorResponse(req *kmsg.ProduceRequest, code int16) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
