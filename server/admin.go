package server

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminConfig wires the admin server to the parts it reports on.
type AdminConfig struct {
	// Ready reports whether kbridge is ready to serve, and why not.
	Ready func() (bool, string)
	// Details returns the detailed health body (any JSON-encodable value).
	Details func() any
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// OpenAPI is the REST API's OpenAPI document.
	OpenAPI []byte
}

// NewAdmin returns the admin handler:
//
//	/livez         200 while the process serves HTTP at all
//	/readyz        200 once ready, else 503 with the reason; ?verbose adds
//	               the detailed health body (JSON)
//	/metrics       Prometheus metrics
//	/openapi.json  the REST API's OpenAPI document
func NewAdmin(cfg AdminConfig) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, reason := cfg.Ready()
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			w.Header().Set("Content-Type", "application/json")
			if !ready {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(struct {
				Ready   bool   `json:"ready"`
				Reason  string `json:"reason,omitempty"`
				Details any    `json:"details,omitempty"`
			}{ready, reason, cfg.Details()})
			return
		}
		if !ready {
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(cfg.OpenAPI)
	})
	return mux
}
