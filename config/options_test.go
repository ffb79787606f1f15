package config_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kbridge/kbridge/config"
)

const password = "hunter2-do-not-log"

func TestSecretRedacted(t *testing.T) {
	cfg := config.Default()
	cfg.Brokers = []string{"kafka:9092"}
	cfg.Kafka.SASLMechanism = "plain"
	cfg.Kafka.SASLUsername = "app"
	cfg.Kafka.SASLPassword = password

	tests := []struct {
		name string
		out  func() string
	}{
		{name: "slog JSON, whole config", out: func() string { return logged(slog.NewJSONHandler, "config", cfg) }},
		{name: "slog text, whole config", out: func() string { return logged(slog.NewTextHandler, "config", cfg) }},
		{name: "slog JSON, Kafka settings", out: func() string { return logged(slog.NewJSONHandler, "kafka", cfg.Kafka) }},
		{name: "slog text, Kafka settings", out: func() string { return logged(slog.NewTextHandler, "kafka", cfg.Kafka) }},
		{name: "slog JSON, the secret", out: func() string { return logged(slog.NewJSONHandler, "pw", cfg.Kafka.SASLPassword) }},
		{name: "fmt.Sprint", out: func() string { return fmt.Sprint(cfg.Kafka.SASLPassword) }},
		{name: "%v config", out: func() string { return fmt.Sprintf("%v", cfg) }},
		{name: "%+v config", out: func() string { return fmt.Sprintf("%+v", cfg) }},
		{name: "%#v config", out: func() string { return fmt.Sprintf("%#v", cfg) }},
		//lint:ignore S1025 the point is what fmt prints for %s
		{name: "%s secret", out: func() string { return fmt.Sprintf("%s", cfg.Kafka.SASLPassword) }},
		{name: "%q secret", out: func() string { return fmt.Sprintf("%q", cfg.Kafka.SASLPassword) }},
		{name: "json.Marshal", out: func() string { b, _ := json.Marshal(cfg); return string(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.out()
			if strings.Contains(out, password) {
				t.Errorf("output holds the password:\n%s", out)
			}
			if !strings.Contains(out, "REDACTED") {
				t.Errorf("output does not show that a password is set:\n%s", out)
			}
		})
	}
}

func TestSecretEmptyStaysEmpty(t *testing.T) {
	// An unset password logs as empty, so "no password" and "a password"
	// can be told apart without revealing it.
	if got := fmt.Sprint(config.Secret("")); got != "" {
		t.Errorf("fmt.Sprint(Secret(\"\")) = %q, want \"\"", got)
	}
	if got := config.Secret("").LogValue().String(); got != "" {
		t.Errorf("Secret(\"\").LogValue() = %q, want \"\"", got)
	}
}

// TestLogValueShowsEveryOption checks that the effective configuration logged
// at start has one attribute per option, under its YAML key, besides the
// subscriptions, which also show what the one-subscription options set.
func TestLogValueShowsEveryOption(t *testing.T) {
	cfg := config.Default()
	cfg.Dev = true
	var entry struct{ Config map[string]any }
	if err := json.Unmarshal([]byte(logged(slog.NewJSONHandler, "config", cfg)), &entry); err != nil {
		t.Fatalf("decode log line: %v", err)
	}
	want := []string{"subscriptions"}
	for _, o := range config.Options() {
		if slices.Contains(shorthandOptions, o.Name) {
			continue
		}
		want = append(want, o.YAMLKey())
		if _, ok := entry.Config[o.YAMLKey()]; !ok {
			t.Errorf("logged configuration lacks %q", o.YAMLKey())
		}
	}
	for k := range entry.Config {
		if !slices.Contains(want, k) {
			t.Errorf("logged configuration has %q, which is no option's YAML key", k)
		}
	}
	if got := entry.Config["auto_create_topics"]; got != true {
		t.Errorf("auto_create_topics = %v in dev mode, want the effective value true", got)
	}
}

func TestOptionNames(t *testing.T) {
	tests := []struct {
		name, wantEnv, wantYAML string
	}{
		{name: "brokers", wantEnv: "KBRIDGE_BROKERS", wantYAML: "brokers"},
		{name: "grpc-addr", wantEnv: "KBRIDGE_GRPC_ADDR", wantYAML: "grpc_addr"},
		{name: "max-buffered-records", wantEnv: "KBRIDGE_MAX_BUFFERED_RECORDS", wantYAML: "max_buffered_records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := option(t, tt.name)
			if got := o.Env(); got != tt.wantEnv {
				t.Errorf("Env() = %q, want %q", got, tt.wantEnv)
			}
			if got := o.YAMLKey(); got != tt.wantYAML {
				t.Errorf("YAMLKey() = %q, want %q", got, tt.wantYAML)
			}
		})
	}

	seen := map[string]bool{"KBRIDGE_CONFIG": true}
	for _, o := range config.Options() {
		if seen[o.Env()] {
			t.Errorf("%s is used twice", o.Env())
		}
		seen[o.Env()] = true
		if o.Help == "" {
			t.Errorf("option %s has no help text", o.Name)
		}
	}
}

func TestUsage(t *testing.T) {
	usage := config.Usage()
	for _, want := range []string{"--config PATH", "KBRIDGE_CONFIG", "Precedence: flags > environment"} {
		if !strings.Contains(usage, want) {
			t.Errorf("Usage() does not mention %q", want)
		}
	}
	for _, o := range config.Options() {
		if !containsWord(usage, "--"+o.Name) {
			t.Errorf("Usage() does not mention the flag --%s", o.Name)
		}
		if !strings.Contains(usage, "env "+o.Env()) {
			t.Errorf("Usage() does not mention the variable %s", o.Env())
		}
		if o.Default != "" && !strings.Contains(usage, "default "+o.Default) {
			t.Errorf("Usage() does not show --%s's default %q", o.Name, o.Default)
		}
	}
	if !strings.Contains(usage, "  --dev\n") {
		t.Errorf("Usage() shows a value for the boolean flag --dev:\n%s", usage)
	}
}

// TestREADMEListsEveryOption keeps the README's configuration table in step
// with Options(). It skips until the README has that table.
func TestREADMEListsEveryOption(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no README.md yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !hasLineContaining(readme, "| `KBRIDGE_BROKERS`") {
		t.Skip("README.md has no configuration table yet")
	}
	for _, o := range config.Options() {
		if !bytes.Contains(readme, []byte("`"+o.Env()+"`")) {
			t.Errorf("README.md does not document %s", o.Env())
		}
	}
}

// logged returns the line a handler of the given kind writes for one
// attribute.
func logged[H slog.Handler](newHandler func(w io.Writer, opts *slog.HandlerOptions) H, key string, value any) string {
	var buf bytes.Buffer
	slog.New(newHandler(&buf, nil)).Info("test", key, value)
	return buf.String()
}

// containsWord reports whether s holds w followed by a space, a newline or
// the end, so that --dev does not match --dev-kafka-addr.
func containsWord(s, w string) bool {
	for _, next := range []string{" ", "\n"} {
		if strings.Contains(s, w+next) {
			return true
		}
	}
	return strings.HasSuffix(s, w)
}

func hasLineContaining(b []byte, s string) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}
