package app_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/app"
	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// subscriptionEntry is one entry of a YAML subscriptions list: a valid
// subscription "orders", with each "key: value" of lines replacing the
// default of that key or added after them.
func subscriptionEntry(lines ...string) string {
	keys := []string{"name", "topics", "webhook_url", "group_id"}
	values := map[string]string{
		"name": "orders", "topics": "[orders]", "webhook_url": "http://127.0.0.1:3000/kafka", "group_id": "orders-app",
	}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		if _, ok := values[k]; !ok {
			keys = append(keys, k)
		}
		values[k] = strings.TrimSpace(v)
	}
	var b strings.Builder
	for i, k := range keys {
		indent := "    "
		if i == 0 {
			indent = "  - "
		}
		b.WriteString(indent + k + ": " + values[k] + "\n")
	}
	return b.String()
}

// subscriptionsFile is a configuration file with brokers and the given
// subscriptions entries.
func subscriptionsFile(entries ...string) string {
	return "brokers: [127.0.0.1:1]\nsubscriptions:\n" + strings.Join(entries, "")
}

// TestConfigFaults runs kbridge through app.Run with one configuration fault
// at a time, from flags, the environment or a real file on disk: each is
// exit code 2 before anything listens, with an error that names the option
// or field, never a panic, never a secret.
func TestConfigFaults(t *testing.T) {
	shorthand := map[string]string{
		"KBRIDGE_SUBSCRIBE_TOPICS": "orders",
		"KBRIDGE_WEBHOOK_URL":      "http://127.0.0.1:3000/kafka",
		"KBRIDGE_GROUP_ID":         "orders-app",
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	const at = "subscriptions[0] (orders)."
	tests := []struct {
		name  string
		file  string            // written to kbridge.yaml and named with --config
		env   map[string]string // KBRIDGE_BROKERS=127.0.0.1:1 unless set here ("" unsets)
		args  []string
		wants []string // the error output contains each
		notIn string   // a secret the output must not show
	}{
		// The file itself.
		{name: "malformed YAML", file: "brokers: [127.0.0.1:1\n", wants: []string{"config: parse", "kbridge.yaml"}},
		{name: "YAML with two documents", file: "brokers: [127.0.0.1:1]\n---\nacks: all\n", wants: []string{"kbridge.yaml", "only one YAML document"}},
		{name: "YAML list instead of a mapping", file: "- brokers: [127.0.0.1:1]\n", wants: []string{"must be a mapping", "not a list", "kbridge.yaml"}},
		{name: "config file that does not exist", args: []string{"--config=" + filepath.Join(t.TempDir(), "missing.yaml")}, wants: []string{"config: read", "missing.yaml", "no such file"}},
		{name: "KBRIDGE_CONFIG names a directory", env: map[string]string{"KBRIDGE_CONFIG": t.TempDir()}, wants: []string{"config: read", "is a directory"}},

		// Unknown keys.
		{name: "unknown top-level key", file: "brokers: [127.0.0.1:1]\nbrokrs: [127.0.0.1:2]\n", wants: []string{`unknown key "brokrs"`}},
		{name: "top-level key with dashes", file: "brokers: [127.0.0.1:1]\npublish-timeout: 5s\n", wants: []string{`unknown key "publish-timeout"`, "underscores"}},
		{name: "unknown key inside a subscription", file: subscriptionsFile(subscriptionEntry("webhok_url: http://127.0.0.1:3000/x")), wants: []string{`subscriptions[0]: unknown key "webhok_url"`}},
		{name: "unknown key inside a subscription's retry", file: subscriptionsFile(subscriptionEntry("retry: {max_attemps: 3}")), wants: []string{`subscriptions[0].retry: unknown key "max_attemps"`}},
		{name: "unknown flag", args: []string{"--publish-timout=5s"}, wants: []string{"-publish-timout", "kbridge --help"}},
		{name: "subscriptions not a list", file: "brokers: [127.0.0.1:1]\nsubscriptions: {name: orders}\n", wants: []string{"subscriptions: expected a list"}},

		// Values that do not parse.
		{name: "invalid duration in the environment", env: map[string]string{"KBRIDGE_PUBLISH_TIMEOUT": "5"}, wants: []string{`publish-timeout: "5" is not a duration`, "KBRIDGE_PUBLISH_TIMEOUT"}},
		{name: "invalid duration in the file", file: "brokers: [127.0.0.1:1]\nshutdown_timeout: 25 seconds\n", wants: []string{"shutdown-timeout", "is not a duration", "kbridge.yaml"}},
		{name: "invalid duration in a subscription", file: subscriptionsFile(subscriptionEntry("attempt_timeout: 30")), wants: []string{"subscriptions[0].attempt_timeout", `"30" is not a duration`}},
		{name: "invalid duration in a subscription's retry", file: subscriptionsFile(subscriptionEntry("retry: {initial_backoff: fast}")), wants: []string{"subscriptions[0].retry.initial_backoff", `"fast" is not a duration`}},
		{name: "boolean that is not one", env: map[string]string{"KBRIDGE_AUTO_CREATE_TOPICS": "yes"}, wants: []string{"auto-create-topics", `"yes" is not a boolean`}},

		// Values that parse but are not allowed.
		{name: "negative number", env: map[string]string{"KBRIDGE_MAX_BUFFERED_BYTES": "-1"}, wants: []string{"max-buffered-bytes", "must not be negative"}},
		{name: "negative record limit", args: []string{"--max-record-bytes=-4096"}, wants: []string{"max-record-bytes", "-4096"}},
		{name: "negative number in a subscription", file: subscriptionsFile(subscriptionEntry("max_concurrency: -4")), wants: []string{at + "max_concurrency", "-4"}},
		{name: "negative duration in a subscription's retry", file: subscriptionsFile(subscriptionEntry("retry: {max_elapsed: -1s}")), wants: []string{at + "retry.max_elapsed", "-1s"}},
		{name: "1xx permanent status", file: subscriptionsFile(subscriptionEntry("permanent_statuses: [100, 422]")), wants: []string{"orders", "permanent", "100"}},
		{name: "no brokers", env: map[string]string{"KBRIDGE_BROKERS": ""}, wants: []string{"brokers", "no Kafka brokers"}},
		{name: "broker without a port", env: map[string]string{"KBRIDGE_BROKERS": "kafka"}, wants: []string{`brokers: "kafka" is not host:port`}},

		// The group id.
		{name: "missing group id, shorthand", env: with(shorthand, "KBRIDGE_GROUP_ID", "   "), wants: []string{"group-id", "required"}},
		{name: "missing group id, YAML", file: subscriptionsFile(subscriptionEntry("group_id:")), wants: []string{at + "group_id", "required"}},
		{name: "two subscriptions in one group", file: subscriptionsFile(subscriptionEntry(), subscriptionEntry("name: audit", "webhook_url: http://127.0.0.1:3001/audit")),
			wants: []string{"subscriptions[1] (audit).group_id", `"orders-app" is also the group of subscriptions[0]`}},

		// A subscription that would consume its own dead-letter topic.
		{name: "DLQ among the listed topics", file: subscriptionsFile(subscriptionEntry("topics: [orders, orders.dlq]", "dead_letter_topic: orders.dlq")),
			wants: []string{at + "dead_letter_topic", "own dead-letter topic"}},
		{name: "DLQ matched by the topic regex", file: subscriptionsFile(subscriptionEntry("topics: []", `topic_regex: "orders.*"`, "dead_letter_topic: orders.dlq")),
			wants: []string{at + "dead_letter_topic", `matches the subscription's topic_regex "orders.*"`}},
		{name: "DLQ among the shorthand topics", env: with(shorthand, "KBRIDGE_SUBSCRIBE_TOPICS", "orders, payments", "KBRIDGE_DEAD_LETTER_TOPIC", " payments "),
			wants: []string{"dead-letter-topic", "own dead-letter topic"}},
		{name: "topic regex that does not compile", file: subscriptionsFile(subscriptionEntry("topics: []", `topic_regex: "orders("`)), wants: []string{at + "topic_regex"}},

		// Conflicting options.
		{name: "dev mode and brokers", env: map[string]string{"KBRIDGE_DEV": "true"}, wants: []string{"brokers", "dev mode"}},
		{name: "shorthand and a subscriptions list", file: subscriptionsFile(subscriptionEntry()), env: map[string]string{"KBRIDGE_SUBSCRIBE_TOPICS": "payments"},
			wants: []string{"subscriptions: use either", "subscribe-topics"}},
		{name: "shorthand option without topics", env: map[string]string{"KBRIDGE_DEAD_LETTER_TOPIC": "orders.dlq"}, wants: []string{"dead-letter-topic", "subscribe-topics"}},
		{name: "on_exhausted block and a dead_letter_topic", file: subscriptionsFile(subscriptionEntry("on_exhausted: block", "dead_letter_topic: orders.dlq")),
			wants: []string{at + "dead_letter_topic", "on_exhausted is block"}},
		{name: "on_exhausted dead-letter without a topic", file: subscriptionsFile(subscriptionEntry("on_exhausted: dead-letter")),
			wants: []string{at + "on_exhausted", "dead_letter_topic"}},
		// Stays a fault once key ordering is implemented (issue 5).
		{name: "ordering key with nothing in flight", file: subscriptionsFile(subscriptionEntry("ordering: key", "max_in_flight: 0")), wants: []string{at + "max_in_flight", "at least 1"}},
		{name: "unknown ordering", file: subscriptionsFile(subscriptionEntry("ordering: random")), wants: []string{at + "ordering", `"random"`}},
		{name: "max in flight with partition ordering", file: subscriptionsFile(subscriptionEntry("max_in_flight: 8")), wants: []string{at + "max_in_flight", "ordering partition"}},
		// Batch delivery.
		{name: "unknown key inside a subscription's batch", file: subscriptionsFile(subscriptionEntry("batch: {max_records: 100, max_recs: 3}")), wants: []string{`subscriptions[0].batch: unknown key "max_recs"`}},
		{name: "batch max_bytes without max_records", file: subscriptionsFile(subscriptionEntry("batch: {max_bytes: 65536}")), wants: []string{"subscriptions[0].batch.max_bytes: needs batch.max_records"}},
		{name: "batch max_records over the limit", file: subscriptionsFile(subscriptionEntry("batch: {max_records: 20000}")), wants: []string{at + "batch.max_records", "1 to 10000", "20000"}},
		{name: "negative batch max_wait", file: subscriptionsFile(subscriptionEntry("batch: {max_records: 100, max_wait: -10ms}")), wants: []string{at + "batch.max_wait", "-10ms"}},
		{name: "batch bytes without records, shorthand", env: with(shorthand, "KBRIDGE_BATCH_MAX_BYTES", "65536"), wants: []string{"batch-max-bytes: needs batch-max-records", "KBRIDGE_BATCH_MAX_RECORDS"}},
		{name: "stream window over the buffer", args: []string{"--max-buffered-records=10", "--stream-max-in-flight=100"}, wants: []string{"stream-max-in-flight", "max-buffered-records"}},

		// The webhook URL.
		{name: "webhook URL with another scheme", file: subscriptionsFile(subscriptionEntry("webhook_url: ftp://127.0.0.1/kafka")), wants: []string{at + "webhook_url", `"ftp"`}},
		{name: "webhook URL without a scheme", env: with(shorthand, "KBRIDGE_WEBHOOK_URL", "localhost:3000/kafka"), wants: []string{"webhook-url", "http"}},
		{name: "webhook URL with credentials", file: subscriptionsFile(subscriptionEntry("webhook_url: http://app:s3cr3t-pw@127.0.0.1:3000/kafka")),
			wants: []string{at + "webhook_url", "user info"}, notIn: "s3cr3t-pw"},

		// Secrets.
		{name: "SASL password without a mechanism", env: map[string]string{"KBRIDGE_SASL_PASSWORD": "hunter2-pw"}, wants: []string{"sasl-mechanism"}, notIn: "hunter2-pw"},
		{name: "header value with a newline", file: subscriptionsFile(subscriptionEntry(`headers: {Authorization: "Bearer t0k\nen-secret"}`)),
			wants: []string{at + "headers", `"Authorization"`}, notIn: "en-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"KBRIDGE_BROKERS": "127.0.0.1:1"}
			for k, v := range tt.env {
				env[k] = v
			}
			for k, v := range env {
				if v == "" {
					delete(env, k)
				}
			}
			args := append([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0"}, tt.args...)
			if tt.file != "" {
				path := filepath.Join(t.TempDir(), "kbridge.yaml")
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config="+path)
			}
			code, out, started := runToExit(t, args, env)
			if started {
				t.Errorf("kbridge started (the Started hook was called)")
			}
			if code != app.ExitConfig {
				t.Errorf("exit code %d, want %d", code, app.ExitConfig)
			}
			if !strings.Contains(out, "invalid configuration") {
				t.Errorf("the output does not say the configuration is invalid")
			}
			for _, want := range tt.wants {
				if !strings.Contains(out, want) {
					t.Errorf("the output does not name %q", want)
				}
			}
			if tt.notIn != "" && strings.Contains(out, tt.notIn) {
				t.Errorf("the output shows the secret %q", tt.notIn)
			}
			if leak := leaks.FindString(out); leak != "" {
				t.Errorf("the output leaks internals (%q)", leak)
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// runToExit runs kbridge until it exits and returns the exit code, what it
// wrote and whether it got as far as listening (then it is stopped at once).
func runToExit(t *testing.T, args []string, env map[string]string) (code int, out string, started bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	var once sync.Once
	var mu sync.Mutex
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	done := make(chan int, 1)
	go func() {
		done <- app.Run(ctx, args, lookup, &logs, app.Hooks{Started: func(app.Addrs) {
			once.Do(func() {
				mu.Lock()
				started = true
				mu.Unlock()
				cancel()
			})
		}})
	}()
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("kbridge did not exit within 60s:\n%s", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	return code, logs.String(), started
}

// TestBrokersUnreachableAtStart: Kafka down at start is not a configuration
// fault. kbridge starts with a subscription (and its dead-letter topic to
// check), serves probes, is not ready and says Kafka has not answered, and
// answers publishes promptly with UNAVAILABLE / 503 rather than hanging.
// When a broker appears at the configured address it turns ready without a
// restart, publishes, and the subscription delivers to the webhook.
// (TestStartsWithoutKafkaAndRecovers covers gRPC health on the same path.)
func TestBrokersUnreachableAtStart(t *testing.T) {
	addr := bridgetest.ClosedAddr(t)
	topic, dlq := bridgetest.TopicName(t), bridgetest.TopicName(t)+".dlq"
	hook := bridgetest.NewWebhook(t, nil)
	kb := start(t, map[string]string{
		"KBRIDGE_BROKERS":           addr,
		"KBRIDGE_SUBSCRIBE_TOPICS":  topic,
		"KBRIDGE_WEBHOOK_URL":       hook.URL,
		"KBRIDGE_GROUP_ID":          "g-" + topic,
		"KBRIDGE_DEAD_LETTER_TOPIC": dlq,
		"KBRIDGE_COMMIT_INTERVAL":   "100ms",
	})

	if code, body := kb.get(t, "/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d %s while Kafka is down, want 200", code, body)
	}
	code, body := kb.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for Kafka") {
		t.Errorf("/readyz = %d %q, want 503 saying Kafka has not answered", code, body)
	}

	// Publishes without a deadline are answered promptly, over every route.
	const prompt = 10 * time.Second
	type result struct {
		a    answer
		err  error
		took time.Duration
	}
	results := make(chan result, 3)
	begin := time.Now()
	go func() {
		_, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("v")}}})
		results <- result{grpcAnswer("gRPC Publish", err), nil, time.Since(begin)}
	}()
	go func() {
		a, err := sendREST(kb, "REST JSON route", httpCall{path: "/v1/topics/" + topic + "/records", contentType: "application/json", body: `{"records":[{"value":"v"}]}`})
		results <- result{a, err, time.Since(begin)}
	}()
	go func() {
		a, err := sendREST(kb, "REST raw route", httpCall{path: "/v1/topics/" + topic, contentType: "text/plain", body: "v"})
		results <- result{a, err, time.Since(begin)}
	}()
	for range 3 {
		r := <-results
		if r.err != nil {
			t.Errorf("publish while Kafka is down: %v", r.err)
			continue
		}
		checkAnswer(t, r.a, codes.Unavailable, http.StatusServiceUnavailable, []string{"kafka is unavailable"})
		if r.took > prompt {
			t.Errorf("%s: answered after %s, want within %s", r.a.via, r.took, prompt)
		}
	}

	// A broker appears at the configured address.
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("could not listen on the freed address %s again: %v", addr, err)
	}
	fake, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return lis, nil }),
		kfake.SeedTopics(1, topic, dlq),
	)
	if err != nil {
		_ = lis.Close()
		t.Fatalf("start kfake on %s: %v", addr, err)
	}
	t.Cleanup(fake.Close)

	kb.waitReady(t)
	resp, err := kb.client.Publish(context.Background(), &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Key: proto.String("k"), Value: proto.String("after the broker appeared")}}})
	if err != nil {
		t.Fatalf("publish once the broker is up: %v", status.Convert(err).Message())
	}
	offset := resp.Results[0].GetOffset()
	hook.WaitFor(t, 60*time.Second, "the published record at the webhook", func(ds []bridgetest.Delivery) bool {
		for _, d := range ds {
			if d.Topic == topic && d.Offset == offset && string(d.Body) == "after the broker appeared" && d.Status < 300 {
				return true
			}
		}
		return false
	})
	if code, body := kb.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %s after recovery", code, body)
	}
	// Stopped while the broker is still up (the cleanups would close it
	// first).
	if code := kb.stop(t); code != app.ExitOK {
		t.Errorf("kbridge exited with %d, want 0", code)
	}
}
