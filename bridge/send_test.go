package bridge

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// TestSendKeepsCallOrder: records of successive Send calls reach a partition
// in call order, without the caller waiting in between.
func TestSendKeepsCallOrder(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 200
	pendings := make([]*Pending, n)
	for i := range n {
		// Keyed records go where murmur2 sends them; all calls share one
		// partition through an explicit one.
		pd, err := p.Send(ctx, testTopic, []Record{{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i)), Partition: 2, HasPartition: true}})
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		pendings[i] = pd
	}
	last := int64(-1)
	for i, pd := range pendings {
		res, err := pd.Wait(ctx)
		if err != nil {
			t.Fatalf("Wait %d: %v", i, err)
		}
		if !isClosed(pd.Done()) {
			t.Fatalf("Wait %d returned before Done closed", i)
		}
		if res[0].Err != nil || res[0].Partition != 2 || res[0].Offset <= last {
			t.Fatalf("Send %d: %+v after offset %d", i, res[0], last)
		}
		last = res[0].Offset
	}
	for i, r := range bridgetest.ReadRecords(t, c.ListenAddrs(), testTopic, n) {
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record at offset %d is %q, want %d", r.Offset, r.Value, i)
		}
	}
}

func TestSendValidationAndLookupErrors(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.Send(ctx, testTopic, []Record{{Partition: testPartitions, HasPartition: true}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Send to partition %d of %d: %v, want ErrInvalid", testPartitions, testPartitions, err)
	}
	if _, err := p.Send(ctx, "missing", []Record{{}}); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Send to a missing topic: %v, want ErrTopicNotFound", err)
	}
}

func TestPendingWait(t *testing.T) {
	want := []Result{{Partition: 1, Offset: 7}, {Err: ErrBufferFull}}
	pd := NewPending(want)
	if !isClosed(pd.Done()) {
		t.Fatal("NewPending with all results is not done")
	}
	got, err := pd.Wait(context.Background())
	if err != nil || len(got) != 2 || got[0].Offset != 7 || !errors.Is(got[1].Err, ErrBufferFull) {
		t.Fatalf("Wait = %+v, %v", got, err)
	}
	if !isClosed(NewPending(nil).Done()) {
		t.Fatal("an empty Pending is not done")
	}

	open := newPending(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := open.Wait(ctx); !errors.Is(err, ErrDeadline) {
		t.Fatalf("Wait with an ended context: %v, want ErrDeadline", err)
	}
}

// TestSendWaitsForBufferRoom: a stream's Send applies back-pressure when
// the producer's buffer is full instead of failing records (which Publish
// does, fail-fast). Regression test for streams answering
// RESOURCE_EXHAUSTED under load.
func TestSendWaitsForBufferRoom(t *testing.T) {
	c := newCluster(t)
	held, release := holdProduce(t, c)
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.MaxBufferedRecords = 2
	p := newTestProducer(t, cfg)

	first, err := p.Send(context.Background(), testTopic, []Record{{Value: []byte("0"), Partition: 0, HasPartition: true}})
	if err != nil {
		t.Fatal(err)
	}
	<-held
	sent := make(chan *Pending, 1)
	go func() {
		// Five records through a buffer of two: Send must wait, not fail.
		records := make([]Record, 5)
		for i := range records {
			records[i] = Record{Value: []byte{byte('1' + i)}, Partition: 0, HasPartition: true}
		}
		pending, err := p.Send(context.Background(), testTopic, records)
		if err != nil {
			t.Errorf("Send: %v", err)
		}
		sent <- pending
	}()
	release()
	pending := <-sent
	for _, pd := range []*Pending{first, pending} {
		results, err := pd.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range results {
			if r.Err != nil {
				t.Errorf("record %d failed: %v", i, r.Err)
			}
		}
	}
	got := bridgetest.ReadRecords(t, c.ListenAddrs(), testTopic, 6)
	for i, r := range got {
		if want := string(rune('0' + i)); string(r.Value) != want {
			t.Errorf("offset %d holds %q, want %q: order broken", r.Offset, r.Value, want)
		}
	}
}

// TestManySmallRecordsFitKafkaBatchLimit: batches must stay under Kafka's
// message.max.bytes, or a publish of many small records fails as a whole
// with MESSAGE_TOO_LARGE. Regression test: the batch limit was 1 MiB+64 KiB.
func TestManySmallRecordsFitKafkaBatchLimit(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs())) // compression none
	value := bytes.Repeat([]byte("x"), 2000)
	records := make([]Record, 600)
	for i := range records {
		records[i] = Record{Value: value, Partition: 0, HasPartition: true}
	}
	results, err := p.Publish(context.Background(), testTopic, records)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("record %d: %v", i, r.Err)
		}
	}
}
