package bridge

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bridge/bridgetest"

	"github.com/twmb/franz-go/pkg/kerr"
)

// publishOne publishes one record with a generous deadline and returns the
// call's error or the record's.
func publishOne(t *testing.T, p *Producer, r Record) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.Publish(ctx, testTopic, []Record{r})
	if err != nil {
		return Result{}, err
	}
	return res[0], res[0].Err
}

// TestPublishDeadlineDetached holds a produce request at the broker: the
// impatient caller gets ErrDeadline, but its record is not cancelled — it is
// written once the broker answers, and a patient caller whose record shares
// the partition succeeds.
func TestPublishDeadlineDetached(t *testing.T) {
	c := newCluster(t)
	p := newTestProducer(t, testProducerConfig(c.ListenAddrs()))
	// Warm up: topic lookup cached, producer ID and connections in place, so
	// the short deadline below is spent waiting on the held produce only.
	if _, err := publishOne(t, p, Record{Value: []byte("warm"), Partition: 0, HasPartition: true}); err != nil {
		t.Fatal(err)
	}
	held, release := holdProduce(t, c)

	// Caller A gives up after 50 ms. The broker holds its record until
	// after A has returned, so A cannot have seen an acknowledgement.
	ctxA, cancelA := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelA()
	resA, errA := p.Publish(ctxA, testTopic, []Record{{Value: []byte("A"), Partition: 0, HasPartition: true}})
	<-held // A's record reaches the broker whether or not A still waits
	if !errors.Is(errA, ErrDeadline) || resA != nil {
		t.Fatalf("caller A: %v, %v; want ErrDeadline and no results", resA, errA)
	}

	// Caller B publishes to the same partition while A's request is held,
	// with no deadline of its own.
	doneB := make(chan error, 1)
	var resB []Result
	go func() {
		var err error
		resB, err = p.Publish(context.Background(), testTopic, []Record{{Value: []byte("B"), Partition: 0, HasPartition: true}})
		if err == nil {
			err = resB[0].Err
		}
		doneB <- err
	}()
	release()
	if err := <-doneB; err != nil {
		t.Fatalf("caller B: %v", err)
	}

	// A's record was written (outcome unknown ≠ failed), before B's.
	got := bridgetest.ReadRecords(t, c.ListenAddrs(), testTopic, 3)
	var offA, offB int64 = -1, -1
	for _, r := range got {
		switch string(r.Value) {
		case "A":
			offA = r.Offset
		case "B":
			offB = r.Offset
		}
	}
	if offA < 0 {
		t.Fatal("caller A's record was not written")
	}
	if offB != resB[0].Offset || offA >= offB {
		t.Fatalf("A at %d, B at %d (B reported %d)", offA, offB, resB[0].Offset)
	}
}

// TestPublishBufferFull fills a two-record buffer while the broker holds the
// produce, then checks a further record fails at once with ErrBufferFull
// instead of waiting for room.
func TestPublishBufferFull(t *testing.T) {
	c := newCluster(t)
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.MaxBufferedRecords = 2
	p := newTestProducer(t, cfg)
	if _, err := publishOne(t, p, Record{Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	held, release := holdProduce(t, c)

	type outcome struct {
		res []Result
		err error
	}
	first := make(chan outcome, 1)
	go func() {
		res, err := p.Publish(context.Background(), testTopic, []Record{{Value: []byte("1")}, {Value: []byte("2")}})
		first <- outcome{res, err}
	}()
	<-held // the buffer now holds both records until the broker answers

	// The broker stays held until this call returns: a publish that waited
	// for room would end in ErrDeadline here.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.Publish(ctx, testTopic, []Record{{Value: []byte("3")}, {Value: []byte("4")}})
	if err != nil {
		t.Fatalf("Publish into a full buffer: %v, want per-record ErrBufferFull", err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, ErrBufferFull) {
			t.Errorf("records[%d]: %v, want ErrBufferFull", i, r.Err)
		}
	}
	if n := counterValue(t, p.records.WithLabelValues("buffer_full")); n != 2 {
		t.Errorf("buffer_full counter = %v, want 2", n)
	}

	release()
	o := <-first
	if o.err != nil {
		t.Fatalf("first publish: %v", o.err)
	}
	for i, r := range o.res {
		if r.Err != nil {
			t.Errorf("first publish records[%d]: %v", i, r.Err)
		}
	}
}

// TestPublishTimeoutWithoutDeadline: a caller without a deadline is bounded
// by PublishTimeout, and that passing while Kafka holds the record means
// Kafka did not answer (ErrUnavailable), not that the caller gave up.
func TestPublishTimeoutWithoutDeadline(t *testing.T) {
	t.Parallel() // slow: waits out the publish timeout
	c := newCluster(t)
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.PublishTimeout = time.Second
	p := newTestProducer(t, cfg)
	if _, err := publishOne(t, p, Record{Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	_, release := holdProduce(t, c)

	res, err := p.Publish(context.Background(), testTopic, []Record{{Value: []byte("held")}})
	if err == nil {
		err = res[0].Err // the client may have given up on the record first
	}
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDeadline) {
		t.Fatalf("Publish without deadline while Kafka holds the record: %v, want ErrUnavailable", err)
	}
	release()
}

// TestPublishRecordLifeBounded: while the broker keeps refusing a record with
// a retriable error, the client fails it once PublishTimeout has passed, even
// for a caller willing to wait longer. franz-go re-checks the record when it
// retries, after its 5 s metadata min age, so this test takes about 5 s.
func TestPublishRecordLifeBounded(t *testing.T) {
	t.Parallel() // slow: waits out franz-go's metadata min age
	c := newCluster(t)
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.PublishTimeout = time.Second
	p := newTestProducer(t, cfg)
	if _, err := publishOne(t, p, Record{Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	failProduce(c, kerr.NotEnoughReplicas.Code)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.Publish(ctx, testTopic, []Record{{Value: []byte("refused")}})
	if err != nil {
		t.Fatalf("Publish: %v, want a per-record error", err)
	}
	if !errors.Is(res[0].Err, ErrUnavailable) {
		t.Fatalf("record refused for longer than PublishTimeout: %v, want ErrUnavailable", res[0].Err)
	}
}

// TestPublishBrokerUnreachable points the producer at a port nothing listens
// on; the refused connection fails the topic lookup at once.
func TestPublishBrokerUnreachable(t *testing.T) {
	cfg := testProducerConfig([]string{bridgetest.ClosedAddr(t)})
	cfg.PublishTimeout = 2 * time.Second
	p := newTestProducer(t, cfg)

	// No caller deadline: bounded by PublishTimeout, and reported as Kafka
	// being unavailable, not as the caller's deadline.
	_, err := p.Publish(context.Background(), testTopic, []Record{{Value: []byte("v")}})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Publish without deadline: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = p.Publish(ctx, testTopic, []Record{{Value: []byte("v")}})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Publish with a deadline: %v, want ErrUnavailable", err)
	}
}

// TestPublishBrokerSilent points the producer at a listener that accepts
// connections and never answers: Kafka is unreachable, but nothing says so
// quickly.
func TestPublishBrokerSilent(t *testing.T) {
	t.Parallel() // slow: waits out the topic lookup timeout
	if testing.Short() {
		t.Skip("waits for the 5 s topic lookup timeout")
	}
	cfg := testProducerConfig([]string{silentBroker(t)})
	cfg.PublishTimeout = time.Second
	p := newTestProducer(t, cfg)

	// No caller deadline: PublishTimeout passes first, and that means Kafka
	// did not answer, not that the caller gave up.
	_, err := p.Publish(context.Background(), testTopic, []Record{{Value: []byte("v")}})
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDeadline) {
		t.Errorf("Publish without deadline: %v, want ErrUnavailable", err)
	}
	// The caller's own short deadline is the caller's.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = p.Publish(ctx, testTopic, []Record{{Value: []byte("v")}})
	if !errors.Is(err, ErrDeadline) {
		t.Errorf("Publish with a 100 ms deadline: %v, want ErrDeadline", err)
	}
	// A caller deadline past the lookup's own timeout (5 s): the lookup
	// gives up first and says why.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = p.Publish(ctx, testTopic, []Record{{Value: []byte("v")}})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Publish with a 20 s deadline: %v, want ErrUnavailable", err)
	}
}

func TestPublishBrokerErrors(t *testing.T) {
	tests := []struct {
		name string
		code *kerr.Error
		kind error
	}{
		{"invalid record", kerr.InvalidRecord, ErrInvalid},
		{"message too large", kerr.MessageTooLarge, ErrInvalid},
		{"invalid timestamp", kerr.InvalidTimestamp, ErrInvalid},
		{"policy violation", kerr.PolicyViolation, ErrRejected},
		{"topic authorization", kerr.TopicAuthorizationFailed, ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			cfg := testProducerConfig(c.ListenAddrs())
			p := newTestProducer(t, cfg)
			if _, err := publishOne(t, p, Record{Value: []byte("warm")}); err != nil {
				t.Fatal(err)
			}
			failProduce(c, tt.code.Code)
			_, err := publishOne(t, p, Record{Key: []byte("k"), Value: []byte("v")})
			var ke *KafkaError
			if !errors.As(err, &ke) {
				t.Fatalf("record error %v (%T), want a *KafkaError", err, err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("record error %v, want kind %v", err, tt.kind)
			}
			if ke.Code != tt.code.Message {
				t.Errorf("KafkaError.Code = %q, want %q", ke.Code, tt.code.Message)
			}
			if !errors.Is(err, tt.code) {
				t.Errorf("KafkaError hides the client's error %v", tt.code)
			}
		})
	}
}

// TestPublishRetriesTransientBrokerError answers one produce with a retriable
// error; the client retries and the record is written once. franz-go retries
// only after refreshing metadata, which it does at most every 5 s
// (MetadataMinAge), so this test takes about 5 s and needs a longer publish
// timeout than the other tests.
func TestPublishRetriesTransientBrokerError(t *testing.T) {
	t.Parallel() // slow: waits out franz-go's metadata min age
	c := newCluster(t)
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.PublishTimeout = 30 * time.Second
	p := newTestProducer(t, cfg)
	if _, err := publishOne(t, p, Record{Value: []byte("warm"), Partition: 1, HasPartition: true}); err != nil {
		t.Fatal(err)
	}
	failProduceOnce(c, kerr.NotEnoughReplicas.Code)
	res, err := p.Publish(context.Background(), testTopic, []Record{{Value: []byte("retried"), Partition: 1, HasPartition: true}})
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	if res[0].Partition != 1 || res[0].Offset != 1 {
		t.Fatalf("written at %d/%d, want 1/1", res[0].Partition, res[0].Offset)
	}
	if off := endOffsets(t, newAdmin(t, c.ListenAddrs()), testTopic)[1]; off != 2 {
		t.Fatalf("partition 1 ends at %d, want 2 (no duplicate)", off)
	}
}

func TestClassifyKafka(t *testing.T) {
	tests := []struct {
		err  error
		kind error
	}{
		{kerr.UnknownTopicOrPartition, ErrTopicNotFound},
		{kerr.ClusterAuthorizationFailed, ErrPermission},
		{kerr.RecordListTooLarge, ErrInvalid},
		{kerr.NotLeaderForPartition, ErrUnavailable},
		{kerr.InvalidRequiredAcks, ErrRejected},
	}
	for _, tt := range tests {
		err := classifyKafka(tt.err)
		var ke *KafkaError
		if !errors.As(err, &ke) || !errors.Is(err, tt.kind) {
			t.Errorf("classifyKafka(%v) = %v, want a KafkaError of kind %v", tt.err, err, tt.kind)
		}
	}
	if err := classifyKafka(errors.New("boom")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("classifyKafka(non-Kafka error) = %v, want ErrUnavailable", err)
	}
}
