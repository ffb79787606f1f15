package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Option is one configuration setting: a flag --Name, an environment variable
// KBRIDGE_<NAME>, a YAML key <name> (dashes as underscores) and a default.
type Option struct {
	Name    string // flag name, e.g. "grpc-addr"
	Default string // shown in --help and the README; "" for none
	Help    string
	set     func(c *Config, v string) error
	bool    bool // a flag that may be given without a value
}

// Env is the option's environment variable.
func (o Option) Env() string {
	return "KBRIDGE_" + strings.ToUpper(strings.ReplaceAll(o.Name, "-", "_"))
}

// YAMLKey is the option's key in the configuration file.
func (o Option) YAMLKey() string { return strings.ReplaceAll(o.Name, "-", "_") }

// Options lists every setting in the order --help shows them.
func Options() []Option {
	d, sd := Default(), DefaultSubscription()
	return []Option{
		{Name: "brokers", Help: "comma-separated Kafka bootstrap brokers (host:port)",
			set: func(c *Config, v string) error { c.Brokers = splitList(v); return nil }},
		{Name: "grpc-addr", Default: d.GRPCAddr, Help: "listen address of the gRPC API",
			set: func(c *Config, v string) error { c.GRPCAddr = v; return nil }},
		{Name: "http-addr", Default: d.HTTPAddr, Help: "listen address of the REST API (grpc-gateway)",
			set: func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
		{Name: "admin-addr", Default: d.AdminAddr, Help: "listen address of /livez, /readyz, /metrics and /openapi.json (reachable by the kubelet)",
			set: func(c *Config, v string) error { c.AdminAddr = v; return nil }},
		{Name: "dev", Default: "false", bool: true, Help: "development mode: run an in-memory Kafka broker (data is lost on exit) and allow topic auto-creation",
			set: func(c *Config, v string) error { return parseBool(&c.Dev, v) }},
		{Name: "dev-kafka-addr", Default: d.DevKafkaAddr, Help: "where dev mode's in-memory broker listens, for other Kafka tools",
			set: func(c *Config, v string) error { c.DevKafkaAddr = v; return nil }},
		{Name: "shutdown-timeout", Default: d.ShutdownTimeout.String(), Help: "whole graceful-shutdown budget; keep it under the pod's termination grace period",
			set: func(c *Config, v string) error { return parseDuration(&c.ShutdownTimeout, v) }},
		{Name: "log-level", Default: "info", Help: "debug, info, warn or error",
			set: func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
		{Name: "log-format", Default: d.LogFormat, Help: "text or json",
			set: func(c *Config, v string) error { c.LogFormat = v; return nil }},

		{Name: "client-id", Default: d.Kafka.ClientID, Help: "Kafka client.id sent to the brokers",
			set: func(c *Config, v string) error { c.Kafka.ClientID = v; return nil }},
		{Name: "sasl-mechanism", Help: "SASL mechanism: plain, scram-sha-256 or scram-sha-512; empty for none",
			set: func(c *Config, v string) error { c.Kafka.SASLMechanism = strings.ToLower(v); return nil }},
		{Name: "sasl-username", Help: "SASL username",
			set: func(c *Config, v string) error { c.Kafka.SASLUsername = v; return nil }},
		{Name: "sasl-password", Help: "SASL password (never logged)",
			set: func(c *Config, v string) error { c.Kafka.SASLPassword = Secret(v); return nil }},
		{Name: "tls", Default: "false", bool: true, Help: "connect to the brokers over TLS",
			set: func(c *Config, v string) error { return parseBool(&c.Kafka.TLS, v) }},
		{Name: "tls-ca-file", Help: "PEM file of CAs that sign the brokers' certificates (default: the system's)",
			set: func(c *Config, v string) error { c.Kafka.TLSCAFile = v; return nil }},

		{Name: "publish-timeout", Default: d.Producer.PublishTimeout.String(), Help: "upper bound for a publish whose caller set no deadline",
			set: func(c *Config, v string) error { return parseDuration(&c.Producer.PublishTimeout, v) }},
		{Name: "max-record-bytes", Default: strconv.Itoa(d.Producer.MaxRecordBytes), Help: "largest key+value+headers accepted for one record; above 1 MiB, raise the broker's message.max.bytes too",
			set: func(c *Config, v string) error { return parseInt(&c.Producer.MaxRecordBytes, v) }},
		{Name: "max-request-bytes", Default: strconv.Itoa(d.Producer.MaxRequestBytes), Help: "largest publish request (gRPC message or REST body)",
			set: func(c *Config, v string) error { return parseInt(&c.Producer.MaxRequestBytes, v) }},
		{Name: "auto-create-topics", Default: "false (true in dev mode)", bool: true, Help: "let publishes create missing topics with the broker's default partitions",
			set: func(c *Config, v string) error {
				var b bool
				if err := parseBool(&b, v); err != nil {
					return err
				}
				c.Producer.AutoCreateTopics = &b
				return nil
			}},
		{Name: "partitioner", Default: d.Producer.Partitioner, Help: "key hashing: murmur2 (Java clients) or crc32 (librdkafka, for apps migrating from rdkafka)",
			set: func(c *Config, v string) error { c.Producer.Partitioner = v; return nil }},
		{Name: "acks", Default: d.Producer.Acks, Help: "all (idempotent, no loss while a replica survives) or leader",
			set: func(c *Config, v string) error { c.Producer.Acks = v; return nil }},
		{Name: "compression", Default: d.Producer.Compression, Help: "batch compression: none, gzip, snappy, lz4 or zstd",
			set: func(c *Config, v string) error { c.Producer.Compression = v; return nil }},
		{Name: "linger", Default: d.Producer.Linger.String(), Help: "how long a batch waits for more records before it is sent",
			set: func(c *Config, v string) error { return parseDuration(&c.Producer.Linger, v) }},
		{Name: "max-buffered-records", Default: strconv.Itoa(d.Producer.MaxBufferedRecords), Help: "records waiting for Kafka before publishes fail fast with RESOURCE_EXHAUSTED / 429",
			set: func(c *Config, v string) error { return parseInt(&c.Producer.MaxBufferedRecords, v) }},
		{Name: "max-buffered-bytes", Default: strconv.Itoa(d.Producer.MaxBufferedBytes), Help: "bytes waiting for Kafka before publishes fail fast with RESOURCE_EXHAUSTED / 429; 0 for no byte limit",
			set: func(c *Config, v string) error { return parseInt(&c.Producer.MaxBufferedBytes, v) }},
		{Name: "stream-max-in-flight", Default: strconv.Itoa(d.Producer.StreamMaxInFlight), Help: "records one PublishStream keeps in flight before it stops reading (back-pressure); at most max-buffered-records",
			set: func(c *Config, v string) error { return parseInt(&c.Producer.StreamMaxInFlight, v) }},

		// The one-subscription shorthand. Several subscriptions, or settings
		// these options lack (retry, headers, …), need the file's
		// subscriptions list.
		{Name: "subscribe-topics", Help: "one-subscription shorthand: comma-separated topics to deliver to webhook-url (for several subscriptions, use the config file's subscriptions list)",
			set: func(c *Config, v string) error { c.shorthand.topics = splitList(v); return nil }},
		{Name: "webhook-url", Help: "…the http or https URL each record of subscribe-topics is POSTed to",
			set: func(c *Config, v string) error { c.shorthand.webhookURL = v; return nil }},
		{Name: "group-id", Help: "…its consumer group; required when subscribing (no shared default, which would make two apps split a topic)",
			set: func(c *Config, v string) error { c.shorthand.groupID = v; return nil }},
		{Name: "dead-letter-topic", Help: "…its dead-letter topic: when set, records whose retries are exhausted are written there; otherwise delivery blocks and retries them forever",
			set: func(c *Config, v string) error { c.shorthand.deadLetterTopic = v; return nil }},
		{Name: "ordering", Default: sd.Ordering, Help: "…partition (one record in flight per partition, in order), key (records of one key in order, different keys in parallel) or none (any order)",
			set: func(c *Config, v string) error { c.shorthand.ordering = v; return nil }},
		{Name: "max-in-flight", Default: "1 for partition, 100 otherwise", Help: "…records in flight per partition",
			set: func(c *Config, v string) error { return parseIntPtr(&c.shorthand.maxInFlight, v) }},
		{Name: "max-concurrency", Default: strconv.Itoa(sd.MaxConcurrency), Help: "…requests in flight to the app across all partitions",
			set: func(c *Config, v string) error { return parseIntPtr(&c.shorthand.maxConcurrency, v) }},
		{Name: "batch-max-records", Help: "…turns batch delivery on: up to this many records (1 to 10000) in one POST, as a CloudEvents batch (application/cloudevents-batch+json); unset: one record per request",
			set: func(c *Config, v string) error { return parseIntPtr(&c.shorthand.batchMaxRecords, v) }},
		{Name: "batch-max-bytes", Default: strconv.Itoa(DefaultBatchMaxBytes), Help: "…with batch-max-records: the most bytes of body in one batch, up to 67108864 (64 MiB); a record larger on its own goes alone",
			set: func(c *Config, v string) error { return parseIntPtr(&c.shorthand.batchMaxBytes, v) }},
		{Name: "batch-max-wait", Default: DefaultBatchMaxWait.String(), Help: "…with batch-max-records: how long a batch that is not full waits for more records, up to 1m; 0s sends at once what is there",
			set: func(c *Config, v string) error { return parseDurationPtr(&c.shorthand.batchMaxWait, v) }},

		{Name: "instance-id", Help: "static group membership: a stable id unique in each group, such as the pod name; a stopping member then does not leave its groups, so its partitions wait up to session-timeout (empty: dynamic membership)",
			set: func(c *Config, v string) error { c.Consumer.InstanceID = v; return nil }},
		{Name: "session-timeout", Default: d.Consumer.SessionTimeout.String(), Help: "how long a group waits for a silent member before it reassigns the member's partitions",
			set: func(c *Config, v string) error { return parseDuration(&c.Consumer.SessionTimeout, v) }},
		{Name: "rebalance-timeout", Default: d.Consumer.RebalanceTimeout.String(), Help: "how long a rebalance waits for members to finish revoked deliveries and commit; longer than every subscription's attempt timeout",
			set: func(c *Config, v string) error { return parseDuration(&c.Consumer.RebalanceTimeout, v) }},
		{Name: "commit-interval", Default: d.Consumer.CommitInterval.String(), Help: "how often delivered offsets are committed (also on revoke and at shutdown)",
			set: func(c *Config, v string) error { return parseDuration(&c.Consumer.CommitInterval, v) }},
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean (true or false)", v)
	}
	*dst = b
	return nil
}

func parseInt(dst *int, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not an integer", v)
	}
	*dst = n
	return nil
}

// parseIntPtr is parseInt for an option whose being set at all matters.
func parseIntPtr(dst **int, v string) error {
	var n int
	if err := parseInt(&n, v); err != nil {
		return err
	}
	*dst = &n
	return nil
}

// parseDurationPtr is parseDuration for an option whose being set at all
// matters.
func parseDurationPtr(dst **time.Duration, v string) error {
	var d time.Duration
	if err := parseDuration(&d, v); err != nil {
		return err
	}
	*dst = &d
	return nil
}

func parseDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration (such as 500ms, 30s or 2m)", v)
	}
	*dst = d
	return nil
}

// LogValue logs the effective configuration, with secrets redacted and
// subscriptions' header values left out.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("brokers", c.Brokers),
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("admin_addr", c.AdminAddr),
		slog.Bool("dev", c.Dev),
		slog.String("dev_kafka_addr", c.DevKafkaAddr),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.String("client_id", c.Kafka.ClientID),
		slog.String("sasl_mechanism", c.Kafka.SASLMechanism),
		slog.String("sasl_username", c.Kafka.SASLUsername),
		slog.Any("sasl_password", c.Kafka.SASLPassword),
		slog.Bool("tls", c.Kafka.TLS),
		slog.String("tls_ca_file", c.Kafka.TLSCAFile),
		slog.Duration("publish_timeout", c.Producer.PublishTimeout),
		slog.Int("max_record_bytes", c.Producer.MaxRecordBytes),
		slog.Int("max_request_bytes", c.Producer.MaxRequestBytes),
		slog.Bool("auto_create_topics", c.Producer.AutoCreate(c.Dev)),
		slog.String("partitioner", c.Producer.Partitioner),
		slog.String("acks", c.Producer.Acks),
		slog.String("compression", c.Producer.Compression),
		slog.Duration("linger", c.Producer.Linger),
		slog.Int("max_buffered_records", c.Producer.MaxBufferedRecords),
		slog.Int("max_buffered_bytes", c.Producer.MaxBufferedBytes),
		slog.Int("stream_max_in_flight", c.Producer.StreamMaxInFlight),
		slog.String("instance_id", c.Consumer.InstanceID),
		slog.Duration("session_timeout", c.Consumer.SessionTimeout),
		slog.Duration("rebalance_timeout", c.Consumer.RebalanceTimeout),
		slog.Duration("commit_interval", c.Consumer.CommitInterval),
		// The one-subscription options show here too, as subscription
		// "default".
		slog.Attr{Key: subscriptionsKey, Value: subscriptionsLogValue(c.Subscriptions)},
	)
}
