package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestAdmin(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	probe := prometheus.NewCounter(prometheus.CounterOpts{Name: "kbridge_test_probe_total", Help: "A metric the test registers."})
	reg.MustRegister(probe)
	probe.Add(3)
	openAPI := []byte(`{"swagger":"2.0","info":{"title":"kbridge"}}`)
	srv := httptest.NewServer(NewAdmin(AdminConfig{
		Ready: func() (bool, string) {
			if ready.Load() {
				return true, ""
			}
			return false, "kafka has not answered a metadata request yet"
		},
		Details:  func() any { return map[string]any{"kafka": map[string]any{"reachable": ready.Load()}} },
		Gatherer: reg,
		OpenAPI:  openAPI,
	}))
	t.Cleanup(srv.Close)

	if code, _, body := get(t, srv.URL+"/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d %s", code, body)
	}

	code, _, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "kafka has not answered") {
		t.Errorf("/readyz before ready = %d %q, want 503 with the reason", code, body)
	}
	checkVerbose(t, srv.URL, http.StatusServiceUnavailable, false, "kafka has not answered")

	ready.Store(true)
	if code, _, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready = %d %q", code, body)
	}
	checkVerbose(t, srv.URL, http.StatusOK, true, "")

	code, _, body = get(t, srv.URL+"/metrics")
	if code != http.StatusOK || !strings.Contains(string(body), "kbridge_test_probe_total 3") {
		t.Errorf("/metrics = %d, want the registered metric:\n%s", code, body)
	}

	code, header, body := get(t, srv.URL+"/openapi.json")
	if code != http.StatusOK || !bytes.Equal(body, openAPI) || header.Get("Content-Type") != "application/json" {
		t.Errorf("/openapi.json = %d %q %q, want the document as given", code, header.Get("Content-Type"), body)
	}

	if code, _, _ := get(t, srv.URL+"/nope"); code != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", code)
	}
	resp, err := http.Post(srv.URL+"/livez", "text/plain", nil)
	if err != nil {
		t.Fatalf("POST /livez: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /livez = %d, want 405", resp.StatusCode)
	}
}

func checkVerbose(t *testing.T, base string, wantCode int, wantReady bool, wantReason string) {
	t.Helper()
	code, header, body := get(t, base+"/readyz?verbose")
	if code != wantCode || header.Get("Content-Type") != "application/json" {
		t.Errorf("/readyz?verbose = %d %q, want %d JSON", code, header.Get("Content-Type"), wantCode)
	}
	var v struct {
		Ready   bool   `json:"ready"`
		Reason  string `json:"reason"`
		Details struct {
			Kafka struct {
				Reachable bool `json:"reachable"`
			} `json:"kafka"`
		} `json:"details"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("/readyz?verbose is not JSON: %v: %s", err, body)
	}
	if v.Ready != wantReady || !strings.Contains(v.Reason, wantReason) || v.Details.Kafka.Reachable != wantReady {
		t.Errorf("/readyz?verbose = %s", body)
	}
}
