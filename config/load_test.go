package config_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kbridge/kbridge/config"
)

func TestLoadDefaults(t *testing.T) {
	withDev := config.Default()
	withDev.Dev = true
	withBrokers := config.Default()
	withBrokers.Brokers = []string{"kafka:9092"}

	tests := []struct {
		name           string
		args           []string
		env            env
		want           config.Config
		wantAutoCreate bool
	}{
		{name: "dev flag", args: []string{"--dev"}, want: withDev, wantAutoCreate: true},
		{name: "dev env", env: env{"KBRIDGE_DEV": "true"}, want: withDev, wantAutoCreate: true},
		{name: "brokers only", env: env{"KBRIDGE_BROKERS": "kafka:9092"}, want: withBrokers, wantAutoCreate: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Load(tt.args, tt.env.lookup, noFiles(t))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load =\n%+v\nwant\n%+v", got, tt.want)
			}
			if a := got.Producer.AutoCreate(got.Dev); a != tt.wantAutoCreate {
				t.Errorf("AutoCreate(%v) = %v, want %v", got.Dev, a, tt.wantAutoCreate)
			}
		})
	}
}

// TestLoadPrecedence sets one option in each source in turn, lowest first,
// and checks that each added source wins: defaults < file < env < flags.
func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name            string
		opt             string // flag name
		file, env, flag string // the value each source gives
		get             func(config.Config) any
		// What Load yields with defaults only, then adding the file, the
		// environment and the flag.
		def, fromFile, fromEnv, fromFlag any
	}{
		{
			name: "string", opt: "grpc-addr", file: "127.0.0.1:1", env: "127.0.0.1:2", flag: "127.0.0.1:3",
			get: func(c config.Config) any { return c.GRPCAddr },
			def: "127.0.0.1:50051", fromFile: "127.0.0.1:1", fromEnv: "127.0.0.1:2", fromFlag: "127.0.0.1:3",
		},
		{
			name: "duration", opt: "shutdown-timeout", file: "5s", env: "10s", flag: "1m",
			get: func(c config.Config) any { return c.ShutdownTimeout },
			def: 25 * time.Second, fromFile: 5 * time.Second, fromEnv: 10 * time.Second, fromFlag: time.Minute,
		},
		{
			name: "int", opt: "max-record-bytes", file: "100", env: "200", flag: "300",
			get: func(c config.Config) any { return c.Producer.MaxRecordBytes },
			def: 1 << 20, fromFile: 100, fromEnv: 200, fromFlag: 300,
		},
		{
			name: "bool", opt: "tls", file: "true", env: "false", flag: "true",
			get: func(c config.Config) any { return c.Kafka.TLS },
			def: false, fromFile: true, fromEnv: false, fromFlag: true,
		},
		{
			name: "optional bool", opt: "auto-create-topics", file: "false", env: "true", flag: "false",
			get: func(c config.Config) any { return c.Producer.AutoCreate(c.Dev) },
			def: true, fromFile: false, fromEnv: true, fromFlag: false, // the base is dev mode
		},
		{
			name: "brokers", opt: "brokers", file: "file:9092", env: "env-a:9092, env-b:9092", flag: "flag:9092",
			get: func(c config.Config) any { return c.Brokers },
			def: []string(nil), fromFile: []string{"file:9092"},
			fromEnv: []string{"env-a:9092", "env-b:9092"}, fromFlag: []string{"flag:9092"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := option(t, tt.opt)
			fsys := files{"kbridge.yaml": fmt.Sprintf("%s: %q\n", o.YAMLKey(), tt.file)}
			// Dev mode makes brokers optional, but refuses them: the brokers
			// row runs without it, and has no valid "defaults" layer.
			base := []string{"--dev"}
			if tt.opt == "brokers" {
				base = nil
			}
			layers := []struct {
				name string
				args []string
				env  env
				want any
			}{
				{"defaults", base, env{}, tt.def},
				{"file", base, env{"KBRIDGE_CONFIG": "kbridge.yaml"}, tt.fromFile},
				{"env", base, env{"KBRIDGE_CONFIG": "kbridge.yaml", o.Env(): tt.env}, tt.fromEnv},
				{"flag", append(slices.Clone(base), "--"+tt.opt+"="+tt.flag), env{"KBRIDGE_CONFIG": "kbridge.yaml", o.Env(): tt.env}, tt.fromFlag},
			}
			for _, l := range layers {
				if l.name == "defaults" && base == nil {
					continue
				}
				cfg, err := config.Load(l.args, l.env.lookup, fsys.read)
				if err != nil {
					t.Fatalf("%s: Load: %v", l.name, err)
				}
				if got := tt.get(cfg); !reflect.DeepEqual(got, l.want) {
					t.Errorf("%s: %s = %#v, want %#v", l.name, tt.opt, got, l.want)
				}
			}
		})
	}
}

func TestLoadYAML(t *testing.T) {
	tests := []struct {
		name        string
		file        string
		wantBrokers []string
	}{
		{name: "brokers as a list", file: "brokers:\n  - a:9092\n  - b:9092\n", wantBrokers: []string{"a:9092", "b:9092"}},
		{name: "brokers as a flow list", file: "brokers: [a:9092, b:9092]\n", wantBrokers: []string{"a:9092", "b:9092"}},
		{name: "brokers as a comma string", file: "brokers: a:9092, b:9092\n", wantBrokers: []string{"a:9092", "b:9092"}},
		{name: "brokers as a quoted comma string", file: `brokers: "a:9092,b:9092,"` + "\n", wantBrokers: []string{"a:9092", "b:9092"}},
		{name: "empty file", file: "", wantBrokers: nil},
		{name: "comments only", file: "# nothing here yet\n", wantBrokers: nil},
		{name: "null document", file: "null\n", wantBrokers: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--config", "k.yaml"}
			if tt.wantBrokers == nil {
				args = append(args, "--dev") // brokers are required otherwise
			}
			cfg, err := config.Load(args, env{}.lookup, files{"k.yaml": tt.file}.read)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !slices.Equal(cfg.Brokers, tt.wantBrokers) {
				t.Errorf("Brokers = %q, want %q", cfg.Brokers, tt.wantBrokers)
			}
		})
	}
}

func TestLoadConfigPath(t *testing.T) {
	fsys := files{
		"from-env.yaml":  "grpc_addr: 127.0.0.1:1\n",
		"from-flag.yaml": "grpc_addr: 127.0.0.1:2\n",
	}
	tests := []struct {
		name string
		args []string
		env  env
		want string
	}{
		{name: "none", args: nil, env: env{}, want: "127.0.0.1:50051"},
		{name: "env", args: nil, env: env{"KBRIDGE_CONFIG": "from-env.yaml"}, want: "127.0.0.1:1"},
		{name: "flag", args: []string{"--config", "from-flag.yaml"}, env: env{}, want: "127.0.0.1:2"},
		{name: "flag wins over env", args: []string{"--config=from-flag.yaml"}, env: env{"KBRIDGE_CONFIG": "from-env.yaml"}, want: "127.0.0.1:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var read []string
			readFile := func(name string) ([]byte, error) { read = append(read, name); return fsys.read(name) }
			cfg, err := config.Load(append([]string{"--dev"}, tt.args...), tt.env.lookup, readFile)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.GRPCAddr != tt.want {
				t.Errorf("GRPCAddr = %q, want %q", cfg.GRPCAddr, tt.want)
			}
			if len(read) > 1 {
				t.Errorf("Load read %q, want at most one file", read)
			}
		})
	}
}

func TestLoadBoolFlags(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		env            env
		file           string
		wantDev        bool
		wantAutoCreate bool
	}{
		{name: "--dev", args: []string{"--dev"}, wantDev: true, wantAutoCreate: true},
		{name: "-dev", args: []string{"-dev"}, wantDev: true, wantAutoCreate: true},
		{name: "--dev=true", args: []string{"--dev=true"}, wantDev: true, wantAutoCreate: true},
		{name: "--dev=false", args: []string{"--dev=false", "--brokers=k:9092"}},
		{name: "env 1", env: env{"KBRIDGE_DEV": "1"}, wantDev: true, wantAutoCreate: true},
		{name: "flag false beats env true", args: []string{"--dev=false", "--brokers=k:9092"}, env: env{"KBRIDGE_DEV": "true"}},
		{name: "file", file: "dev: true\n", wantDev: true, wantAutoCreate: true},
		{name: "auto-create off in dev", args: []string{"--dev", "--auto-create-topics=false"}, wantDev: true},
		{name: "auto-create on without dev", args: []string{"--auto-create-topics", "--brokers=k:9092"}, wantAutoCreate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--config=k.yaml"}, tt.args...)
			cfg, err := config.Load(args, tt.env.lookup, files{"k.yaml": tt.file}.read)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Dev != tt.wantDev {
				t.Errorf("Dev = %v, want %v", cfg.Dev, tt.wantDev)
			}
			if a := cfg.Producer.AutoCreate(cfg.Dev); a != tt.wantAutoCreate {
				t.Errorf("AutoCreate = %v, want %v", a, tt.wantAutoCreate)
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "--help", args: []string{"--help"}},
		{name: "-h", args: []string{"-h"}},
		{name: "help before a bad flag", args: []string{"--help", "--no-such-flag"}},
		{name: "help after other flags", args: []string{"--grpc-addr=x", "-help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No brokers and no --dev: help must not be drowned by validation.
			_, err := config.Load(tt.args, env{}.lookup, noFiles(t))
			if !errors.Is(err, config.ErrHelp) {
				t.Errorf("Load(%q) = %v, want ErrHelp", tt.args, err)
			}
		})
	}
}

// TestOptionDefaultsMatchDefault checks that each option's documented default
// (shown by --help and in the README) is what Default() really uses.
//
// The base subscribes with the one-subscription options, since setting any
// of them (to its default, too) requires subscribe-topics.
func TestOptionDefaultsMatchDefault(t *testing.T) {
	base := env{
		"KBRIDGE_BROKERS":          "kafka:9092",
		"KBRIDGE_SUBSCRIBE_TOPICS": "orders",
		"KBRIDGE_WEBHOOK_URL":      "http://127.0.0.1:3000/kafka",
		"KBRIDGE_GROUP_ID":         "app",
	}
	want, err := config.Load(nil, base.lookup, noFiles(t))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, o := range config.Options() {
		if _, ok := base[o.Env()]; ok { // set, so its default is not in play
			continue
		}
		switch o.Name {
		case "auto-create-topics": // documented as prose: "false (true in dev mode)"
			continue
		case "max-in-flight": // documented as prose: "1 for partition, 100 otherwise"
			continue
		case "batch-max-records": // no default: unset, batching is off
			continue
		}
		// The batch sizes are the defaults of a batch that is on; without
		// batch-max-records they are an error.
		base, want := base, want
		if o.Name == "batch-max-bytes" || o.Name == "batch-max-wait" {
			base = mergeEnv(base, env{"KBRIDGE_BATCH_MAX_RECORDS": "100"})
			if want, err = config.Load(nil, base.lookup, noFiles(t)); err != nil {
				t.Fatalf("Load with batching on: %v", err)
			}
		}
		t.Run(o.Name, func(t *testing.T) {
			got, err := config.Load([]string{"--" + o.Name + "=" + o.Default}, base.lookup, noFiles(t))
			if err != nil {
				t.Fatalf("Load with --%s=%q: %v", o.Name, o.Default, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("--%s=%q changes the configuration:\n%+v\nwant\n%+v", o.Name, o.Default, got, want)
			}
		})
	}
}

func option(t *testing.T, name string) config.Option {
	t.Helper()
	for _, o := range config.Options() {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("no option %q", name)
	return config.Option{}
}
