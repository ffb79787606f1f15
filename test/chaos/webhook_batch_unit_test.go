package chaos

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bridge"
)

// TestWebhookBatchEvents pins the chaos webhook's reading of batch events,
// made by kbridge's own encoder: it runs in every test run, unlike
// TestChaos. A record with content-type application/json (the raw REST
// route) arrives as data, one without (the other routes) as data_base64;
// both must give back the value byte for byte.
func TestWebhookBatchEvents(t *testing.T) {
	s := settings{seed: 1, valueBytes: 10, batch: 20}
	w := newWebhook("orders", "g", newLedger(4), s)
	defer w.Close()
	pad := strings.Repeat("x", s.valueBytes)
	jsonHeader := []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}
	for _, tt := range []struct {
		name    string
		headers []kgo.RecordHeader
		value   string
		wantErr string
	}{
		{`"data"`, jsonHeader, recordValue(7, false, pad), ""},
		{`"data_base64"`, nil, recordValue(7, true, pad), ""},
		{"altered value", nil, recordValue(7, false, pad+"y"), "verbatim"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &kgo.Record{Topic: "orders", Partition: 3, Offset: 42, Value: []byte(tt.value), Headers: tt.headers, Timestamp: time.Now()}
			raw, id := bridge.AppendBatchEvent(nil, rec, 2, bridge.WebhookRequestSettings{Group: "g"})
			if tt.wantErr == "" && !strings.Contains(string(raw), tt.name+":") {
				t.Fatalf("the event carries no %s member: %s", tt.name, raw)
			}
			ev, err := w.readEvent(json.RawMessage(raw))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readEvent(%s) = %v, want an error with %q", raw, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readEvent(%s): %v", raw, err)
			}
			if ev.id != id || ev.p != 3 || ev.off != 42 || ev.v.ID != 7 {
				t.Errorf("readEvent(%s) = %+v, want id %s, 3/42, value id 7", raw, ev, id)
			}
		})
	}
}

// TestWebhookBatchJudge pins kbridge's ordering rule as the webhook applies
// it: a listed event fails every later event of its partition, and only
// those; events the webhook does not acknowledge must not be in the ledger
// as acknowledged.
func TestWebhookBatchJudge(t *testing.T) {
	ev := func(p int32, off int64) event {
		return event{id: fmt.Sprintf("t/%d/%d", p, off), p: p, off: off}
	}
	events := []event{ev(0, 1), ev(0, 2), ev(0, 3), ev(1, 5), ev(1, 6), ev(2, 1), ev(0, 4)}
	kinds := []reply{replyAck, reply500, replyAck, replyPoison, reply500, replyAck, replyAck}
	verdicts, failed := judge(events, kinds)
	want := []eventVerdict{eventAcked, eventListed500, eventBehind, eventListed422, eventListed500, eventAcked, eventBehind}
	if !slices.Equal(verdicts, want) {
		t.Errorf("verdicts %v, want %v", verdicts, want)
	}
	wantFailed := []failedEvent{{"t/0/2", 500}, {"t/1/5", 422}, {"t/1/6", 500}}
	if !slices.Equal(failed, wantFailed) {
		t.Errorf("failed %v, want %v", failed, wantFailed)
	}
}
