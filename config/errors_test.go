package config_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/kbridge/kbridge/config"
)

// TestLoadRejects feeds Load one bad input at a time on top of an otherwise
// valid setup (brokers from the environment) and checks that the error names
// the option and, for a value that does not parse, the source it came from.
func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     env
		file    string // content of k.yaml, named with --config when non-empty
		wantErr []string
	}{
		// The YAML file.
		{name: "malformed YAML", file: "brokers: [a:9092\n", wantErr: []string{"config: parse k.yaml"}},
		{name: "YAML not a mapping", file: "- brokers\n- a:9092\n", wantErr: []string{"config: k.yaml: the file must be a mapping"}},
		{name: "duplicate YAML key", file: "acks: all\nacks: leader\n", wantErr: []string{"config: parse k.yaml", `"acks" already defined`}},
		{name: "unknown YAML key", file: "grpc_adr: 127.0.0.1:1\n", wantErr: []string{`unknown key "grpc_adr"`, "such as grpc_addr"}},
		{name: "YAML key with dashes", file: "grpc-addr: 127.0.0.1:1\n", wantErr: []string{`unknown key "grpc-addr"`}},
		{name: "YAML key in capitals", file: "GRPC_ADDR: 127.0.0.1:1\n", wantErr: []string{`unknown key "GRPC_ADDR"`}},
		{name: "config is not an option key", file: "config: other.yaml\n", wantErr: []string{`unknown key "config"`}},
		{name: "nested mapping", file: "brokers:\n  a: 9092\n", wantErr: []string{"brokers: expected a value or a list (line 2)"}},
		{name: "nested list", file: "brokers:\n  - [a:9092]\n", wantErr: []string{"brokers: list items must be plain values (line 2)"}},
		{name: "alias value", file: "acks: &a all\ncompression: *a\n", wantErr: []string{"compression: expected a value or a list"}},
		{name: "null duration", file: "shutdown_timeout:\n", wantErr: []string{`shutdown-timeout: "" is not a duration`, "(from k.yaml)"}},
		{name: "missing file", args: []string{"--config=missing.yaml"}, wantErr: []string{"config: read missing.yaml"}},

		// Values that do not parse.
		{name: "duration without unit", env: env{"KBRIDGE_SHUTDOWN_TIMEOUT": "30"}, wantErr: []string{`shutdown-timeout: "30" is not a duration`, "(from KBRIDGE_SHUTDOWN_TIMEOUT)"}},
		{name: "duration not a number", file: "publish_timeout: abc\n", wantErr: []string{`publish-timeout: "abc" is not a duration`, "(from k.yaml)"}},
		{name: "duration in a flag", args: []string{"--linger", "soon"}, wantErr: []string{`linger: "soon" is not a duration`, "(from --linger)"}},
		{name: "int with a unit", args: []string{"--max-record-bytes=1MB"}, wantErr: []string{`max-record-bytes: "1MB" is not an integer`, "(from --max-record-bytes)"}},
		{name: "invalid log level", env: env{"KBRIDGE_LOG_LEVEL": "loud"}, wantErr: []string{"log-level:", "(from KBRIDGE_LOG_LEVEL)"}},
		{name: "dev=maybe flag", args: []string{"--dev=maybe"}, wantErr: []string{`dev: "maybe" is not a boolean`, "(from --dev)"}},
		{name: "dev=yes env", env: env{"KBRIDGE_DEV": "yes"}, wantErr: []string{`dev: "yes" is not a boolean`, "(from KBRIDGE_DEV)"}},
		{name: "dev=yes file", file: "dev: yes\n", wantErr: []string{`dev: "yes" is not a boolean`, "(from k.yaml)"}},
		{name: "tls=on env", env: env{"KBRIDGE_TLS": "on"}, wantErr: []string{`tls: "on" is not a boolean`, "(from KBRIDGE_TLS)"}},

		// Values that parse but are not allowed.
		{name: "negative shutdown timeout", args: []string{"--shutdown-timeout=-1s"}, wantErr: []string{"shutdown-timeout: must be positive, got -1s"}},
		{name: "zero publish timeout", args: []string{"--publish-timeout=0s"}, wantErr: []string{"publish-timeout: must be positive, got 0s"}},
		{name: "negative linger", args: []string{"--linger=-5ms"}, wantErr: []string{"linger: must not be negative, got -5ms"}},
		{name: "zero max record bytes", args: []string{"--max-record-bytes=0"}, wantErr: []string{"max-record-bytes: must be at least 1, got 0"}},
		{name: "zero max buffered records", args: []string{"--max-buffered-records=0"}, wantErr: []string{"max-buffered-records: must be at least 1, got 0"}},
		{name: "negative stream max in flight", args: []string{"--stream-max-in-flight=-1"}, wantErr: []string{"stream-max-in-flight: must be at least 1, got -1"}},
		{name: "request smaller than record", args: []string{"--max-request-bytes=1000", "--max-record-bytes=2000"}, wantErr: []string{"max-request-bytes: must be at least max-record-bytes (2000), got 1000"}},
		{name: "buffer smaller than record", args: []string{"--max-buffered-bytes=1000", "--max-record-bytes=2000"}, wantErr: []string{"max-buffered-bytes: must be at least max-record-bytes (2000), got 1000"}},
		{name: "sasl username without mechanism", env: env{"KBRIDGE_SASL_USERNAME": "app"}, wantErr: []string{"sasl-mechanism: a SASL username or password is set but no mechanism"}},
		{name: "sasl password without mechanism", env: env{"KBRIDGE_SASL_PASSWORD": "pw"}, wantErr: []string{"sasl-mechanism: a SASL username or password is set but no mechanism"}},
		{name: "sasl mechanism without username", args: []string{"--sasl-mechanism=PLAIN"}, wantErr: []string{"sasl-username: required with sasl-mechanism plain"}},
		{name: "unknown sasl mechanism", args: []string{"--sasl-mechanism=gssapi", "--sasl-username=app"}, wantErr: []string{`sasl-mechanism: must be plain, scram-sha-256 or scram-sha-512, got "gssapi"`}},
		{name: "tls ca file without tls", args: []string{"--tls-ca-file=/etc/ca.pem"}, wantErr: []string{"tls-ca-file: set, but tls is off"}},
		{name: "invalid log format", args: []string{"--log-format=xml"}, wantErr: []string{`log-format: must be text or json, got "xml"`}},
		{name: "empty client id", args: []string{"--client-id="}, wantErr: []string{"client-id: must not be empty"}},
		{name: "unknown partitioner", args: []string{"--partitioner=fnv"}, wantErr: []string{`partitioner: must be murmur2 or crc32, got "fnv"`}},
		{name: "unknown acks", args: []string{"--acks=1"}, wantErr: []string{`acks: must be all or leader, got "1"`}},
		{name: "unknown compression", args: []string{"--compression=brotli"}, wantErr: []string{`compression: must be none, gzip, snappy, lz4 or zstd, got "brotli"`}},
		{name: "broker without port", args: []string{"--brokers=kafka"}, wantErr: []string{`brokers: "kafka" is not host:port`}},
		{name: "listen address without port", args: []string{"--admin-addr=localhost"}, wantErr: []string{`admin-addr: "localhost" is not host:port`}},
		{name: "dev kafka address without port", args: []string{"--dev", "--dev-kafka-addr=9092"}, wantErr: []string{`dev-kafka-addr: "9092" is not host:port`}},

		// The command line itself.
		{name: "unexpected argument", args: []string{"serve"}, wantErr: []string{`unexpected argument "serve"`, "kbridge --help"}},
		{name: "bool flag with a separate value", args: []string{"--dev", "false"}, wantErr: []string{`unexpected argument "false"`}},
		{name: "unknown flag", args: []string{"--grpc-adr=127.0.0.1:1"}, wantErr: []string{"flag provided but not defined: -grpc-adr", "kbridge --help"}},
		{name: "flag without its value", args: []string{"--grpc-addr"}, wantErr: []string{"flag needs an argument: -grpc-addr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env{"KBRIDGE_BROKERS": "kafka:9092"}
			for k, v := range tt.env {
				e[k] = v
			}
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config=k.yaml"}, args...)
			}
			cfg, err := config.Load(args, e.lookup, files{"k.yaml": tt.file}.read)
			wantErrContains(t, err, tt.wantErr...)
			if cfg.GRPCAddr != "" {
				t.Errorf("Load returned a configuration with its error: %+v", cfg)
			}
		})
	}
}

func TestLoadMissingFileIsNotExist(t *testing.T) {
	_, err := config.Load([]string{"--config=missing.yaml"}, env{}.lookup, files{}.read)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load = %v, want an error wrapping fs.ErrNotExist", err)
	}
	// Without the file nothing is known about brokers, so Load must not
	// also blame the (possibly well-configured) file for missing brokers.
	if err != nil && strings.Contains(err.Error(), "KBRIDGE_BROKERS") {
		t.Errorf("Load reported validation problems for a file it could not read:\n%v", err)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     env
		file    string
		wantErr []string
	}{
		{
			name: "parse and validation problems together",
			args: []string{"--shutdown-timeout=abc", "--partitioner=fnv"},
			env:  env{"KBRIDGE_MAX_RECORD_BYTES": "lots"},
			wantErr: []string{
				`shutdown-timeout: "abc" is not a duration`, "(from --shutdown-timeout)",
				`max-record-bytes: "lots" is not an integer`, "(from KBRIDGE_MAX_RECORD_BYTES)",
				`partitioner: must be murmur2 or crc32, got "fnv"`,
				"brokers: no Kafka brokers configured",
			},
		},
		{
			name: "one problem from each source",
			args: []string{"--config=k.yaml", "--acks=none"},
			env:  env{"KBRIDGE_LINGER": "-1s", "KBRIDGE_DEV": "true"},
			file: "grpc_adr: x\nlog_format: xml\n",
			wantErr: []string{
				`unknown key "grpc_adr"`, `log-format: must be text or json, got "xml"`,
				"linger: must not be negative", `acks: must be all or leader, got "none"`,
			},
		},
		{
			name:    "no brokers and no dev mode",
			wantErr: []string{"brokers:", "KBRIDGE_BROKERS", "--brokers", "--dev"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.args, tt.env.lookup, files{"k.yaml": tt.file}.read)
			wantErrContains(t, err, tt.wantErr...)
		})
	}
}

// TestValidateNamesEachOption checks that Validate reports every problem of a
// badly broken configuration, one per line, each starting with a flag name.
func TestValidateNamesEachOption(t *testing.T) {
	c := config.Default()
	c.Brokers = []string{"kafka"}
	c.GRPCAddr = "nope"
	c.ShutdownTimeout = 0
	c.LogFormat = "xml"
	c.Kafka.SASLUsername = "app"
	c.Kafka.TLSCAFile = "/etc/ca.pem"
	c.Kafka.ClientID = ""
	c.Producer.PublishTimeout = -time.Second
	c.Producer.MaxRecordBytes = 0
	c.Producer.MaxRequestBytes = -1
	c.Producer.MaxBufferedRecords = 0
	c.Producer.StreamMaxInFlight = 0
	c.Producer.Linger = -time.Second
	c.Producer.Partitioner = "fnv"
	c.Producer.Acks = "1"
	c.Producer.Compression = "brotli"

	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	names := map[string]bool{}
	for _, o := range config.Options() {
		names[o.Name] = true
	}
	lines := strings.Split(err.Error(), "\n")
	for _, line := range lines {
		name, _, _ := strings.Cut(line, ":")
		if !names[name] {
			t.Errorf("problem does not start with an option name: %q", line)
		}
	}
	if want := 16; len(lines) != want {
		t.Errorf("Validate reported %d problems, want %d:\n%v", len(lines), want, err)
	}
}

func TestValidateAccepts(t *testing.T) {
	dev := config.Default()
	dev.Dev = true
	scram := config.Default()
	scram.Brokers = []string{"a:9092", "[::1]:9093"}
	scram.Kafka = config.Kafka{ClientID: "app", SASLMechanism: "scram-sha-512", SASLUsername: "app", SASLPassword: "pw", TLS: true, TLSCAFile: "/etc/ca.pem"}
	unbuffered := config.Default()
	unbuffered.Dev = true
	unbuffered.Producer.MaxBufferedBytes = 0 // no byte limit: franz-go's own default
	tight := config.Default()
	tight.Dev = true
	tight.Producer.MaxRecordBytes = 1
	tight.Producer.MaxRequestBytes = 1
	tight.Producer.MaxBufferedBytes = 1

	tests := []struct {
		name string
		cfg  config.Config
	}{
		{name: "dev defaults", cfg: dev},
		{name: "SASL over TLS", cfg: scram},
		{name: "no buffered byte limit", cfg: unbuffered},
		{name: "limits all equal", cfg: tight},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestLoadYAMLNotAMappingNamesNoGoType: a file holding a list or a single
// value is refused in the configuration's words; yaml's own error named Go
// types ("cannot unmarshal !!seq into map[string]yaml.Node").
func TestLoadYAMLNotAMappingNamesNoGoType(t *testing.T) {
	for name, doc := range map[string]string{"list": "- brokers: a:1\n", "scalar": "brokers\n"} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load([]string{"--config", "k.yaml"}, env{}.lookup, files{"k.yaml": doc}.read)
			if err == nil || !strings.Contains(err.Error(), "must be a mapping") || strings.Contains(err.Error(), "yaml.Node") {
				t.Errorf("Load = %v, want an error saying the file must be a mapping, without Go types", err)
			}
		})
	}
}
