package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
	"github.com/kbridge/kbridge/bridge"
)

// batchBody encodes recs as kbridge does a batch request's body.
func batchBody(recs []*kgo.Record, s bridge.WebhookRequestSettings) []byte {
	body := []byte{'['}
	for i, rec := range recs {
		if i > 0 {
			body = append(body, ',')
		}
		body, _ = bridge.AppendBatchEvent(body, rec, 1, s)
	}
	return append(body, ']')
}

func benchRecords(n, partitions int, valueSize int) []*kgo.Record {
	values := benchkit.NewValuePool(valueSize)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "kbench-deliver", Partition: int32(i % partitions), Offset: int64(1000 + i/partitions),
			Value: values.Value(uint64(i)), Timestamp: time.UnixMilli(1_700_000_000_000)}
	}
	return recs
}

// The scanner reads what kbridge's own encoder writes, in order, whatever
// the records hold: JSON data that names the same members, keys, headers,
// CloudEvent records, empty values, quotes and backslashes.
func TestScanBatchReadsKbridgeBatches(t *testing.T) {
	tricky := `{"kafkapartition":99,"kafkaoffset":"77","nested":[{"a":"\"]}"},[1,2]],"s":"\\"}`
	recs := []*kgo.Record{
		{Topic: "t", Partition: 3, Offset: 42, Value: []byte("plain text")},
		{Topic: "t", Partition: 3, Offset: 43, Value: []byte(tricky),
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
		{Topic: "t", Partition: 0, Offset: 9_000_000_000, Key: []byte(`k"ey\`), Value: nil,
			Headers: []kgo.RecordHeader{{Key: "x-custom", Value: []byte(`"kafkaoffset":"5"`)}}},
		{Topic: "t", Partition: 11, Offset: 0, Value: []byte(`[1,{"kafkapartition":1}]`),
			Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("my-id")}, {Key: "ce_specversion", Value: []byte("1.0")},
				{Key: "ce_source", Value: []byte("src")}, {Key: "ce_type", Value: []byte("kafkapartition")},
				{Key: "content-type", Value: []byte("application/cloudevents+json")}}},
	}
	for _, defaultType := range []string{"", "application/json"} {
		body := batchBody(recs, bridge.WebhookRequestSettings{Group: "g", DefaultContentType: defaultType})
		if !json.Valid(body) {
			t.Fatalf("the encoder wrote invalid JSON: %s", body)
		}
		got, err := scanBatch(body, nil)
		want := []coord{{3, 42}, {3, 43}, {0, 9_000_000_000}, {11, 0}}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("default content type %q: got %v, %v; want %v\n%s", defaultType, got, err, want, body)
		}
	}

	body := batchBody(benchRecords(250, 12, 1024), bridge.WebhookRequestSettings{Group: "g"})
	got, err := scanBatch(body, make([]coord, 0, 8))
	if err != nil || len(got) != 250 || got[0] != (coord{0, 1000}) || got[13] != (coord{1, 1001}) || got[249] != (coord{249 % 12, 1000 + 249/12}) {
		t.Errorf("250 bench records: %d events, first %v, err %v", len(got), got[:min(len(got), 1)], err)
	}
}

func TestScanBatchRefusesMalformedBodies(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{``, "not a JSON array"},
		{`{"kafkapartition":1,"kafkaoffset":"1"}`, "not a JSON array"},
		{` [ ] `, "an empty batch"},
		{`[{}]`, "event 0: no kafkapartition"},
		{`[{"kafkapartition":1}]`, "event 0: kafkapartition given: true, kafkaoffset given: false"},
		{`[{"kafkapartition":1,"kafkaoffset":"2"},{"kafkaoffset":"3"}]`, "event 1: kafkapartition given: false"},
		{`[{"kafkapartition":1,"kafkapartition":1,"kafkaoffset":"2"}]`, "kafkapartition twice"},
		{`[{"kafkapartition":"1","kafkaoffset":"2"}]`, "not an integer"},
		{`[{"kafkapartition":1.5,"kafkaoffset":"2"}]`, "want , or } after a member"},
		{`[{"kafkapartition":3000000000,"kafkaoffset":"2"}]`, "not an integer"},
		{`[{"kafkapartition":1,"kafkaoffset":2}]`, "kafkaoffset: batch body at byte 35: want a string"},
		{`[{"kafkapartition":1,"kafkaoffset":"x2"}]`, `kafkaoffset: strconv.ParseInt: parsing "x2"`},
		{`[{"kafkapartition":1,"kafkaoffset":"2","data":"abc\"}]`, "unterminated string"},
		{`[{"kafkapartition":1,"kafkaoffset":"2","data":{"a":[1}}]`, "unbalanced }"},
		{`[{"kafkapartition":1,"kafkaoffset":"2","data":{"a":1}]`, "want , or } after a member"},
		{`[{"kafkapartition":1,"kafkaoffset":"2","data":[1,2]`, "want , or } after a member"},
		{`[{"kafkapartition":1,"kafkaoffset":"2","data":[1,2]}`, "want , or ] after an event"},
		{`[{"kafkapartition":1,"kafkaoffset":"2","data":}]`, "want a value"},
		{`[{"kafkapartition":1,"kafkaoffset":"2"}] x`, "data after the array"},
		{`[{"kafkapartition":1,"kafkaoffset":"2"} {"kafkapartition":1,"kafkaoffset":"3"}]`, "want , or ] after an event"},
		{`[1]`, "want an object"},
		{`[{kafkapartition:1}]`, "want a string"},
	} {
		if _, err := scanBatch([]byte(c.body), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one with %q", c.body, err, c.want)
		}
	}
	// What it does not check: members it skips may hold bad JSON.
	got, err := scanBatch([]byte(`[{"x":tru,"kafkapartition":-1,"kafkaoffset":"7","y":"\q"}]`), nil)
	if err != nil || !slices.Equal(got, []coord{{-1, 7}}) {
		t.Errorf("lenient: %v, %v", got, err)
	}
}

// The webhook tallies every event of a batch request, in order, with the
// checks of single requests; a malformed batch is one error.
func TestWebhookTalliesBatchEvents(t *testing.T) {
	hook, err := startWebhook(0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()
	tl := newTally(2, 8, 0) // record i: partition i%2, offset i/2
	hook.measure(tl)
	client := benchkit.KeepAliveClient(1)
	post := func(body string) {
		t.Helper()
		if err := benchkit.Post(context.Background(), client, hook.url, []byte(body), http.Header{"Content-Type": {batchContentType}}); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(p, o int) string {
		return fmt.Sprintf(`{"id":"x","kafkapartition":%d,"kafkaoffset":"%d","data_base64":"eA=="}`, p, o)
	}
	post("[" + ev(0, 0) + "," + ev(1, 0) + "," + ev(0, 1) + "]")
	post("[" + ev(0, 2) + "," + ev(0, 2) + "," + ev(1, 1) + "]") // a duplicate
	post("[" + ev(1, 3) + "," + ev(1, 2) + "]")                  // out of order
	post("[" + ev(0, 3) + ",{]")                                 // malformed: none counted
	post("[" + ev(5, 0) + "]")                                   // outside the backlog
	got := tl.snapshot()
	if got.distinct != 7 || got.dups != 1 || got.errs != 3 || got.requests != 4 || got.events != 9 {
		t.Errorf("distinct %d, dups %d, errs %d (%v), requests %d, events %d; want 7, 1, 3, 4, 9",
			got.distinct, got.dups, got.errs, got.firstErr, got.requests, got.events)
	}
	if !strings.Contains(got.firstErr.Error(), "partition 1 offset 2 acknowledged after offset 3 of its partition") {
		t.Errorf("first error %v", got.firstErr)
	}
	post("[" + ev(0, 3) + "]")
	if !tl.complete() {
		t.Error("not complete")
	}
}

// A 100-record batch of the benchmark's 1 KiB values: the webhook's cost
// per request. json.Valid is the option -webhook-validate adds.
func BenchmarkScanBatch(b *testing.B) {
	body := batchBody(benchRecords(100, 12, 1024), bridge.WebhookRequestSettings{Group: "kbench-deliver-r1-batched"})
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		var events []coord
		for b.Loop() {
			var err error
			if events, err = scanBatch(body, events[:0]); err != nil || len(events) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var events []struct {
				Partition int32  `json:"kafkapartition"`
				Offset    string `json:"kafkaoffset"`
			}
			if err := json.Unmarshal(body, &events); err != nil || len(events) != 100 {
				b.Fatal(err)
			}
		}
	})
}
