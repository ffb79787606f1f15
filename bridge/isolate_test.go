package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bridge/bridgetest"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// badMarker is the value of the record a real broker would refuse; kfake
// accepts anything, so refuseBatchesWith makes it refuse the batches that
// hold this value.
const badMarker = "refuse-me"

// batchRefusalLog is what refuseBatchesWith saw.
type batchRefusalLog struct {
	requests atomic.Int32 // produce requests seen, refused or not
	mu       sync.Mutex
	refused  [][]byte // the record batches of each refused request
	first    chan struct{}
	once     sync.Once
}

func (l *batchRefusalLog) refusedBatches() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// refuseBatchesWith makes the cluster answer every produce request holding a
// record with badMarker (the producer under test does not compress) with
// code for all its partitions, as a real broker refuses a batch for one
// record's sake; other produce requests are handled normally.
func refuseBatchesWith(c *kfake.Cluster, code int16) *batchRefusalLog {
	l := &batchRefusalLog{first: make(chan struct{})}
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		l.requests.Add(1)
		req := kreq.(*kmsg.ProduceRequest)
		var batches [][]byte
		bad := false
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				batches = append(batches, p.Records)
				bad = bad || bytes.Contains(p.Records, []byte(badMarker))
			}
		}
		if !bad {
			return nil, nil, false
		}
		l.mu.Lock()
		l.refused = append(l.refused, bytes.Join(batches, nil))
		l.mu.Unlock()
		l.once.Do(func() { close(l.first) })
		return produceErrorResponse(req, code), nil, true
	})
	return l
}

// newLingeringProducer returns a warmed-up producer whose linger puts the
// records of calls made in quick succession in one batch.
func newLingeringProducer(t *testing.T, c *kfake.Cluster) *Producer {
	t.Helper()
	cfg := testProducerConfig(c.ListenAddrs())
	cfg.Linger = 200 * time.Millisecond
	p := newTestProducer(t, cfg)
	if _, err := publishOne(t, p, Record{Value: []byte("warm"), Partition: 0, HasPartition: true}); err != nil {
		t.Fatal(err)
	}
	return p
}

// sendOne hands one record to p without waiting, as one caller.
func sendOne(t *testing.T, p *Producer, r Record) *Pending {
	t.Helper()
	pend, err := p.Send(context.Background(), testTopic, []Record{r})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return pend
}

func waitResults(t *testing.T, pend *Pending) []Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := pend.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return res
}

// valuesOn reads partition's records of testTopic, in offset order.
func valuesOn(t *testing.T, c *kfake.Cluster, partition int32, n int) []string {
	t.Helper()
	var vals []string
	for _, r := range bridgetest.ReadRecords(t, c.ListenAddrs(), testTopic, n) {
		if r.Partition == partition {
			vals = append(vals, string(r.Value))
		}
	}
	return vals
}

// TestPublishBatchMateRejectionIsolated is the regression test for one
// caller's bad record failing another caller's valid record: Kafka refuses
// a whole batch for one record (INVALID_TIMESTAMP, INVALID_RECORD, ...).
// The patient caller's record shares the refused batch and must still be
// written, once; the bad record fails alone, with a message naming the
// field where its cause is known.
func TestPublishBatchMateRejectionIsolated(t *testing.T) {
	future := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		code  *kerr.Error
		bad   Record
		field string // the ValidationError's field; "" for a plain KafkaError
	}{
		{"far-future timestamp", kerr.InvalidTimestamp, Record{Key: []byte("b"), Value: []byte(badMarker), Timestamp: future}, "timestamp"},
		{"keyless record on a compacted topic", kerr.InvalidRecord, Record{Value: []byte(badMarker)}, "key"},
		{"invalid record with a key", kerr.InvalidRecord, Record{Key: []byte("b"), Value: []byte(badMarker)}, ""},
		{"message too large for the topic", kerr.MessageTooLarge, Record{Key: []byte("b"), Value: []byte(badMarker)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			p := newLingeringProducer(t, c)
			refusals := refuseBatchesWith(c, tt.code.Code)

			tt.bad.Partition, tt.bad.HasPartition = 0, true
			patient := sendOne(t, p, Record{Key: []byte("k"), Value: []byte("patient"), Partition: 0, HasPartition: true})
			bad := sendOne(t, p, tt.bad)

			res := waitResults(t, patient)[0]
			if res.Err != nil {
				t.Fatalf("the patient caller's record: %v, want it written", res.Err)
			}
			badErr := waitResults(t, bad)[0].Err
			var ke *KafkaError
			if !errors.As(badErr, &ke) || ke.Code != tt.code.Message || !errors.Is(badErr, ErrInvalid) {
				t.Fatalf("the bad record: %v, want an invalid KafkaError %s", badErr, tt.code.Message)
			}
			var ve *ValidationError
			switch {
			case tt.field == "" && errors.As(badErr, &ve):
				t.Errorf("the bad record: %v, want no ValidationError", badErr)
			case tt.field != "" && (!errors.As(badErr, &ve) || ve.Field != tt.field || ve.Record != 0):
				t.Errorf("the bad record: %v, want a ValidationError of records[0].%s", badErr, tt.field)
			}

			// The test means something only if the records shared the
			// refused batch.
			if first := refusals.refusedBatches()[0]; !bytes.Contains(first, []byte("patient")) {
				t.Fatal("the first refused batch did not hold the patient caller's record")
			}
			if got := valuesOn(t, c, 0, 2); len(got) != 2 || got[1] != "patient" || res.Offset != 1 {
				t.Errorf("partition 0 holds %q, patient reported at %d; want [warm patient], at 1", got, res.Offset)
			}
			if n := counterValue(t, p.iso.resent); n < 2 {
				t.Errorf("isolated records counter = %v, want at least 2", n)
			}
			if n := counterValue(t, p.records.WithLabelValues("invalid")); n != 1 {
				t.Errorf("invalid records counter = %v, want 1", n)
			}
		})
	}
}

// TestIsolatedRecordsKeepOrder: one bad record among many in one refused
// batch, sent by three callers in turn to one partition. The others are
// written in the order they were sent, and the refused set is split in
// halves rather than sent again one record at a time.
func TestIsolatedRecordsKeepOrder(t *testing.T) {
	c := newCluster(t)
	p := newLingeringProducer(t, c)
	refusals := refuseBatchesWith(c, kerr.InvalidRecord.Code)

	var before, after []Record
	var want []string
	for i := range 50 {
		v := fmt.Sprintf("before-%02d", i)
		before = append(before, Record{Value: []byte(v), Partition: 0, HasPartition: true})
		want = append(want, v)
	}
	for i := range 50 {
		v := fmt.Sprintf("after-%02d", i)
		after = append(after, Record{Value: []byte(v), Partition: 0, HasPartition: true})
		want = append(want, v)
	}
	var pends []*Pending
	for _, recs := range [][]Record{before, {{Key: []byte("b"), Value: []byte(badMarker), Partition: 0, HasPartition: true}}, after} {
		pend, err := p.Send(context.Background(), testTopic, recs)
		if err != nil {
			t.Fatal(err)
		}
		pends = append(pends, pend)
	}
	for i, pend := range pends {
		for j, r := range waitResults(t, pend) {
			if bad := i == 1; bad != (r.Err != nil) {
				t.Errorf("send %d record %d: %v", i, j, r.Err)
			}
		}
	}
	got := valuesOn(t, c, 0, 1+len(want))
	if strings.Join(got[1:], " ") != strings.Join(want, " ") {
		t.Errorf("partition 0 holds\n%q\nwant\n%q", got[1:], want)
	}
	// 101 records, one bad: halving needs about 2·log2(101) ≈ 14 produce
	// requests; one record at a time would need 101.
	t.Logf("%d produce requests, %d refused", refusals.requests.Load(), len(refusals.refusedBatches()))
	if n := refusals.requests.Load(); n > 30 {
		t.Errorf("%d produce requests (%d refused) to settle 101 records", n, len(refusals.refusedBatches()))
	}
}

// TestRefusedTimestampLearned: once Kafka refused a far-future timestamp on
// a topic, a record as far off is refused before producing, where it cannot
// fail a batch; a timestamp nearer now is still produced.
func TestRefusedTimestampLearned(t *testing.T) {
	c := newCluster(t)
	p := newLingeringProducer(t, c)
	refusals := refuseBatchesWith(c, kerr.InvalidTimestamp.Code)
	future := time.Now().Add(48 * time.Hour)
	if _, err := publishOne(t, p, Record{Value: []byte(badMarker), Timestamp: future}); !errors.Is(err, kerr.InvalidTimestamp) {
		t.Fatalf("first far-future record: %v, want INVALID_TIMESTAMP from Kafka", err)
	}
	seen := refusals.requests.Load()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The same timestamp again: a little nearer now.
	_, err := p.Publish(ctx, testTopic, []Record{{Value: []byte("ok")}, {Value: []byte(badMarker), Timestamp: future}})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Record != 1 || ve.Field != "timestamp" || ve.Cause != nil {
		t.Fatalf("second far-future record: %v, want a ValidationError of records[1].timestamp found before producing", err)
	}
	if n := refusals.requests.Load(); n != seen {
		t.Errorf("%d produce requests after the refusal, want none", n-seen)
	}
	if _, err := publishOne(t, p, Record{Value: []byte("soon"), Timestamp: time.Now().Add(time.Minute)}); err != nil {
		t.Errorf("a record one minute ahead: %v", err)
	}
}

func TestTimestampLimits(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) []Record { return []Record{{Value: []byte("v"), Timestamp: now.Add(d)}} }
	tests := []struct {
		name    string
		learned []time.Duration // refused timestamps, relative to now
		records []Record
		later   time.Duration // when records are checked, after now
		refused bool
	}{
		{"nothing learned", nil, at(100 * time.Hour), 0, false},
		{"as far ahead", []time.Duration{2 * time.Hour}, at(2 * time.Hour), 0, true},
		{"further ahead", []time.Duration{2 * time.Hour}, at(3 * time.Hour), 0, true},
		{"within 1% short", []time.Duration{2 * time.Hour}, at(2*time.Hour - time.Minute), 0, true},
		{"more than 1% short", []time.Duration{2 * time.Hour}, at(2*time.Hour - 2*time.Minute), 0, false},
		{"nearer", []time.Duration{2 * time.Hour}, at(time.Hour), 0, false},
		{"the nearest refusal counts", []time.Duration{5 * time.Hour, 2 * time.Hour}, at(3 * time.Hour), 0, true},
		{"ahead says nothing of behind", []time.Duration{2 * time.Hour}, at(-3 * time.Hour), 0, false},
		{"behind", []time.Duration{-24 * time.Hour}, at(-25 * time.Hour), 0, true},
		{"now is never refused", []time.Duration{time.Second}, []Record{{Value: []byte("v")}}, 0, false},
		{"forgotten", []time.Duration{2 * time.Hour}, at(10 * time.Hour), timestampMemory + time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l timestampLimits
			for _, d := range tt.learned {
				l.learn("t", now.Add(d), now)
			}
			err := l.check("t", tt.records, now.Add(tt.later))
			if refused := err != nil; refused != tt.refused {
				t.Fatalf("check = %v, want refused %v", err, tt.refused)
			}
			if err := l.check("other", tt.records, now); err != nil {
				t.Errorf("another topic: %v", err)
			}
		})
	}
}

// TestFlushWaitsForIsolatedRecords: Flush returns only once the records of a
// refused batch are settled, and BufferedRecords counts them meanwhile.
func TestFlushWaitsForIsolatedRecords(t *testing.T) {
	c := newCluster(t)
	p := newLingeringProducer(t, c)
	refuseBatchesWith(c, kerr.InvalidRecord.Code)
	patient := sendOne(t, p, Record{Key: []byte("k"), Value: []byte("patient"), Partition: 0, HasPartition: true})
	bad := sendOne(t, p, Record{Key: []byte("b"), Value: []byte(badMarker), Partition: 0, HasPartition: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for name, pend := range map[string]*Pending{"patient": patient, "bad": bad} {
		select {
		case <-pend.Done():
		default:
			t.Errorf("the %s record is not settled after Flush", name)
		}
	}
	if n := p.BufferedRecords(); n != 0 {
		t.Errorf("BufferedRecords = %d after Flush", n)
	}
}

// TestCloseDuringIsolation: closing the producer while refused records are
// being sent again settles every record (written, or ErrClosed) and returns.
func TestCloseDuringIsolation(t *testing.T) {
	c := newCluster(t)
	p := newLingeringProducer(t, c)
	refusals := refuseBatchesWith(c, kerr.InvalidRecord.Code)
	var pends []*Pending
	for i := range 20 {
		pends = append(pends, sendOne(t, p, Record{Value: fmt.Appendf(nil, "v%d", i), Partition: 0, HasPartition: true}))
	}
	pends = append(pends, sendOne(t, p, Record{Key: []byte("b"), Value: []byte(badMarker), Partition: 0, HasPartition: true}))
	<-refusals.first
	p.Close()
	for i, pend := range pends {
		for _, r := range waitResults(t, pend) {
			if r.Err != nil && !errors.Is(r.Err, ErrClosed) && !errors.Is(r.Err, ErrInvalid) {
				t.Errorf("send %d: %v, want written, ErrClosed, or (the bad one) ErrInvalid", i, r.Err)
			}
		}
	}
}
