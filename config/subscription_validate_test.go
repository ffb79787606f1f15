package config_test

import (
	"strings"
	"testing"

	"github.com/kbridge/kbridge/config"
)

// TestLoadRejectsSubscription feeds Load one bad subscription setting at a
// time, on top of an otherwise valid file, and checks that the error names
// the entry and field (or, for the one-subscription options, the option).
func TestLoadRejectsSubscription(t *testing.T) {
	const at = "subscriptions[0] (orders)."
	tests := []struct {
		name    string
		file    string // the subscriptions entries
		args    []string
		wantErr []string
		notIn   string // must not appear in the error
	}{
		// Decoding.
		{name: "unknown key", file: entry() + entry("name: b", "group_id: b", "webhok_url: http://x/"), wantErr: []string{`subscriptions[1]: unknown key "webhok_url" (line 11)`}},
		{name: "unknown retry key", file: entry("retry: {max_attemps: 3}"), wantErr: []string{`subscriptions[0].retry: unknown key "max_attemps"`}},
		{name: "key twice", file: entry("group_id: a", "ordering: partition", "ordering: key"), wantErr: []string{`subscriptions[0]: key "ordering" given twice`}},
		{name: "not a list", file: "  orders: {}\n", wantErr: []string{"subscriptions: expected a list of subscriptions"}},
		{name: "entry not a mapping", file: "  - orders\n", wantErr: []string{"subscriptions[0]: expected a mapping"}},
		{name: "retry not a mapping", file: entry("retry: 3"), wantErr: []string{"subscriptions[0].retry: expected a mapping"}},
		{name: "unknown batch key", file: entry("batch: {max_records: 10, max_recs: 3}"), wantErr: []string{`subscriptions[0].batch: unknown key "max_recs"`}},
		{name: "batch not a mapping", file: entry("batch: 100"), wantErr: []string{"subscriptions[0].batch: expected a mapping"}},
		{name: "batch records not a number", file: entry("batch: {max_records: many, max_bytes: 10}"), wantErr: []string{`subscriptions[0].batch.max_records: "many" is not an integer`}, notIn: "needs batch.max_records"},
		{name: "batch wait not a duration", file: entry("batch: {max_records: 10, max_wait: 10}"), wantErr: []string{`subscriptions[0].batch.max_wait: "10" is not a duration`}, notIn: at + "batch.max_wait"},
		{name: "batch bytes without records", file: entry("batch: {max_bytes: 4096}"), wantErr: []string{"subscriptions[0].batch.max_bytes: needs batch.max_records"}},
		{name: "batch wait without records", file: entry("batch:", "  max_wait: 0s"), wantErr: []string{"subscriptions[0].batch.max_wait: needs batch.max_records", "(line 8)"}},
		{name: "batch bytes and wait without records", file: entry("batch: {max_records: ~, max_bytes: 1, max_wait: 1s}"),
			wantErr: []string{"subscriptions[0].batch.max_bytes: needs batch.max_records", "subscriptions[0].batch.max_wait: needs batch.max_records"}},
		{name: "headers not a mapping", file: entry("headers: [a]"), wantErr: []string{"subscriptions[0].headers: expected a mapping"}},
		{name: "topics a mapping", file: entry("topics: {a: 1}"), wantErr: []string{"subscriptions[0].topics: expected a list"}},
		{name: "nested topic list", file: entry("topics: [[a]]"), wantErr: []string{"subscriptions[0].topics: expected a plain value"}},
		{name: "duration without unit", file: entry("attempt_timeout: 30"), wantErr: []string{`subscriptions[0].attempt_timeout: "30" is not a duration`}},
		{name: "retry duration", file: entry("retry: {max_backoff: soon}"), wantErr: []string{`subscriptions[0].retry.max_backoff: "soon" is not a duration`}},
		{name: "int with unit", file: entry("max_concurrency: 10x"), wantErr: []string{`subscriptions[0].max_concurrency: "10x" is not an integer`}},
		{name: "float not a number", file: entry("retry: {jitter: full}"), wantErr: []string{`subscriptions[0].retry.jitter: "full" is not a number`}},
		{name: "status not an int", file: entry("permanent_statuses: [400, bad]"), wantErr: []string{`subscriptions[0].permanent_statuses: "bad" is not an integer`}},
		{name: "merge key", file: entry("retry: {<<: {max_attempts: 1}}"), wantErr: []string{"merge keys (<<) are not supported"}},

		// Where records come from.
		{name: "duplicate name", file: entry() + entry("group_id: other"), wantErr: []string{`subscriptions[1] (orders).name: "orders" is also the name of subscriptions[0]`}},
		{name: "neither topics nor regex", file: entry("topics: []"), wantErr: []string{at + "topics: required"}},
		{name: "topic with a space", file: entry("topics: [a b]"), wantErr: []string{at + `topics: "a b" is not a valid topic name`}},
		{name: "topic ..", file: entry("topics: [..]"), wantErr: []string{at + `topics: ".." is not a valid topic name`}},
		{name: "topic too long", file: entry("topics: [" + strings.Repeat("t", 250) + "]"), wantErr: []string{at + "topics:", "1 to 249 characters"}},
		{name: "topic twice", file: entry("topics: [a, a]"), wantErr: []string{at + `topics: "a" is listed twice`}},
		{name: "regex does not compile", file: entry(`topic_regex: "orders("`), wantErr: []string{at + "topic_regex: error parsing regexp", "`orders(`"}},
		{name: "no group", file: entry("group_id: ''"), wantErr: []string{at + "group_id: required"}},
		{name: "no group, no name", file: entry("name:", "group_id:"), wantErr: []string{"subscriptions[0].group_id: required"}},
		{name: "duplicate group", file: entry() + entry("name: b"), wantErr: []string{`subscriptions[1] (b).group_id: "app-orders" is also the group of subscriptions[0]`}},
		{name: "start offset", file: entry("start_offset: newest"), wantErr: []string{at + `start_offset: must be earliest or latest, got "newest"`}},

		// Exhausted records.
		{name: "dead-letter without topic", file: entry("on_exhausted: dead-letter"), wantErr: []string{at + "on_exhausted: dead-letter needs a dead_letter_topic"}},
		{name: "block with a topic", file: entry("on_exhausted: block", "dead_letter_topic: dlq"), wantErr: []string{at + "dead_letter_topic: set, but on_exhausted is block"}},
		{name: "unknown policy", file: entry("on_exhausted: skip"), wantErr: []string{at + `on_exhausted: must be dead-letter or block, got "skip"`}},
		{name: "invalid DLQ", file: entry("dead_letter_topic: a/b"), wantErr: []string{at + `dead_letter_topic: "a/b" is not a valid topic name`}},
		{name: "DLQ among its topics", file: entry("topics: [orders, orders-dlq]", "dead_letter_topic: orders-dlq"), wantErr: []string{at + `dead_letter_topic: "orders-dlq" is one of the subscription's own topics`}},
		{name: "regex matches its DLQ", file: entry(`topic_regex: "orders.*"`, "dead_letter_topic: orders-dlq"), wantErr: []string{at + `dead_letter_topic: "orders-dlq" matches the subscription's topic_regex "orders.*"`}},

		// The webhook.
		{name: "no webhook", file: entry("webhook_url:"), wantErr: []string{at + "webhook_url: required"}},
		{name: "relative webhook", file: entry("webhook_url: /kafka"), wantErr: []string{at + "webhook_url: must be an absolute http or https URL"}},
		{name: "ftp webhook", file: entry("webhook_url: ftp://host/x"), wantErr: []string{at + `webhook_url: must be an absolute http or https URL (such as http://127.0.0.1:3000/kafka), got scheme "ftp"`}},
		{name: "webhook without host", file: entry("webhook_url: http:///kafka"), wantErr: []string{at + "webhook_url: has no host"}},
		{name: "webhook with user info", file: entry("webhook_url: http://app:pa55word@127.0.0.1/"), wantErr: []string{at + "webhook_url: must not hold user info"}, notIn: "pa55word"},
		{name: "webhook unparsable", file: entry(`webhook_url: "http://[::1"`), wantErr: []string{at + "webhook_url: not a valid URL: missing ']' in host"}},
		{name: "zero attempt timeout", file: entry("attempt_timeout: 0s"), wantErr: []string{at + "attempt_timeout: must be positive, got 0s"}},
		{name: "2xx permanent", file: entry("permanent_statuses: [400, 204]"), wantErr: []string{at + "permanent_statuses: 204 is a success"}},
		{name: "status too small", file: entry("permanent_statuses: [99]"), wantErr: []string{at + "permanent_statuses: 99 is not an HTTP status"}},
		{name: "status too big", file: entry("permanent_statuses: [600]"), wantErr: []string{at + "permanent_statuses: 600 is not an HTTP status"}},
		{name: "empty CloudEvent type", file: entry("cloudevent_type: ''"), wantErr: []string{at + "cloudevent_type: must not be empty"}},
		{name: "bad content type", file: entry("default_content_type: json please"), wantErr: []string{at + `default_content_type: "json please" is not a media type`}},
		{name: "header name not a token", file: entry(`headers: {"X Tenant": a}`), wantErr: []string{at + `headers: "X Tenant" is not a valid header name`}},
		{name: "header value with newline", file: entry(`headers: {Authorization: "Bearer to\nken"}`), wantErr: []string{at + `headers: "Authorization": the value holds a character`}, notIn: "to\nken"},
		{name: "header twice by case", file: entry("headers: {X-Tenant: a, x-tenant: b}"), wantErr: []string{at + `headers: "X-Tenant" and "x-tenant" are the same header`}},
		{name: "header key twice", file: entry("headers: {X-Tenant: a, X-Tenant: b}"), wantErr: []string{`subscriptions[0].headers: key "X-Tenant" given twice`}},
		{name: "header Content-Type", file: entry("headers: {Content-Type: text/plain}"), wantErr: []string{at + `headers: "Content-Type" is set by kbridge`}},
		{name: "header idempotency-key", file: entry("headers: {idempotency-key: x}"), wantErr: []string{at + `headers: "idempotency-key" is set by kbridge`}},
		{name: "header Delivery-Attempt", file: entry("headers: {Delivery-Attempt: 1}"), wantErr: []string{at + `headers: "Delivery-Attempt" is set by kbridge`}},
		{name: "header traceparent", file: entry("headers: {Traceparent: x}"), wantErr: []string{at + `headers: "Traceparent" is set by kbridge`}},
		{name: "header tracestate", file: entry("headers: {tracestate: x}"), wantErr: []string{at + `headers: "tracestate" is set by kbridge`}},
		{name: "header ce-", file: entry("headers: {CE-Source: x}"), wantErr: []string{at + `headers: "CE-Source" is set by kbridge`}},
		{name: "header Kafka-", file: entry("headers: {kafka-topic: x}"), wantErr: []string{at + `headers: "kafka-topic" is set by kbridge`}},
		{name: "header Host", file: entry("headers: {Host: x}"), wantErr: []string{at + `headers: "Host" is set by kbridge or its HTTP client`}},

		// Retries.
		{name: "zero initial backoff", file: entry("retry: {initial_backoff: 0s}"), wantErr: []string{at + "retry.initial_backoff: must be positive, got 0s"}},
		{name: "max below initial", file: entry("retry: {initial_backoff: 2s, max_backoff: 1s}"), wantErr: []string{at + "retry.max_backoff: must be positive and at least retry.initial_backoff (2s), got 1s"}},
		{name: "multiplier below 1", file: entry("retry: {multiplier: 0.5}"), wantErr: []string{at + "retry.multiplier: must be a finite number of at least 1, got 0.5"}},
		{name: "multiplier infinite", file: entry("retry: {multiplier: Inf}"), wantErr: []string{at + "retry.multiplier: must be a finite number"}},
		{name: "multiplier NaN", file: entry("retry: {multiplier: NaN}"), wantErr: []string{at + "retry.multiplier: must be a finite number"}},
		{name: "jitter above 1", file: entry("retry: {jitter: 1.5}"), wantErr: []string{at + "retry.jitter: must be from 0 (no jitter) to 1 (full jitter), got 1.5"}},
		{name: "jitter negative", file: entry("retry: {jitter: -0.1}"), wantErr: []string{at + "retry.jitter: must be from 0"}},
		{name: "zero attempts", file: entry("retry: {max_attempts: 0}"), wantErr: []string{at + "retry.max_attempts: must be at least 1, got 0"}},
		{name: "negative max elapsed", file: entry("retry: {max_elapsed: -1s}"), wantErr: []string{at + "retry.max_elapsed: must be zero (no limit) or positive, got -1s"}},

		// Ordering and flow.
		{name: "ordering unknown", file: entry("ordering: keys"), wantErr: []string{at + `ordering: must be partition, key or none, got "keys"`}},
		{name: "ordering none without room", file: entry("ordering: none\n    max_in_flight: 0"), wantErr: []string{at + `max_in_flight: must be at least 1`}},
		{name: "unknown ordering", file: entry("ordering: random"), wantErr: []string{at + `ordering: must be partition, key or none, got "random"`}},
		{name: "partition with a window", file: entry("max_in_flight: 2"), wantErr: []string{at + "max_in_flight: must be 1 with ordering partition"}},
		{name: "zero window without partition", file: entry("ordering: none", "max_in_flight: 0"), wantErr: []string{at + "max_in_flight: must be at least 1, got 0"}},
		{name: "zero concurrency", file: entry("max_concurrency: 0"), wantErr: []string{at + "max_concurrency: must be at least 1, got 0"}},

		// Batches.
		{name: "zero batch records", file: entry("batch: {max_records: 0}"), wantErr: []string{at + "batch.max_records: must be from 1 to 10000, got 0"}},
		{name: "negative batch records", file: entry("batch: {max_records: -5}"), wantErr: []string{at + "batch.max_records: must be from 1 to 10000, got -5"}},
		{name: "too many batch records", file: entry("batch: {max_records: 10001}"), wantErr: []string{at + "batch.max_records: must be from 1 to 10000, got 10001"}},
		{name: "zero batch bytes", file: entry("batch: {max_records: 10, max_bytes: 0}"), wantErr: []string{at + "batch.max_bytes: must be from 1 to 67108864 (64 MiB), got 0"}},
		{name: "too many batch bytes", file: entry("batch: {max_records: 10, max_bytes: 67108865}"), wantErr: []string{at + "batch.max_bytes: must be from 1 to 67108864 (64 MiB), got 67108865"}},
		{name: "negative batch wait", file: entry("batch: {max_records: 10, max_wait: -1ms}"), wantErr: []string{at + "batch.max_wait: must be from 0 (send at once what is there) to 1m0s, got -1ms"}},
		{name: "batch wait too long", file: entry("batch: {max_records: 10, max_wait: 61s}"), wantErr: []string{at + "batch.max_wait: must be from 0 (send at once what is there) to 1m0s, got 1m1s"}},
		{name: "every batch problem at once", file: entry("batch: {max_records: 0, max_bytes: -1, max_wait: 2m}"),
			wantErr: []string{at + "batch.max_records:", at + "batch.max_bytes:", at + "batch.max_wait:"}},

		// The group settings.
		{name: "zero session timeout", file: entry(), args: []string{"--session-timeout=0s"}, wantErr: []string{"session-timeout: must be positive, got 0s"}},
		{name: "zero rebalance timeout", file: entry(), args: []string{"--rebalance-timeout=0s"}, wantErr: []string{"rebalance-timeout: must be positive, got 0s"}},
		{name: "zero commit interval", file: entry(), args: []string{"--commit-interval=0s"}, wantErr: []string{"commit-interval: must be positive, got 0s"}},
		{name: "rebalance shorter than an attempt", file: entry() + entry("name: slow", "group_id: slow", "attempt_timeout: 2m"),
			wantErr: []string{"rebalance-timeout: must be longer than subscriptions[1] (slow).attempt_timeout (2m0s), got 1m0s"}},
		{name: "rebalance equal to an attempt", file: entry("attempt_timeout: 30s"), args: []string{"--rebalance-timeout=30s"},
			wantErr: []string{"rebalance-timeout: must be longer than " + at + "attempt_timeout (30s), got 30s"}},

		// Shorthand and list together.
		{name: "shorthand and list", file: entry(), args: []string{"--subscribe-topics=a", "--group-id=g"},
			wantErr: []string{"subscriptions: use either the config file's subscriptions list or the one-subscription options (subscribe-topics, group-id), not both"}},
		{name: "shorthand option and list", file: entry(), args: []string{"--webhook-url=http://127.0.0.1:1/"},
			wantErr: []string{"subscriptions: use either", "(webhook-url)"}},
		{name: "batch option and list", file: entry(), args: []string{"--batch-max-records=10"},
			wantErr: []string{"subscriptions: use either", "(batch-max-records)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadFile(t, subscriptionsFile(tt.file), tt.args...)
			wantErrContains(t, err, tt.wantErr...)
			if tt.notIn != "" && err != nil && strings.Contains(err.Error(), tt.notIn) {
				t.Errorf("error shows %q:\n%v", tt.notIn, err)
			}
			if cfg.GRPCAddr != "" {
				t.Errorf("Load returned a configuration with its error: %+v", cfg)
			}
		})
	}
}

// TestLoadRejectsShorthand checks the one-subscription options: problems
// name the option, not a YAML field.
func TestLoadRejectsShorthand(t *testing.T) {
	subscribe := env{
		"KBRIDGE_BROKERS":          "kafka:9092",
		"KBRIDGE_SUBSCRIBE_TOPICS": "orders",
		"KBRIDGE_WEBHOOK_URL":      "http://127.0.0.1:3000/kafka",
		"KBRIDGE_GROUP_ID":         "app",
	}
	tests := []struct {
		name    string
		env     env
		args    []string
		wantErr []string
	}{
		{name: "no group", args: []string{"--group-id="}, wantErr: []string{"group-id: required"}},
		{name: "no webhook", args: []string{"--webhook-url="}, wantErr: []string{"webhook-url: required"}},
		{name: "bad webhook", env: env{"KBRIDGE_WEBHOOK_URL": "localhost:3000"}, wantErr: []string{"webhook-url: must be an absolute http or https URL"}},
		{name: "bad topic", env: env{"KBRIDGE_SUBSCRIBE_TOPICS": "orders, a b"}, wantErr: []string{`subscribe-topics: "a b" is not a valid topic name`}},
		{name: "DLQ among its topics", args: []string{"--dead-letter-topic=orders"}, wantErr: []string{`dead-letter-topic: "orders" is one of the subscription's own topics`}},
		{name: "ordering unknown", env: env{"KBRIDGE_ORDERING": "random"}, wantErr: []string{`ordering: must be partition, key or none, got "random"`}},
		{name: "window with partition", args: []string{"--max-in-flight=5"}, wantErr: []string{"max-in-flight: must be 1 with ordering partition"}},
		{name: "window not a number", args: []string{"--max-in-flight=many"}, wantErr: []string{`max-in-flight: "many" is not an integer`, "(from --max-in-flight)"}},
		{name: "zero concurrency", env: env{"KBRIDGE_MAX_CONCURRENCY": "0"}, wantErr: []string{"max-concurrency: must be at least 1, got 0"}},
		{name: "batch records out of range", env: env{"KBRIDGE_BATCH_MAX_RECORDS": "20000"}, wantErr: []string{"batch-max-records: must be from 1 to 10000, got 20000"}},
		{name: "batch bytes out of range", env: env{"KBRIDGE_BATCH_MAX_RECORDS": "10", "KBRIDGE_BATCH_MAX_BYTES": "0"}, wantErr: []string{"batch-max-bytes: must be from 1 to 67108864"}},
		{name: "batch wait negative", args: []string{"--batch-max-records=10", "--batch-max-wait=-5ms"}, wantErr: []string{"batch-max-wait: must be from 0", "got -5ms"}},
		{name: "batch wait not a duration", env: env{"KBRIDGE_BATCH_MAX_RECORDS": "10", "KBRIDGE_BATCH_MAX_WAIT": "10"}, wantErr: []string{`batch-max-wait: "10" is not a duration`, "(from KBRIDGE_BATCH_MAX_WAIT)"}},
		{name: "batch bytes without records", env: env{"KBRIDGE_BATCH_MAX_BYTES": "4096"},
			wantErr: []string{"batch-max-bytes: needs batch-max-records (KBRIDGE_BATCH_MAX_RECORDS)"}},
		{name: "batch wait without records, with another problem", env: env{"KBRIDGE_BATCH_MAX_WAIT": "5ms", "KBRIDGE_MAX_CONCURRENCY": "0"},
			wantErr: []string{"batch-max-wait: needs batch-max-records", "max-concurrency: must be at least 1"}},
		{name: "batch options without topics", env: env{"KBRIDGE_SUBSCRIBE_TOPICS": "", "KBRIDGE_WEBHOOK_URL": "", "KBRIDGE_GROUP_ID": "", "KBRIDGE_BATCH_MAX_RECORDS": "10"},
			wantErr: []string{"batch-max-records: set, but subscribe-topics (KBRIDGE_SUBSCRIBE_TOPICS) is not"}},
		{name: "rebalance shorter than an attempt", args: []string{"--rebalance-timeout=10s"},
			wantErr: []string{"rebalance-timeout: must be longer than subscription attempt_timeout (30s), got 10s"}},
		{name: "options without topics", env: env{"KBRIDGE_SUBSCRIBE_TOPICS": ""}, args: []string{"--ordering=partition"},
			wantErr: []string{
				"webhook-url: set, but subscribe-topics (KBRIDGE_SUBSCRIBE_TOPICS) is not",
				"group-id: set, but subscribe-topics", "ordering: set, but subscribe-topics",
			}},
		{name: "empty topics flag", args: []string{"--subscribe-topics= , "}, wantErr: []string{"group-id: set, but subscribe-topics"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.args, mergeEnv(subscribe, tt.env).lookup, noFiles(t))
			wantErrContains(t, err, tt.wantErr...)
			if err != nil && strings.Contains(err.Error(), "subscriptions[") {
				t.Errorf("a problem of the one-subscription options names a YAML field:\n%v", err)
			}
		})
	}
}

// TestValidateReportsEverySubscriptionProblem checks that one broken
// subscription yields every one of its problems, not just the first.
func TestValidateReportsEverySubscriptionProblem(t *testing.T) {
	c := config.Default()
	c.Dev = true
	s := config.DefaultSubscription()
	s.Name = "orders"
	s.Retry = config.Retry{}
	s.OnExhausted = "dead-letter"
	s.Ordering = "keys"
	s.MaxConcurrency = 0
	s.Batch = config.Batch{MaxBytes: 1 << 20} // no MaxRecords
	c.Subscriptions = []config.Subscription{s}

	err := c.Validate()
	wantErrContains(t, err,
		"subscriptions[0] (orders).group_id: required", "subscriptions[0] (orders).topics: required",
		"subscriptions[0] (orders).webhook_url: required", "on_exhausted: dead-letter needs",
		"ordering:", "max_concurrency:", "retry.initial_backoff:", "retry.max_backoff:",
		"retry.multiplier:", "retry.max_attempts:", "batch.max_records:",
	)
	if n := len(strings.Split(err.Error(), "\n")); n != 11 {
		t.Errorf("Validate reported %d problems, want 11:\n%v", n, err)
	}
}
