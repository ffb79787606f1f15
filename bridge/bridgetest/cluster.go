// Package bridgetest gives tests a Kafka cluster: franz-go's in-process kfake
// by default, or the real broker named by $KAFKA_BROKERS (as started by
// test/kafka/start.sh), so the same test runs against both.
package bridgetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokersEnv names the variable that points the tests at a real broker.
const BrokersEnv = "KAFKA_BROKERS"

// Cluster is a Kafka cluster for one test.
type Cluster struct {
	Brokers []string
	// Fake is the in-process broker, nil against a real one. Tests that
	// need fault injection (Fake.ControlKey) skip without it.
	Fake *kfake.Cluster
	adm  *kadm.Client
}

// NewCluster returns the real broker from $KAFKA_BROKERS, or a new kfake
// cluster closed at the end of the test.
func NewCluster(tb testing.TB, opts ...kfake.Opt) *Cluster {
	tb.Helper()
	c := &Cluster{}
	if env := os.Getenv(BrokersEnv); env != "" {
		c.Brokers = strings.Split(env, ",")
	} else {
		fake, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
		if err != nil {
			tb.Fatalf("start kfake: %v", err)
		}
		tb.Cleanup(fake.Close)
		c.Fake, c.Brokers = fake, fake.ListenAddrs()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		tb.Fatalf("admin client: %v", err)
	}
	tb.Cleanup(cl.Close)
	c.adm = kadm.NewClient(cl)
	return c
}

// RequireFake skips the test against a real broker.
func (c *Cluster) RequireFake(tb testing.TB, why string) *kfake.Cluster {
	tb.Helper()
	if c.Fake == nil {
		tb.Skipf("needs the in-process broker: %s", why)
	}
	return c.Fake
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// TopicName returns a topic name unique to this test and run, so tests can
// share a real broker.
func TopicName(tb testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeChars.ReplaceAllString(tb.Name(), "_")
	if len(name) > 200 {
		name = name[:200]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

// Topic creates a new unique topic with the given partitions.
func (c *Cluster) Topic(tb testing.TB, partitions int32) string {
	tb.Helper()
	topic := TopicName(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
	return topic
}

// Exists reports whether the topic exists.
func (c *Cluster) Exists(tb testing.TB, topic string) bool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	details, err := c.adm.ListTopics(ctx, topic)
	if err != nil {
		tb.Fatalf("list topics: %v", err)
	}
	d, ok := details[topic]
	return ok && d.Err == nil
}

// EndOffsets returns the topic's end offset summed over partitions: the
// number of records written (for topics without transactions).
func (c *Cluster) EndOffsets(tb testing.TB, topic string) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offsets, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		tb.Fatalf("list end offsets: %v", err)
	}
	var n int64
	offsets.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// ReadAll consumes the topic from the start until it has n records, and
// fails the test if they do not arrive within 30 s.
func (c *Cluster) ReadAll(tb testing.TB, topic string, n int) []*kgo.Record {
	tb.Helper()
	return ReadRecords(tb, c.Brokers, topic, n)
}

// ReadRecords consumes topic on brokers from the start (read_committed)
// until it has n records, and fails the test if they do not arrive within
// 30 s.
func ReadRecords(tb testing.TB, brokers []string, topic string, n int) []*kgo.Record {
	tb.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		tb.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("read %s: got %d of %d records before the deadline", topic, len(out), n)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			tb.Fatalf("read %s: %v", topic, errs[0].Err)
		}
		out = append(out, fetches.Records()...)
	}
	return out
}

// ClosedAddr returns a loopback address nothing listens on (the port was
// free a moment ago).
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}
