package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// CallTimeout bounds one synchronous call of a benchmark's client.
const CallTimeout = 10 * time.Second

// CleanupTimeout bounds deleting what a run created, at its end.
const CleanupTimeout = 15 * time.Second

// Cleanup runs f with a context of its own, bounded by CleanupTimeout, so
// that a cancelled run still cleans up.
func Cleanup(f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	return f(ctx)
}

// KeepAliveClient is an HTTP client that keeps an idle connection for each
// of conns concurrent callers (http.DefaultTransport keeps 2 per host and
// would reconnect), never through a proxy, with CallTimeout per request.
// CloseIdleConnections releases them.
func KeepAliveClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns, conns
	return &http.Client{Transport: tr, Timeout: CallTimeout}
}

// Post POSTs body with header and wants 200. It reads the response to the
// end, so that the connection is reused.
func Post(ctx context.Context, client *http.Client, url string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post: status %d: %.200s", resp.StatusCode, reply)
	}
	return nil
}
