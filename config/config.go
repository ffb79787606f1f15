package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"
)

// Config is kbridge's whole configuration.
type Config struct {
	// Brokers are the Kafka bootstrap brokers. Empty is only valid in dev mode.
	Brokers []string
	// GRPCAddr, HTTPAddr and AdminAddr are the listen addresses of the gRPC
	// API, the REST gateway and the admin server (health, metrics, OpenAPI).
	GRPCAddr  string
	HTTPAddr  string
	AdminAddr string

	// Dev runs an in-process Kafka broker listening on DevKafkaAddr.
	Dev          bool
	DevKafkaAddr string

	// ShutdownTimeout bounds the whole graceful shutdown.
	ShutdownTimeout time.Duration

	LogLevel  slog.Level
	LogFormat string // "text" or "json"

	Kafka    Kafka
	Producer Producer
	Consumer Consumer

	// Subscriptions deliver topics to webhooks. They come only from the
	// configuration file's subscriptions list, or from the one-subscription
	// options (subscribe-topics, webhook-url, …), never from both. None is
	// valid: kbridge then only publishes (in dev mode, the app adds an echo
	// webhook).
	Subscriptions []Subscription

	// shorthand holds the one-subscription options while Load reads its
	// sources; Load then turns them into Subscriptions[0].
	shorthand shorthandOptions
	// fromShorthand records that Subscriptions[0] came from those options,
	// so that Validate names the options rather than YAML fields.
	fromShorthand bool
}

// Kafka holds the connection settings shared by every Kafka client.
type Kafka struct {
	ClientID      string
	SASLMechanism string // "", "plain", "scram-sha-256", "scram-sha-512"
	SASLUsername  string
	SASLPassword  Secret
	TLS           bool
	TLSCAFile     string
}

// Producer configures the publish path.
type Producer struct {
	// PublishTimeout bounds a publish whose caller set no deadline.
	PublishTimeout time.Duration
	// MaxRecordBytes limits one record's key + value + headers.
	MaxRecordBytes int
	// MaxRequestBytes limits one API request (gRPC message or REST body).
	MaxRequestBytes int
	// AutoCreateTopics lets a publish create a missing topic. Nil means the
	// default: off, but on in dev mode.
	AutoCreateTopics *bool
	// Partitioner is "murmur2" (Java clients) or "crc32" (librdkafka).
	Partitioner string
	// Acks is "all" (idempotent) or "leader" (no idempotence).
	Acks string
	// Compression is "none", "gzip", "snappy", "lz4" or "zstd".
	Compression string
	// Linger is how long a partition's batch waits for more records.
	Linger time.Duration
	// MaxBufferedRecords and MaxBufferedBytes bound the records waiting for
	// Kafka; past them publishes fail fast with RESOURCE_EXHAUSTED.
	MaxBufferedRecords int
	MaxBufferedBytes   int
	// StreamMaxInFlight bounds the records one PublishStream keeps in flight
	// before it stops reading from the client.
	StreamMaxInFlight int
}

// AutoCreate reports whether publishes may create topics.
func (p Producer) AutoCreate(dev bool) bool {
	if p.AutoCreateTopics != nil {
		return *p.AutoCreateTopics
	}
	return dev
}

// Secret is a string that never shows in logs.
type Secret string

// LogValue implements slog.LogValuer so that a Secret logs redacted.
func (s Secret) LogValue() slog.Value {
	if s == "" {
		return slog.StringValue("")
	}
	return slog.StringValue("REDACTED")
}

// String keeps a Secret out of fmt output too.
func (s Secret) String() string { return s.LogValue().String() }

// GoString keeps a Secret out of %#v output (test failures, panics).
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText keeps a Secret out of encoders such as encoding/json, which
// slog's JSON handler uses for a struct that holds a Secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Default returns the configuration used where nothing else is set.
func Default() Config {
	return Config{
		GRPCAddr:        "127.0.0.1:50051",
		HTTPAddr:        "127.0.0.1:50052",
		AdminAddr:       ":50053",
		DevKafkaAddr:    "127.0.0.1:9092",
		ShutdownTimeout: 25 * time.Second,
		LogLevel:        slog.LevelInfo,
		LogFormat:       "text",
		Kafka:           Kafka{ClientID: "kbridge"},
		Producer: Producer{
			PublishTimeout:     30 * time.Second,
			MaxRecordBytes:     1 << 20,
			MaxRequestBytes:    8 << 20,
			Partitioner:        "murmur2",
			Acks:               "all",
			Compression:        "snappy",
			Linger:             0,
			MaxBufferedRecords: 50_000,
			MaxBufferedBytes:   64 << 20,
			StreamMaxInFlight:  2_000,
		},
		Consumer: Consumer{
			SessionTimeout:   45 * time.Second,
			RebalanceTimeout: 60 * time.Second,
			CommitInterval:   time.Second,
		},
	}
}

// Validate reports every problem of c at once, each naming its option.
func (c Config) Validate() error {
	var errs []error
	bad := func(opt, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", opt, fmt.Sprintf(format, args...)))
	}
	if len(c.Brokers) > 0 && c.Dev {
		bad("brokers", "dev mode runs its own in-memory broker; unset KBRIDGE_BROKERS (--brokers) or drop --dev, so that dev mode never writes to a real cluster")
	}
	if len(c.Brokers) == 0 && !c.Dev {
		bad("brokers", "no Kafka brokers configured: set KBRIDGE_BROKERS (or --brokers), or run with --dev for an in-memory broker")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("brokers", "%q is not host:port", b)
		}
	}
	for _, a := range []struct{ opt, addr string }{
		{"grpc-addr", c.GRPCAddr}, {"http-addr", c.HTTPAddr}, {"admin-addr", c.AdminAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad(a.opt, "%q is not host:port", a.addr)
		}
	}
	if c.Dev {
		if _, _, err := net.SplitHostPort(c.DevKafkaAddr); err != nil {
			bad("dev-kafka-addr", "%q is not host:port", c.DevKafkaAddr)
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format", "must be text or json, got %q", c.LogFormat)
	}
	errs = append(errs, c.Kafka.validate()...)
	errs = append(errs, c.Producer.validate()...)
	errs = append(errs, c.validateConsumer()...)
	errs = append(errs, c.validateSubscriptions()...)
	return errors.Join(errs...)
}

func (k Kafka) validate() []error {
	var errs []error
	switch k.SASLMechanism {
	case "":
		if k.SASLUsername != "" || k.SASLPassword != "" {
			errs = append(errs, errors.New("sasl-mechanism: a SASL username or password is set but no mechanism (plain, scram-sha-256, scram-sha-512)"))
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if k.SASLUsername == "" {
			errs = append(errs, fmt.Errorf("sasl-username: required with sasl-mechanism %s", k.SASLMechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("sasl-mechanism: must be plain, scram-sha-256 or scram-sha-512, got %q", k.SASLMechanism))
	}
	if k.TLSCAFile != "" && !k.TLS {
		errs = append(errs, errors.New("tls-ca-file: set, but tls is off"))
	}
	if k.ClientID == "" {
		errs = append(errs, errors.New("client-id: must not be empty"))
	}
	return errs
}

func (p Producer) validate() []error {
	var errs []error
	bad := func(opt, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", opt, fmt.Sprintf(format, args...)))
	}
	if p.PublishTimeout <= 0 {
		bad("publish-timeout", "must be positive, got %s", p.PublishTimeout)
	}
	if p.MaxRecordBytes < 1 {
		bad("max-record-bytes", "must be at least 1, got %d", p.MaxRecordBytes)
	}
	if p.MaxRequestBytes < p.MaxRecordBytes {
		bad("max-request-bytes", "must be at least max-record-bytes (%d), got %d", p.MaxRecordBytes, p.MaxRequestBytes)
	}
	if p.MaxBufferedBytes < 0 {
		bad("max-buffered-bytes", "must not be negative (0 means no byte limit), got %d", p.MaxBufferedBytes)
	} else if p.MaxBufferedBytes > 0 && p.MaxBufferedBytes < p.MaxRecordBytes {
		bad("max-buffered-bytes", "must be at least max-record-bytes (%d), got %d", p.MaxRecordBytes, p.MaxBufferedBytes)
	}
	if p.MaxBufferedRecords < 1 {
		bad("max-buffered-records", "must be at least 1, got %d", p.MaxBufferedRecords)
	}
	if p.StreamMaxInFlight < 1 {
		bad("stream-max-in-flight", "must be at least 1, got %d", p.StreamMaxInFlight)
	} else if p.StreamMaxInFlight > p.MaxBufferedRecords && p.MaxBufferedRecords >= 1 {
		bad("stream-max-in-flight", "must not exceed max-buffered-records (%d), got %d: one stream could never fill its window", p.MaxBufferedRecords, p.StreamMaxInFlight)
	}
	if p.Linger < 0 {
		bad("linger", "must not be negative, got %s", p.Linger)
	}
	if !oneOf(p.Partitioner, "murmur2", "crc32") {
		bad("partitioner", "must be murmur2 or crc32, got %q", p.Partitioner)
	}
	if !oneOf(p.Acks, "all", "leader") {
		bad("acks", "must be all or leader, got %q", p.Acks)
	}
	if !oneOf(p.Compression, "none", "gzip", "snappy", "lz4", "zstd") {
		bad("compression", "must be none, gzip, snappy, lz4 or zstd, got %q", p.Compression)
	}
	return errs
}

func oneOf(v string, allowed ...string) bool { return slices.Contains(allowed, v) }
