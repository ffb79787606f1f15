package config_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kbridge/kbridge/config"
)

// shorthandOptions are the one-subscription options, which Load turns into
// Subscriptions[0].
var shorthandOptions = []string{
	"subscribe-topics", "webhook-url", "group-id", "dead-letter-topic", "ordering", "max-in-flight", "max-concurrency",
	"batch-max-records", "batch-max-bytes", "batch-max-wait",
}

// entry builds one item of a subscriptions list: a valid subscription
// ("orders") whose keys the given "key: value" lines add or replace.
func entry(fields ...string) string {
	base := []string{"name: orders", "topics: [orders]", "webhook_url: http://127.0.0.1:3000/kafka", "group_id: app-orders"}
	given := map[string]bool{}
	for _, f := range fields {
		k, _, _ := strings.Cut(f, ":")
		given[k] = true
	}
	var lines []string
	for _, l := range base {
		if k, _, _ := strings.Cut(l, ":"); !given[k] {
			lines = append(lines, l)
		}
	}
	lines = append(lines, fields...)
	return "  - " + strings.Join(lines, "\n    ") + "\n"
}

// subscriptionsFile is a configuration file with brokers and the entries.
func subscriptionsFile(entries ...string) string {
	return "brokers: [kafka:9092]\nsubscriptions:\n" + strings.Join(entries, "")
}

func loadFile(t *testing.T, file string, args ...string) (config.Config, error) {
	t.Helper()
	return config.Load(append([]string{"--config=k.yaml"}, args...), env{}.lookup, files{"k.yaml": file}.read)
}

func TestLoadSubscriptionsEveryField(t *testing.T) {
	file := `brokers: [kafka:9092]
rebalance_timeout: 2m
subscriptions:
  - name: orders
    topics: [orders, refunds]
    topic_regex: "orders\\.v[0-9]+"
    webhook_url: https://app.internal:8443/kafka/orders
    group_id: app-orders
    start_offset: latest
    attempt_timeout: 90s
    retry:
      initial_backoff: 100ms
      max_backoff: 1m
      multiplier: 1.5
      jitter: 0.5
      max_attempts: 3
      max_elapsed: 10m
    permanent_statuses: [400, 404, 422]
    on_exhausted: dead-letter
    dead_letter_topic: orders-dlq
    cloudevent_type: com.example.order
    default_content_type: application/json
    headers:
      Authorization: Bearer s3cret
      X-Tenant: acme
    ordering: partition
    max_in_flight: 1
    max_concurrency: 8
    batch:
      max_records: 500
      max_bytes: 262144
      max_wait: 50ms
  - topics: audit
    webhook_url: http://127.0.0.1:3000/audit
    group_id: app-audit
    on_exhausted: block
    permanent_statuses: []
`
	cfg, err := loadFile(t, file)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	orders := config.Subscription{
		Name: "orders", Topics: []string{"orders", "refunds"}, TopicRegex: `orders\.v[0-9]+`,
		WebhookURL: "https://app.internal:8443/kafka/orders", GroupID: "app-orders", StartOffset: "latest",
		AttemptTimeout: 90 * time.Second,
		Retry: config.Retry{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Minute, Multiplier: 1.5,
			Jitter: 0.5, MaxAttempts: 3, MaxElapsed: 10 * time.Minute},
		PermanentStatuses: []int{400, 404, 422}, OnExhausted: "dead-letter", DeadLetterTopic: "orders-dlq",
		CloudEventType: "com.example.order", ContentType: "application/json",
		Headers:  map[string]string{"Authorization": "Bearer s3cret", "X-Tenant": "acme"},
		Ordering: "partition", MaxInFlight: 1, MaxConcurrency: 8,
		Batch: config.Batch{MaxRecords: 500, MaxBytes: 256 << 10, MaxWait: 50 * time.Millisecond},
	}
	audit := config.DefaultSubscription()
	audit.Name = "app-audit" // an entry without a name is named after its group
	audit.Topics = []string{"audit"}
	audit.WebhookURL = "http://127.0.0.1:3000/audit"
	audit.GroupID = "app-audit"
	audit.PermanentStatuses = []int{} // an explicit empty list: none

	want := []config.Subscription{orders, audit}
	if !reflect.DeepEqual(cfg.Subscriptions, want) {
		t.Errorf("Subscriptions =\n%+v\nwant\n%+v", cfg.Subscriptions, want)
	}
	if cfg.Consumer.RebalanceTimeout != 2*time.Minute {
		t.Errorf("RebalanceTimeout = %s, want the file's 2m", cfg.Consumer.RebalanceTimeout)
	}
}

// TestLoadSubscriptionDefaults checks the defaults a file entry takes,
// including those that follow from other fields.
func TestLoadSubscriptionDefaults(t *testing.T) {
	tests := []struct {
		name string
		file string
		want func(s *config.Subscription)
	}{
		{name: "the minimum", file: entry(), want: func(s *config.Subscription) {}},
		{name: "dead-letter topic sets dead-letter", file: entry("dead_letter_topic: orders-dlq"), want: func(s *config.Subscription) {
			s.DeadLetterTopic, s.OnExhausted = "orders-dlq", "dead-letter"
		}},
		{name: "no name: the group id", file: entry("name:"), want: func(s *config.Subscription) { s.Name = "app-orders" }},
		{name: "null keeps defaults", file: entry("retry:", "permanent_statuses: ~", "attempt_timeout: null", "on_exhausted:"), want: func(s *config.Subscription) {}},
		{name: "part of retry", file: entry("retry: {max_attempts: 5}"), want: func(s *config.Subscription) { s.Retry.MaxAttempts = 5 }},
		{name: "topics as a comma string", file: entry("topics: orders, refunds"), want: func(s *config.Subscription) { s.Topics = []string{"orders", "refunds"} }},
		{name: "values trimmed", file: entry(`webhook_url: " http://127.0.0.1:3000/kafka "`), want: func(s *config.Subscription) {}},
		{name: "regex only", file: entry("topics: []", `topic_regex: "orders-.*"`), want: func(s *config.Subscription) {
			s.Topics, s.TopicRegex = []string{}, "orders-.*"
		}},
		// Batching is off unless max_records is given; then the other two
		// take their defaults.
		{name: "batch on with defaults", file: entry("batch: {max_records: 100}"), want: func(s *config.Subscription) {
			s.Batch = config.Batch{MaxRecords: 100, MaxBytes: 1 << 20, MaxWait: 10 * time.Millisecond}
		}},
		{name: "batch with every key", file: entry("batch: {max_records: 10000, max_bytes: 67108864, max_wait: 1m}"), want: func(s *config.Subscription) {
			s.Batch = config.Batch{MaxRecords: 10000, MaxBytes: 64 << 20, MaxWait: time.Minute}
		}},
		{name: "batch sent at once", file: entry("batch: {max_records: 1, max_bytes: 1, max_wait: 0s}"), want: func(s *config.Subscription) {
			s.Batch = config.Batch{MaxRecords: 1, MaxBytes: 1, MaxWait: 0}
		}},
		{name: "batch null keeps it off", file: entry("batch:"), want: func(s *config.Subscription) {}},
		{name: "batch empty keeps it off", file: entry("batch: {}"), want: func(s *config.Subscription) {}},
		{name: "batch null keys keep defaults", file: entry("batch: {max_records: 5, max_bytes: ~, max_wait: null}"), want: func(s *config.Subscription) {
			s.Batch = config.Batch{MaxRecords: 5, MaxBytes: 1 << 20, MaxWait: 10 * time.Millisecond}
		}},
		// The regex is anchored, so "orders" does not match "orders-dlq".
		{name: "regex anchored against its DLQ", file: entry("topics: []", "topic_regex: orders", "dead_letter_topic: orders-dlq"), want: func(s *config.Subscription) {
			s.Topics, s.TopicRegex, s.DeadLetterTopic, s.OnExhausted = []string{}, "orders", "orders-dlq", "dead-letter"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadFile(t, subscriptionsFile(tt.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := config.DefaultSubscription()
			want.Name, want.Topics, want.WebhookURL, want.GroupID = "orders", []string{"orders"}, "http://127.0.0.1:3000/kafka", "app-orders"
			tt.want(&want)
			if !reflect.DeepEqual(cfg.Subscriptions, []config.Subscription{want}) {
				t.Errorf("Subscriptions =\n%+v\nwant\n%+v", cfg.Subscriptions, []config.Subscription{want})
			}
		})
	}
}

// TestLoadSubscriptionAliases: anchors let one file share settings between
// subscriptions.
func TestLoadSubscriptionAliases(t *testing.T) {
	file := subscriptionsFile(
		entry("retry: &r {max_attempts: 4, initial_backoff: 1s}", "headers: &h {X-Tenant: acme}"),
		entry("name: refunds", "topics: [refunds]", "group_id: app-refunds", "retry: *r", "headers: *h"),
	)
	cfg, err := loadFile(t, file)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, s := range cfg.Subscriptions {
		if s.Retry.MaxAttempts != 4 || s.Retry.InitialBackoff != time.Second || s.Headers["X-Tenant"] != "acme" {
			t.Errorf("%s: retry %+v, headers %v: want the shared settings", s.Name, s.Retry, s.Headers)
		}
	}
}

func TestLoadShorthand(t *testing.T) {
	subscribe := env{
		"KBRIDGE_BROKERS":          "kafka:9092",
		"KBRIDGE_SUBSCRIBE_TOPICS": "orders, refunds",
		"KBRIDGE_WEBHOOK_URL":      "http://127.0.0.1:3000/kafka",
		"KBRIDGE_GROUP_ID":         "app",
	}
	base := config.DefaultSubscription()
	base.Name, base.Topics, base.WebhookURL, base.GroupID = "default", []string{"orders", "refunds"}, "http://127.0.0.1:3000/kafka", "app"

	tests := []struct {
		name string
		args []string
		env  env
		file string // flat keys of k.yaml
		bare bool   // without the subscribing environment
		want func(s *config.Subscription)
	}{
		{name: "env", want: func(s *config.Subscription) {}},
		{name: "every option", env: env{"KBRIDGE_DEAD_LETTER_TOPIC": "app-dlq", "KBRIDGE_ORDERING": "partition", "KBRIDGE_MAX_IN_FLIGHT": "1", "KBRIDGE_MAX_CONCURRENCY": "5",
			"KBRIDGE_BATCH_MAX_RECORDS": "200", "KBRIDGE_BATCH_MAX_BYTES": "65536", "KBRIDGE_BATCH_MAX_WAIT": "25ms"},
			want: func(s *config.Subscription) {
				s.DeadLetterTopic, s.OnExhausted, s.MaxConcurrency = "app-dlq", "dead-letter", 5
				s.Batch = config.Batch{MaxRecords: 200, MaxBytes: 64 << 10, MaxWait: 25 * time.Millisecond}
			}},
		{name: "batch on with defaults", env: env{"KBRIDGE_BATCH_MAX_RECORDS": "50"},
			want: func(s *config.Subscription) {
				s.Batch = config.Batch{MaxRecords: 50, MaxBytes: 1 << 20, MaxWait: 10 * time.Millisecond}
			}},
		{name: "batch flags win over env", args: []string{"--batch-max-records=7", "--batch-max-wait=0s"}, env: env{"KBRIDGE_BATCH_MAX_RECORDS": "50", "KBRIDGE_BATCH_MAX_WAIT": "1s"},
			want: func(s *config.Subscription) {
				s.Batch = config.Batch{MaxRecords: 7, MaxBytes: 1 << 20, MaxWait: 0}
			}},
		{name: "empty batch env is unset", env: env{"KBRIDGE_BATCH_MAX_RECORDS": "", "KBRIDGE_BATCH_MAX_BYTES": " "},
			want: func(s *config.Subscription) {}},
		{name: "flags win over env", args: []string{"--subscribe-topics=payments", "--group-id=other", "--webhook-url=http://127.0.0.1:9/x", "--max-concurrency=2"},
			env: env{"KBRIDGE_MAX_CONCURRENCY": "7"},
			want: func(s *config.Subscription) {
				s.Topics, s.GroupID, s.WebhookURL, s.MaxConcurrency = []string{"payments"}, "other", "http://127.0.0.1:9/x", 2
			}},
		{name: "env wins over flat file keys", file: "group_id: from-file\ndead_letter_topic: file-dlq\n",
			want: func(s *config.Subscription) { s.DeadLetterTopic, s.OnExhausted = "file-dlq", "dead-letter" }},
		{name: "flat file keys alone", file: "subscribe_topics: [a, b]\nwebhook_url: http://127.0.0.1:1/\ngroup_id: g\n", bare: true, env: env{"KBRIDGE_BROKERS": "kafka:9092"},
			want: func(s *config.Subscription) {
				s.Topics, s.WebhookURL, s.GroupID = []string{"a", "b"}, "http://127.0.0.1:1/", "g"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mergeEnv(subscribe, tt.env)
			if tt.bare {
				e = tt.env
			}
			args := append([]string{"--config=k.yaml"}, tt.args...)
			cfg, err := config.Load(args, e.lookup, files{"k.yaml": tt.file}.read)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := base
			want.Topics = append([]string(nil), base.Topics...)
			tt.want(&want)
			if !reflect.DeepEqual(cfg.Subscriptions, []config.Subscription{want}) {
				t.Errorf("Subscriptions =\n%+v\nwant\n%+v", cfg.Subscriptions, []config.Subscription{want})
			}
		})
	}
}

func mergeEnv(envs ...env) env {
	out := env{}
	for _, e := range envs {
		for k, v := range e {
			out[k] = v
		}
	}
	return out
}

// TestLoadNoSubscription: publishing only, or dev mode, where the app adds
// its own echo webhook.
func TestLoadNoSubscription(t *testing.T) {
	for _, args := range [][]string{{"--dev"}, {"--brokers=kafka:9092"}} {
		cfg, err := config.Load(args, env{}.lookup, noFiles(t))
		if err != nil {
			t.Fatalf("Load(%q): %v", args, err)
		}
		if len(cfg.Subscriptions) != 0 {
			t.Errorf("Load(%q): Subscriptions = %+v, want none", args, cfg.Subscriptions)
		}
	}
}

func TestDefaultSubscription(t *testing.T) {
	s := config.DefaultSubscription()
	want := config.Subscription{
		StartOffset: "earliest", AttemptTimeout: 30 * time.Second,
		Retry:             config.Retry{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second, Multiplier: 2, Jitter: 1, MaxAttempts: 10},
		PermanentStatuses: []int{400, 410, 413, 415, 422}, OnExhausted: "block",
		CloudEventType: "kbridge.record", ContentType: "application/octet-stream",
		Ordering: "partition", MaxInFlight: 1, MaxConcurrency: 64,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("DefaultSubscription() =\n%+v\nwant\n%+v", s, want)
	}
	if !reflect.DeepEqual(s.Retry, config.DefaultRetry()) {
		t.Errorf("DefaultSubscription().Retry = %+v, want DefaultRetry() %+v", s.Retry, config.DefaultRetry())
	}
	// Each call returns its own list, so one subscription's change cannot
	// leak into another's.
	s.PermanentStatuses[0] = 499
	if config.DefaultSubscription().PermanentStatuses[0] != 400 {
		t.Error("DefaultSubscription shares its PermanentStatuses")
	}
	c := config.Default().Consumer
	if c != (config.Consumer{SessionTimeout: 45 * time.Second, RebalanceTimeout: time.Minute, CommitInterval: time.Second}) {
		t.Errorf("Default().Consumer = %+v", c)
	}
}

func TestAnchoredTopicRegex(t *testing.T) {
	tests := []struct{ regex, want string }{
		{"", ""},
		{"orders", "^(?:orders)$"},
		{"a|b", "^(?:a|b)$"}, // the group keeps the anchors on every branch
	}
	for _, tt := range tests {
		if got := (config.Subscription{TopicRegex: tt.regex}).AnchoredTopicRegex(); got != tt.want {
			t.Errorf("AnchoredTopicRegex(%q) = %q, want %q", tt.regex, got, tt.want)
		}
	}
}

// TestLogValueSubscriptions: the effective configuration shows each
// subscription, but never a header value or a URL's query values, which
// may be credentials.
func TestLogValueSubscriptions(t *testing.T) {
	cfg, err := loadFile(t, subscriptionsFile(entry(
		"webhook_url: http://127.0.0.1:3000/kafka?token=query-secret",
		"headers: {Authorization: Bearer header-secret}",
		"dead_letter_topic: orders-dlq",
	)), "--instance-id=pod-0")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, h := range []func(w io.Writer, opts *slog.HandlerOptions) slog.Handler{
		func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewJSONHandler(w, o) },
		func(w io.Writer, o *slog.HandlerOptions) slog.Handler { return slog.NewTextHandler(w, o) },
	} {
		out := logged(h, "config", cfg)
		for _, secret := range []string{"header-secret", "query-secret"} {
			if strings.Contains(out, secret) {
				t.Errorf("log holds %q:\n%s", secret, out)
			}
		}
		for _, want := range []string{"Authorization", "orders-dlq", "app-orders", "dead-letter", "partition", "pod-0", "token=REDACTED"} {
			if !strings.Contains(out, want) {
				t.Errorf("log does not show %q:\n%s", want, out)
			}
		}
	}

	var entry struct {
		Config struct {
			Subscriptions map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(logged(slog.NewJSONHandler, "config", cfg)), &entry); err != nil {
		t.Fatalf("decode log line: %v", err)
	}
	orders := entry.Config.Subscriptions["orders"]
	for _, key := range []string{"name", "topics", "topic_regex", "webhook_url", "group_id", "ordering", "on_exhausted", "dead_letter_topic", "header_names", "batch"} {
		if _, ok := orders[key]; !ok {
			t.Errorf("logged subscription lacks %q: %v", key, orders)
		}
	}
	batch, _ := orders["batch"].(map[string]any)
	for _, key := range []string{"max_records", "max_bytes", "max_wait"} {
		if _, ok := batch[key]; !ok {
			t.Errorf("logged batch lacks %q: %v", key, orders["batch"])
		}
	}
}
