package config_test

import (
	"testing"
	"time"

	"github.com/kbridge/kbridge/config"
)

// TestEmptyEnvIsUnset: Kubernetes manifests often set `value: ""`; that must
// leave the option at its file or default value, not empty it.
func TestEmptyEnvIsUnset(t *testing.T) {
	cfg, err := config.Load(nil, env{"KBRIDGE_BROKERS": "", "KBRIDGE_SHUTDOWN_TIMEOUT": " ", "KBRIDGE_CONFIG": "f.yaml"}.lookup,
		files{"f.yaml": "brokers: [k:9092]\n"}.read)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Brokers) != 1 || cfg.ShutdownTimeout != 25*time.Second {
		t.Errorf("brokers %v shutdown %s: empty variables overrode file and default", cfg.Brokers, cfg.ShutdownTimeout)
	}
}

func TestValuesAreTrimmed(t *testing.T) {
	cfg, err := config.Load([]string{"--dev", "--publish-timeout= 5s "}, env{"KBRIDGE_DEV": " true "}.lookup, noFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.PublishTimeout != 5*time.Second {
		t.Errorf("publish timeout %s", cfg.Producer.PublishTimeout)
	}
}

func TestMultipleYAMLDocumentsRefused(t *testing.T) {
	_, err := config.Load(nil, env{"KBRIDGE_CONFIG": "f.yaml"}.lookup, files{"f.yaml": "dev: true\n---\nbrokers: [k:1]\n"}.read)
	wantErrContains(t, err, "only one YAML document")
}

func TestNegativeBufferedBytesRefused(t *testing.T) {
	_, err := config.Load([]string{"--dev", "--max-buffered-bytes=-1"}, env{}.lookup, noFiles(t))
	wantErrContains(t, err, "max-buffered-bytes", "must not be negative")
}

// TestDevModeRefusesBrokers: dev mode must never write to a real cluster
// (with topic auto-creation on) because a stray KBRIDGE_BROKERS was set.
func TestDevModeRefusesBrokers(t *testing.T) {
	_, err := config.Load([]string{"--dev"}, env{"KBRIDGE_BROKERS": "prod:9092"}.lookup, noFiles(t))
	wantErrContains(t, err, "brokers", "dev mode")
}

func TestStreamWindowFitsBuffer(t *testing.T) {
	_, err := config.Load([]string{"--dev", "--max-buffered-records=100", "--stream-max-in-flight=200"}, env{}.lookup, noFiles(t))
	wantErrContains(t, err, "stream-max-in-flight", "max-buffered-records")
}
