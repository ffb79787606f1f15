package config_test

import (
	"testing"

	"github.com/kbridge/kbridge/config"
)

// FuzzLoad loads an arbitrary YAML file together with an arbitrary value for
// one option's environment variable. Invariants:
//   - Load never panics, whatever the file and the value;
//   - on success, the configuration it returns passes Validate();
//   - on failure, the error message is not empty (it names what to fix);
//   - Load is a pure function: the same inputs give the same result.
func FuzzLoad(f *testing.F) {
	f.Add("brokers:\n  - a:9092\n  - b:9092\nshutdown_timeout: 10s\n", uint8(0), "c:9092")
	f.Add("dev: true\nlog_format: json\nlog_level: debug\n", uint8(6), "1m")
	f.Add("brokers: a:9092, b:9092\nsasl_mechanism: scram-sha-256\nsasl_username: app\ntls: true\n", uint8(12), "s3cret")
	f.Add("dev: true\nmax_record_bytes: 2000\nmax_request_bytes: 1000\n", uint8(16), "3000")
	f.Add("dev: true\npartitioner: crc32\nacks: leader\ncompression: zstd\nlinger: 5ms\n", uint8(22), "-1s")
	f.Add("grpc_adr: typo\nbrokers: {a: 1}\n", uint8(4), "yes")
	f.Add("brokers: [a:9092\n", uint8(19), "")
	f.Add("", uint8(4), "true")
	// Subscriptions (options 26 to 35 are the one-subscription options, 36
	// to 39 the group settings).
	f.Add("brokers: [a:9092]\nsubscriptions:\n  - name: orders\n    topics: [orders]\n    webhook_url: http://127.0.0.1:3000/kafka\n    group_id: app\n    dead_letter_topic: orders-dlq\n    retry: {max_attempts: 3, jitter: 0.5, max_backoff: 1m}\n    headers: {Authorization: Bearer x}\n  - topic_regex: \"audit-.*\"\n    webhook_url: https://h/a\n    group_id: audit\n    permanent_statuses: []\n", uint8(38), "20s")
	f.Add("dev: true\nsubscribe_topics: a, b\nwebhook_url: http://127.0.0.1:1/\n", uint8(28), "g")
	f.Add("dev: true\nsubscriptions:\n  - {topics: a, webhook_url: \"http://x/\", group_id: g, ordering: key}\n", uint8(26), "t")
	f.Add("dev: true\nsubscriptions:\n  - &e {group_id: g, retry: *e, headers: *e, topics: *e}\n", uint8(31), "2")
	f.Add("dev: true\nsubscriptions: &s [*s]\n", uint8(39), "0s")
	f.Add("dev: true\nsubscriptions:\n  - {topics: a, webhook_url: \"http://x/\", group_id: g, batch: {max_records: 100, max_wait: 0s}}\n", uint8(34), "1")
	f.Add("dev: true\nsubscribe_topics: a\nwebhook_url: http://127.0.0.1:1/\ngroup_id: g\nbatch_max_bytes: 4096\n", uint8(33), "10")
	f.Add("dev: true\nsubscriptions:\n  - &b {group_id: g, batch: {max_records: *b, max_bytes: 1}}\n", uint8(35), "-1ms")

	opts := config.Options()
	f.Fuzz(func(t *testing.T, file string, opt uint8, value string) {
		o := opts[int(opt)%len(opts)]
		lookupEnv := env{"KBRIDGE_CONFIG": "fuzz.yaml", o.Env(): value}.lookup
		readFile := files{"fuzz.yaml": file}.read

		cfg, err := config.Load(nil, lookupEnv, readFile)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Load failed with an empty error message (%s=%q)", o.Env(), value)
			}
		} else if verr := cfg.Validate(); verr != nil {
			t.Fatalf("Load succeeded with a configuration that fails Validate: %v", verr)
		}

		cfg2, err2 := config.Load(nil, lookupEnv, readFile)
		if errString(err) != errString(err2) {
			t.Fatalf("Load is not deterministic: %v, then %v", err, err2)
		}
		if err == nil && cfg.LogValue().String() != cfg2.LogValue().String() {
			t.Fatalf("Load is not deterministic:\n%v\n%v", cfg.LogValue(), cfg2.LogValue())
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
