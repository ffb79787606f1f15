package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kbridge/kbridge/app"
	"github.com/kbridge/kbridge/bridge/bridgetest"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// instance is one kbridge started through app.Run, the function main calls,
// on 127.0.0.1:0 ports.
type instance struct {
	addrs  app.Addrs
	client kbridgev1.ProducerServiceClient
	conn   *grpc.ClientConn
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// start runs kbridge with env as its whole environment and args as flags.
// At the end of the test it is stopped as SIGTERM would, and must exit 0
// unless the test called expectExit.
func start(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	inst := &instance{logs: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	started := make(chan app.Addrs, 1)
	args = append([]string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0"}, args...)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	go func() {
		inst.done <- app.Run(ctx, args, lookup, inst.logs, app.Hooks{Started: func(a app.Addrs) { started <- a }})
	}()
	select {
	case inst.addrs = <-started:
	case code := <-inst.done:
		t.Fatalf("kbridge exited with %d before listening:\n%s", code, inst.logs)
	}
	conn, err := grpc.NewClient(inst.addrs.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	inst.conn, inst.client = conn, kbridgev1.NewProducerServiceClient(conn)
	t.Cleanup(func() {
		_ = conn.Close()
		if code := inst.stop(t); code != app.ExitOK {
			t.Errorf("kbridge exited with %d, want 0", code)
		}
		if t.Failed() {
			t.Logf("kbridge logs:\n%s", inst.logs)
		}
	})
	return inst
}

// startOnTopic starts a cluster (kfake, or $KAFKA_BROKERS) with a fresh
// one-partition topic, and a ready kbridge on it.
func startOnTopic(t *testing.T, args ...string) (*bridgetest.Cluster, string, *instance) {
	t.Helper()
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, 1)
	kb := start(t, brokersEnv(cluster), args...)
	kb.waitReady(t)
	return cluster, topic, kb
}

// stop cancels the run (as SIGTERM does) and returns the exit code.
func (i *instance) stop(t *testing.T) int {
	t.Helper()
	i.cancel()
	select {
	case code := <-i.done:
		i.done <- code // later calls see the same code
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("kbridge did not stop within 60s")
		return -1
	}
}

// waitReady polls /readyz until it answers 200.
func (i *instance) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := i.get(t, "/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronization
	}
}

// get fetches a path from the admin server.
func (i *instance) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + i.addrs.Admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends a REST request to the gateway.
func (i *instance) post(t *testing.T, path, contentType string, body []byte, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+i.addrs.HTTP+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for j := 0; j+1 < len(headers); j += 2 {
		req.Header.Add(headers[j], headers[j+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// syncBuffer collects kbridge's logs for failure output.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
