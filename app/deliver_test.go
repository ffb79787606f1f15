package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/app"
	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// subscriptionEnv is the environment of a kbridge on cluster that delivers
// topic to hook through the one-subscription shorthand, in a group unique
// to the test (so that runs can share a real broker). extra is added last,
// as name, value pairs.
func subscriptionEnv(t *testing.T, cluster *bridgetest.Cluster, topic, hookURL string, extra ...string) (env map[string]string, group string) {
	t.Helper()
	group = "g-" + bridgetest.TopicName(t)
	env = brokersEnv(cluster)
	env["KBRIDGE_SUBSCRIBE_TOPICS"] = topic
	env["KBRIDGE_WEBHOOK_URL"] = hookURL
	env["KBRIDGE_GROUP_ID"] = group
	env["KBRIDGE_COMMIT_INTERVAL"] = "100ms"
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env, group
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronization
	}
}

// waitCommitted waits until the group's committed offsets of topic are
// want, partition by partition.
func waitCommitted(t *testing.T, cluster *bridgetest.Cluster, group, topic string, want map[int32]int64) {
	t.Helper()
	var got map[int32]int64
	eventually(t, 30*time.Second, "committed offsets "+mapString(want), func() bool {
		got = cluster.Committed(t, group, topic)
		return mapString(got) == mapString(want)
	})
}

func mapString(m map[int32]int64) string {
	var b strings.Builder
	for p := int32(0); len(m) > 0 && p <= maxKey(m); p++ {
		if off, ok := m[p]; ok {
			b.WriteString(strconv.Itoa(int(p)) + ":" + strconv.FormatInt(off, 10) + " ")
		}
	}
	return b.String()
}

func maxKey(m map[int32]int64) int32 {
	var hi int32
	for p := range m {
		hi = max(hi, p)
	}
	return hi
}

// rawResult parses the answer of the raw REST publish.
func rawResult(t *testing.T, body string) (partition int32, offset int64) {
	t.Helper()
	var resp struct {
		Results []struct {
			Partition *int32
			Offset    string
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Results) != 1 || resp.Results[0].Partition == nil {
		t.Fatalf("raw publish answer %s (%v)", body, err)
	}
	offset, err := strconv.ParseInt(resp.Results[0].Offset, 10, 64)
	if err != nil {
		t.Fatalf("raw publish answer %s: offset: %v", body, err)
	}
	return *resp.Results[0].Partition, offset
}

// TestDeliverRawPublish: a raw REST publish comes back to the app's webhook
// as the webhook contract says, and the group's offset is committed past
// it.
func TestDeliverRawPublish(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	hook := bridgetest.NewWebhook(t, nil)
	env, group := subscriptionEnv(t, cluster, topic, hook.URL)
	kb := start(t, env)
	kb.waitReady(t)

	value := "{\"order\":42,\"note\":\"caf\u00e9 \\u00fc\",\n \"x\":[1, 2]}\r\n"
	key := "order 42/é+%"
	code, body := kb.post(t, "/v1/topics/"+topic+"?"+url.Values{"key": {key}}.Encode(), "application/json", []byte(value),
		"Kafka-Header-x", "v%25 1")
	if code != http.StatusOK {
		t.Fatalf("raw publish = %d %s", code, body)
	}
	partition, offset := rawResult(t, body)

	hook.WaitAcked(t, 1, 30*time.Second)
	ds := hook.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1: %+v", len(ds), ds)
	}
	d := ds[0]
	if string(d.Body) != value {
		t.Errorf("body = %q, want %q byte for byte", d.Body, value)
	}
	coords := topic + "/" + strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
	want := map[string]string{
		"Content-Type":         "application/json",
		"Kafka-Key":            "order 42/%C3%A9%2B%25", // percent-encoded: non-ASCII, '+' and '%'
		"Kafka-Header-X":       "v%25 1",                // the record header x = "v% 1", encoded again
		"Idempotency-Key":      group + "/" + coords,
		"Kafka-Topic":          topic,
		"Kafka-Partition":      strconv.Itoa(int(partition)),
		"Kafka-Offset":         strconv.FormatInt(offset, 10),
		"Kafka-Timestamp-Type": "create",
		"Delivery-Attempt":     "1",
		"Ce-Specversion":       "1.0",
		"Ce-Id":                coords,
		"Ce-Source":            "kafka:" + topic,
		"Ce-Type":              "kbridge.record",
	}
	for name, v := range want {
		if got := d.Header.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", name, got, v)
		}
	}
	ceTime, err := time.Parse(time.RFC3339Nano, d.Header.Get("Ce-Time"))
	if err != nil {
		t.Errorf("ce-time %q: %v", d.Header.Get("Ce-Time"), err)
	}
	ms, err := strconv.ParseInt(d.Header.Get("Kafka-Timestamp"), 10, 64)
	if err != nil || !time.UnixMilli(ms).Equal(ceTime) {
		t.Errorf("Kafka-Timestamp %q does not match ce-time %s", d.Header.Get("Kafka-Timestamp"), ceTime)
	}
	for name := range d.Header {
		if strings.EqualFold(name, "Kafka-Header-Content-Type") {
			t.Errorf("the content-type record header was also sent as %s", name)
		}
	}
	waitCommitted(t, cluster, group, topic, map[int32]int64{partition: offset + 1})
}

// TestDeliverShutdownCommitsAckedPrefix: SIGTERM while a slow webhook has
// records of several partitions in flight. Every delivery that reached the
// webhook finishes (none is cut off), kbridge exits 0 within its shutdown
// budget, and what it committed is exactly the acknowledged prefix of each
// partition: nothing acked is left uncommitted, nothing unacked committed.
func TestDeliverShutdownCommitsAckedPrefix(t *testing.T) {
	const partitions, perPartition = 4, 100
	const budget = 5 * time.Second
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, partitions)
	var recs []*kgo.Record
	for i := range perPartition {
		for p := range int32(partitions) {
			recs = append(recs, &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(i))})
		}
	}
	cluster.Produce(t, topic, recs...)

	var mu sync.Mutex
	arrived := map[bridgetest.Coordinate]bool{}
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		mu.Lock()
		arrived[bridgetest.Coordinate{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}] = true
		mu.Unlock()
		return bridgetest.Reply{Delay: 50 * time.Millisecond}
	})
	env, group := subscriptionEnv(t, cluster, topic, hook.URL, "KBRIDGE_SHUTDOWN_TIMEOUT", budget.String())
	kb := start(t, env)

	// Stop once every partition is well under way (past a few periodic
	// commits), with one record of each in flight.
	hook.WaitFor(t, 30*time.Second, "10 acks on every partition", func(ds []bridgetest.Delivery) bool {
		n := map[int32]int{}
		for _, d := range ds {
			n[d.Partition]++
		}
		for p := range int32(partitions) {
			if n[p] < 10 {
				return false
			}
		}
		return true
	})
	begin := time.Now()
	code := kb.stop(t)
	took := time.Since(begin)
	if code != app.ExitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	t.Logf("shutdown took %v (budget %v)", took, budget)
	if slack := 5 * time.Second; took > budget+slack {
		t.Errorf("shutdown took %v, more than the %v budget (+%v slack)", took, budget, slack)
	}

	acked := hook.Acked()
	if len(acked) == partitions*perPartition {
		t.Fatalf("all %d records were acked before the shutdown: nothing was in flight", len(acked))
	}
	mu.Lock()
	for c := range arrived {
		if acked[c] == 0 {
			t.Errorf("delivery of %v reached the webhook but was cut off: in-flight deliveries must finish", c)
		}
	}
	mu.Unlock()
	prefix := hook.AckedPrefix(topic, nil)
	committed := cluster.Committed(t, group, topic)
	if mapString(committed) != mapString(prefix) {
		t.Errorf("committed %v, want the acknowledged prefix %v", committed, prefix)
	}
	t.Logf("stopped with %d of %d records acked; committed %v", len(acked), partitions*perPartition, committed)
}

// TestDeliverShutdownCutsHangingDelivery: a delivery the app never answers
// is cancelled at the delivery share of the shutdown budget, so kbridge
// still exits 0 within the budget; the record stays uncommitted (the next
// run delivers it again) and, being work cut short by shutdown, is never
// dead-lettered.
func TestDeliverShutdownCutsHangingDelivery(t *testing.T) {
	const budget = 3 * time.Second
	cluster := bridgetest.NewCluster(t)
	topic, dlq := cluster.Topic(t, 1), cluster.Topic(t, 1)
	cluster.Produce(t, topic, &kgo.Record{Value: []byte("acked")}, &kgo.Record{Value: []byte("hangs")})
	hanging := make(chan struct{})
	var once sync.Once
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 1 {
			once.Do(func() { close(hanging) })
			return bridgetest.Reply{Hang: true}
		}
		return bridgetest.Reply{}
	})
	env, group := subscriptionEnv(t, cluster, topic, hook.URL,
		"KBRIDGE_SHUTDOWN_TIMEOUT", budget.String(), "KBRIDGE_DEAD_LETTER_TOPIC", dlq)
	kb := start(t, env)
	select {
	case <-hanging:
	case <-time.After(30 * time.Second):
		t.Fatal("the second record never reached the webhook")
	}
	waitCommitted(t, cluster, group, topic, map[int32]int64{0: 1})

	begin := time.Now()
	code := kb.stop(t)
	took := time.Since(begin)
	t.Logf("shutdown with a hanging delivery took %v (budget %v)", took, budget)
	if code != app.ExitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	if slack := 5 * time.Second; took > budget+slack {
		t.Errorf("shutdown took %v, more than the %v budget (+%v slack)", took, budget, slack)
	}
	if committed := cluster.Committed(t, group, topic); committed[0] != 1 {
		t.Errorf("committed %v, want partition 0 at 1: the hanging record must stay uncommitted", committed)
	}
	if n := cluster.EndOffsets(t, dlq); n != 0 {
		t.Errorf("%d records in the dead-letter topic: work cut short by shutdown must never be dead-lettered", n)
	}
}

// TestDeliverPublishDuringShutdown: an app that is stopping may still
// publish. While a delivery is in flight at SIGTERM, kbridge drains it
// before it stops the publish API, so publishes issued during that drain
// succeed over gRPC and REST; the delivery's record is committed, and the
// records published meanwhile are in Kafka, left for the next run.
func TestDeliverPublishDuringShutdown(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var inFlightOnce, releaseOnce sync.Once
	hook := bridgetest.NewWebhook(t, func(d bridgetest.Delivery) bridgetest.Reply {
		if d.Offset == 0 {
			inFlightOnce.Do(func() { close(inFlight) })
			<-release // the app takes its time: until the test lets it answer
		}
		return bridgetest.Reply{}
	})
	env, group := subscriptionEnv(t, cluster, topic, hook.URL, "KBRIDGE_SHUTDOWN_TIMEOUT", "20s")
	kb := start(t, env)
	// On failure, let the app answer before kbridge is stopped and the
	// webhook closed (which waits for its requests).
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	kb.waitReady(t)
	if _, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("first")}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("the record never reached the webhook")
	}

	kb.cancel() // SIGTERM
	eventually(t, 10*time.Second, "the subscription to be stopping", func() bool {
		_, body := kb.get(t, "/readyz?verbose")
		return strings.Contains(body, `"state": "stopping"`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kb.client.Publish(ctx, &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("during shutdown, gRPC")}}})
	if err != nil || resp.Results[0].Error != nil {
		t.Errorf("gRPC publish while a delivery drains: %v %v", resp, err)
	}
	if code, body := kb.post(t, "/v1/topics/"+topic, "text/plain", []byte("during shutdown, REST")); code != http.StatusOK {
		t.Errorf("REST publish while a delivery drains = %d %s", code, body)
	}
	// Only now may the app answer: both publishes succeeded while the
	// delivery was still in flight, so the publish API outlives the drain.
	releaseOnce.Do(func() { close(release) })

	if code := kb.stop(t); code != app.ExitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	ds := hook.Deliveries()
	if len(ds) != 1 || ds[0].Status != http.StatusOK || string(ds[0].Body) != "first" {
		t.Fatalf("deliveries %+v, want the first record acked once", ds)
	}
	got := cluster.ReadAll(t, topic, 3)
	if string(got[1].Value) != "during shutdown, gRPC" || string(got[2].Value) != "during shutdown, REST" {
		t.Errorf("records %q %q, want the two published during the shutdown", got[1].Value, got[2].Value)
	}
	// Fetching stopped at SIGTERM: the new records are not delivered, so the
	// commit stays right after the one delivered record.
	if committed := cluster.Committed(t, group, topic); committed[0] != 1 {
		t.Errorf("committed %v, want partition 0 at 1", committed)
	}
}

// verboseHealth is the part of /readyz?verbose this file reads.
type verboseHealth struct {
	Ready   bool `json:"ready"`
	Details struct {
		Subscriptions []struct {
			Name       string `json:"name"`
			Group      string `json:"group"`
			State      string `json:"state"`
			Partitions []struct {
				Topic     string `json:"topic"`
				Partition int32  `json:"partition"`
				Committed int64  `json:"committed"`
			} `json:"partitions"`
		} `json:"subscriptions"`
	} `json:"details"`
}

// TestDeliverReadyzVerbose: the detailed health body shows the subscription,
// its state and its partitions with their committed offsets.
func TestDeliverReadyzVerbose(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 3)
	hook := bridgetest.NewWebhook(t, nil)
	env, group := subscriptionEnv(t, cluster, topic, hook.URL)
	kb := start(t, env)
	kb.waitReady(t)
	cluster.Produce(t, topic, &kgo.Record{Partition: 0, Value: []byte("a")}, &kgo.Record{Partition: 1, Value: []byte("b")},
		&kgo.Record{Partition: 2, Value: []byte("c")}, &kgo.Record{Partition: 2, Value: []byte("d")})
	hook.WaitAcked(t, 4, 30*time.Second)

	var h verboseHealth
	var body string
	eventually(t, 30*time.Second, "/readyz?verbose to show 3 partitions committed", func() bool {
		var code int
		code, body = kb.get(t, "/readyz?verbose")
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("/readyz?verbose = %d, not JSON: %v\n%s", code, err, body)
		}
		if code != http.StatusOK || !h.Ready || len(h.Details.Subscriptions) != 1 {
			return false
		}
		committed := map[int32]int64{}
		for _, p := range h.Details.Subscriptions[0].Partitions {
			if p.Topic == topic {
				committed[p.Partition] = p.Committed
			}
		}
		return mapString(committed) == mapString(map[int32]int64{0: 1, 1: 1, 2: 2})
	})
	s := h.Details.Subscriptions[0]
	if s.Name != "default" || s.Group != group || s.State != "consuming" {
		t.Errorf("subscription name %q group %q state %q, want default, %s, consuming:\n%s", s.Name, s.Group, s.State, group, body)
	}
}

// TestDeliverConfigErrorsExit2: a subscription kbridge cannot run is a
// configuration error: exit 2 before anything starts, naming the option.
func TestDeliverConfigErrorsExit2(t *testing.T) {
	base := map[string]string{
		"KBRIDGE_BROKERS":          "127.0.0.1:1",
		"KBRIDGE_SUBSCRIBE_TOPICS": "orders",
		"KBRIDGE_WEBHOOK_URL":      "http://127.0.0.1:3000/kafka",
		"KBRIDGE_GROUP_ID":         "orders-app",
	}
	tests := []struct {
		name  string
		env   map[string]string // overrides base; "" unsets
		wants []string
	}{
		{"ordering unknown", map[string]string{"KBRIDGE_ORDERING": "keyed"}, []string{"ordering", "keyed"}},
		{"ordering none with nothing in flight", map[string]string{"KBRIDGE_ORDERING": "none", "KBRIDGE_MAX_IN_FLIGHT": "0"}, []string{"max-in-flight"}},
		{"no group", map[string]string{"KBRIDGE_GROUP_ID": ""}, []string{"group-id", "required"}},
		{"no webhook", map[string]string{"KBRIDGE_WEBHOOK_URL": ""}, []string{"webhook-url", "required"}},
		{"webhook not http", map[string]string{"KBRIDGE_WEBHOOK_URL": "ftp://app/kafka"}, []string{"webhook-url", "ftp"}},
		{"in flight with partition ordering", map[string]string{"KBRIDGE_MAX_IN_FLIGHT": "5"}, []string{"max-in-flight"}},
		{"no concurrency", map[string]string{"KBRIDGE_MAX_CONCURRENCY": "0"}, []string{"max-concurrency"}},
		{"own dead-letter topic", map[string]string{"KBRIDGE_DEAD_LETTER_TOPIC": "orders"}, []string{"dead-letter-topic"}},
		{"group without topics", map[string]string{"KBRIDGE_SUBSCRIBE_TOPICS": ""}, []string{"group-id", "subscribe-topics"}},
		{"session timeout", map[string]string{"KBRIDGE_SESSION_TIMEOUT": "0s"}, []string{"session-timeout"}},
		{"rebalance shorter than an attempt", map[string]string{"KBRIDGE_REBALANCE_TIMEOUT": "10s"}, []string{"rebalance-timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			var logs syncBuffer
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			code := app.Run(context.Background(), nil, lookup, &logs, app.Hooks{Started: func(app.Addrs) { t.Error("kbridge started") }})
			if code != app.ExitConfig {
				t.Errorf("exit code %d, want %d\n%s", code, app.ExitConfig, logs.String())
			}
			for _, want := range tt.wants {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("error output does not name %q:\n%s", want, logs.String())
				}
			}
		})
	}
}

// TestDeliverDevEcho: `kbridge --dev` without a subscription delivers what
// is published to its built-in echo webhook, which logs it.
func TestDeliverDevEcho(t *testing.T) {
	kb := start(t, map[string]string{"KBRIDGE_DEV_KAFKA_ADDR": "127.0.0.1:0", "KBRIDGE_LOG_FORMAT": "json"}, "--dev")
	kb.waitReady(t)
	topic := bridgetest.TopicName(t)
	value := `{"hello":"echo ü"}`
	if code, body := kb.post(t, "/v1/topics/"+topic+"?key=k1", "application/json", []byte(value)); code != http.StatusOK {
		t.Fatalf("publish in dev mode = %d %s", code, body)
	}
	type entry struct {
		Msg, Topic, Key, Value, ContentType, IdempotencyKey string
	}
	var got entry
	eventually(t, 30*time.Second, "the echo webhook to log the delivery", func() bool {
		sc := bufio.NewScanner(strings.NewReader(kb.logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e struct {
				Msg            string `json:"msg"`
				Topic          string `json:"topic"`
				Key            string `json:"key"`
				Value          string `json:"value"`
				ContentType    string `json:"content_type"`
				IdempotencyKey string `json:"idempotency_key"`
			}
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg == "dev echo webhook received a delivery" && e.Topic == topic {
				got = entry(e)
				return true
			}
		}
		return false
	})
	if got.Value != value || got.Key != "k1" || got.ContentType != "application/json" || !strings.HasPrefix(got.IdempotencyKey, "kbridge-dev-echo/"+topic+"/") {
		t.Errorf("echo logged %+v, want value %q, key k1, content type application/json", got, value)
	}
}

// TestDeliverOrderingKeyFromEnv: KBRIDGE_ORDERING=key with
// KBRIDGE_MAX_IN_FLIGHT reaches the consumer: one partition's records of
// different keys are in flight together, each key's in order.
func TestDeliverOrderingKeyFromEnv(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	var now, peak atomic.Int32
	hook := bridgetest.NewWebhook(t, func(bridgetest.Delivery) bridgetest.Reply {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(3 * time.Millisecond) // the app's work
		now.Add(-1)
		return bridgetest.Reply{}
	})
	env, group := subscriptionEnv(t, cluster, topic, hook.URL, "KBRIDGE_ORDERING", "key", "KBRIDGE_MAX_IN_FLIGHT", "4")
	var recs []*kgo.Record
	for i := range 200 {
		recs = append(recs, &kgo.Record{Partition: 0, Key: []byte{byte('a' + i%6)}, Value: []byte(strconv.Itoa(i))})
	}
	cluster.Produce(t, topic, recs...)
	kb := start(t, env)
	kb.waitReady(t)

	hook.WaitAcked(t, len(recs), time.Minute)
	eventually(t, time.Minute, "the group's commit to reach the end", func() bool {
		return cluster.Committed(t, group, topic)[0] == int64(len(recs))
	})
	if p := peak.Load(); p < 2 || p > 4 {
		t.Errorf("peak requests in flight = %d, want 2..4 (key ordering, max in flight 4)", p)
	}
	last := map[string]int64{}
	for _, d := range hook.Deliveries() {
		k := d.Header.Get("Kafka-Key")
		if prev, ok := last[k]; ok && d.Offset < prev {
			t.Fatalf("key %s: offset %d delivered after %d", k, d.Offset, prev)
		}
		last[k] = d.Offset
	}
}

// TestDeliverBatchFromEnv: KBRIDGE_BATCH_MAX_RECORDS reaches the consumer:
// the webhook gets CloudEvents batches of at most that many events, and
// every record is delivered and committed.
func TestDeliverBatchFromEnv(t *testing.T) {
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 2)
	hook := bridgetest.NewWebhook(t, nil)
	env, group := subscriptionEnv(t, cluster, topic, hook.URL, "KBRIDGE_BATCH_MAX_RECORDS", "25", "KBRIDGE_BATCH_MAX_WAIT", "50ms")
	var recs []*kgo.Record
	for i := range 300 {
		recs = append(recs, &kgo.Record{Partition: int32(i % 2), Value: []byte(`{"n":` + strconv.Itoa(i) + `}`),
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}})
	}
	cluster.Produce(t, topic, recs...)
	kb := start(t, env)
	kb.waitReady(t)

	hook.WaitAcked(t, len(recs), time.Minute)
	waitCommitted(t, cluster, group, topic, map[int32]int64{0: 150, 1: 150})
	largest := 0
	for _, d := range hook.Deliveries() {
		if d.Batch == 0 || d.Batch > 25 {
			t.Fatalf("offset %d came in a request of %d events, want a batch of 1..25", d.Offset, d.Batch)
		}
		largest = max(largest, d.Batch)
		if !json.Valid(d.Body) || !strings.HasPrefix(string(d.Body), `{"n":`) {
			t.Fatalf("offset %d: data %q, want the JSON value verbatim", d.Offset, d.Body)
		}
	}
	if largest < 2 {
		t.Errorf("every batch held one event: a backlog should fill them")
	}
}
