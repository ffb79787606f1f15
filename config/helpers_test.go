package config_test

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// env is a fake environment for Load's lookupEnv.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

// files is a fake file system for Load's readFile.
type files map[string]string

func (f files) read(name string) ([]byte, error) {
	s, ok := f[name]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
	}
	return []byte(s), nil
}

// noFiles fails the test if Load reads any file.
func noFiles(t *testing.T) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		t.Errorf("Load read %q, but no configuration file was named", name)
		return nil, fs.ErrNotExist
	}
}

// wantErrContains fails the test unless err is non-nil and its text holds
// every one of wants.
func wantErrContains(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load succeeded, want an error containing %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}
