package server

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// The back-pressure tests need records that stay in flight: a Pending that is
// not done. Only the real producer makes those, so these tests run
// bridge.Producer against an in-process kfake broker that holds every
// Produce request until released, and count what is in flight around it.

// countingPublisher counts the records handed to Send whose results are not
// all in yet.
type countingPublisher struct {
	*bridge.Producer
	mu      sync.Mutex
	sends   int
	pending []sentRecords
	most    int
}

type sentRecords struct {
	n int
	p *bridge.Pending
}

func (c *countingPublisher) Send(ctx context.Context, topic string, records []bridge.Record) (*bridge.Pending, error) {
	p, err := c.Producer.Send(ctx, topic, records)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sends++
	if err != nil {
		return p, err
	}
	// Records whose Pending is done no longer count. One that finishes
	// during this check only lowers the count, so it never overstates.
	live, n := c.pending[:0], len(records)
	for _, s := range c.pending {
		select {
		case <-s.p.Done():
		default:
			live, n = append(live, s), n+s.n
		}
	}
	c.pending = append(live, sentRecords{len(records), p})
	c.most = max(c.most, n)
	return p, nil
}

func (c *countingPublisher) counts() (sends, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sends, c.most
}

// newHeldProducer returns a producer on a kfake broker with topic "t", warmed
// up, and a hold function: after hold, Produce requests wait until the
// returned release is called.
func newHeldProducer(t *testing.T) (pub *countingPublisher, hold func() (release func())) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	prod, err := bridge.NewProducer(bridge.ProducerConfig{
		Client:             bridge.ClientConfig{Brokers: cluster.ListenAddrs()},
		PublishTimeout:     30 * time.Second,
		MaxRecordBytes:     1 << 20,
		Partitioner:        "murmur2",
		Acks:               "all",
		Compression:        "none",
		MaxBufferedRecords: 10_000,
	}, nil, nil)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(prod.Close)
	if _, err := prod.Publish(t.Context(), "t", []bridge.Record{{Value: []byte("warm-up")}}); err != nil {
		t.Fatalf("warm-up publish: %v", err)
	}
	hold = func() func() {
		gate := make(chan struct{})
		cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			cluster.SleepControl(func() { <-gate })
			return nil, nil, false // then handle it as usual
		})
		var once sync.Once
		release := func() { once.Do(func() { close(gate) }) }
		t.Cleanup(release)
		return release
	}
	return &countingPublisher{Producer: prod}, hold
}

// TestStreamBackPressure: with Kafka not answering, a stream keeps at most
// streamMaxInFlight records in flight; the client can still send (the
// server just stops reading), and once Kafka answers every request
// completes without error.
func TestStreamBackPressure(t *testing.T) {
	const maxInFlight, requests = 10, 200
	tests := []struct {
		name     string
		perReq   int
		wantHeld int // requests handed to the producer while Kafka is held
	}{
		{"one record each", 1, 10},
		{"three records each", 3, 3}, // 9 of 10: a fourth would exceed it
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, hold := newHeldProducer(t)
			h := newHarness(t, withPublisher(pub), withStreamMaxInFlight(maxInFlight))
			release := hold()

			reqs := make([]*kbridgev1.PublishStreamRequest, requests)
			for i := range reqs {
				reqs[i] = streamRequest(strconv.Itoa(i))
				for range tt.perReq {
					reqs[i].Records = append(reqs[i].Records, &kbridgev1.Record{Value: proto.String(strconv.Itoa(i))})
				}
			}
			stream, err := h.client.PublishStream(t.Context())
			if err != nil {
				t.Fatalf("open stream: %v", err)
			}
			sent := sendAll(stream, reqs)
			// The client's sends all succeed although the server reads only
			// what its budget allows (HTTP/2 buffers the rest).
			if err := <-sent; err != nil {
				t.Fatalf("send: %v", err)
			}
			waitFor(t, "the budget to be spent", func() bool {
				sends, _ := pub.counts()
				return sends >= tt.wantHeld
			})
			sends, most := pub.counts()
			if sends != tt.wantHeld || most != tt.wantHeld*tt.perReq {
				t.Fatalf("while Kafka is held: %d requests sent with at most %d records in flight, want %d requests and %d records",
					sends, most, tt.wantHeld, tt.wantHeld*tt.perReq)
			}

			release()
			resps := recvAll(t, stream)
			if len(resps) != requests {
				t.Fatalf("got %d responses, want %d", len(resps), requests)
			}
			for i, r := range resps {
				if r.GetRequestId() != strconv.Itoa(i) || r.GetError() != nil || len(r.GetResults()) != tt.perReq {
					t.Fatalf("response %d = %v, want %d results for request %d", i, r, tt.perReq, i)
				}
			}
			if sends, most := pub.counts(); sends != requests || most > maxInFlight {
				t.Errorf("in all: %d requests, at most %d records in flight; want %d, at most %d", sends, most, requests, maxInFlight)
			}
		})
	}
}

// TestStreamDisconnectWhileHeld: a client that goes away while its records
// wait for Kafka ends the handler and its goroutines.
func TestStreamDisconnectWhileHeld(t *testing.T) {
	pub, hold := newHeldProducer(t)
	h := newHarness(t, withPublisher(pub), withStreamMaxInFlight(10))
	release := hold()

	ctx, cancel := context.WithCancel(t.Context())
	stream, err := h.client.PublishStream(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	reqs := make([]*kbridgev1.PublishStreamRequest, 50)
	for i := range reqs {
		reqs[i] = streamRequest(strconv.Itoa(i), &kbridgev1.Record{Value: proto.String("v")})
	}
	sent := sendAll(stream, reqs)
	waitFor(t, "the budget to be spent", func() bool {
		sends, _ := pub.counts()
		return sends >= 10
	})
	cancel()
	<-sent
	waitFor(t, "the stream handler to return", func() bool { return callCount(t, h, "PublishStream") == 1 })
	waitNoServerGoroutines(t)

	release()
	if _, err := h.client.Publish(t.Context(), oneRecord("t")); err != nil {
		t.Fatalf("publish after the disconnect: %v", err)
	}
}
