package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

type publishStream = grpc.BidiStreamingClient[kbridgev1.PublishStreamRequest, kbridgev1.PublishStreamResponse]

// sendAll sends reqs then half-closes, from its own goroutine; the returned
// channel yields the first send error (or nil) once it is done.
func sendAll(stream publishStream, reqs []*kbridgev1.PublishStreamRequest) <-chan error {
	done := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				done <- err
				return
			}
		}
		done <- stream.CloseSend()
	}()
	return done
}

// recvAll reads responses until the server ends the stream.
func recvAll(t *testing.T, stream publishStream) []*kbridgev1.PublishStreamResponse {
	t.Helper()
	var out []*kbridgev1.PublishStreamResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("recv after %d responses: %v", len(out), err)
		}
		out = append(out, resp)
	}
}

// exchange opens a stream, sends reqs while it reads the responses, and
// returns every response once the server has ended the stream.
func exchange(t *testing.T, client kbridgev1.ProducerServiceClient, reqs []*kbridgev1.PublishStreamRequest) []*kbridgev1.PublishStreamResponse {
	t.Helper()
	stream, err := client.PublishStream(t.Context())
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	sent := sendAll(stream, reqs)
	resps := recvAll(t, stream)
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	return resps
}

func streamRequest(id string, records ...*kbridgev1.Record) *kbridgev1.PublishStreamRequest {
	return &kbridgev1.PublishStreamRequest{Topic: "t", RequestId: id, Records: records}
}

// TestStreamOrder: 10,000 requests on one stream are answered one each, in
// request order; an invalid request in the middle gets an error response
// and the stream goes on.
func TestStreamOrder(t *testing.T) {
	const n, bad = 10_000, 5_000
	h := newHarness(t)
	reqs := make([]*kbridgev1.PublishStreamRequest, n)
	for i := range reqs {
		reqs[i] = streamRequest(strconv.Itoa(i), &kbridgev1.Record{Value: proto.String(strconv.Itoa(i))})
	}
	reqs[bad].Records[0].KeyBytes = []byte("k")
	reqs[bad].Records[0].Key = proto.String("k")

	resps := exchange(t, h.client, reqs)
	if len(resps) != n {
		t.Fatalf("got %d responses, want %d", len(resps), n)
	}
	var offset int64
	for i, resp := range resps {
		if resp.GetRequestId() != strconv.Itoa(i) {
			t.Fatalf("response %d has request_id %q", i, resp.GetRequestId())
		}
		if i == bad {
			if e := resp.GetError(); e.GetCode() != "INVALID_ARGUMENT" || !strings.Contains(e.GetMessage(), "records[0].key") || len(resp.GetResults()) != 0 {
				t.Errorf("response %d = %v, want INVALID_ARGUMENT naming records[0].key", i, resp)
			}
			continue
		}
		if resp.GetError() != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetOffset() != offset {
			t.Fatalf("response %d = %v, want one result at offset %d", i, resp, offset)
		}
		offset++
	}
	calls := h.pub.takeCalls()
	if len(calls) != n-1 {
		t.Fatalf("publisher got %d calls, want %d", len(calls), n-1)
	}
	// The records reach the producer in arrival order, which is what keeps
	// their order in each partition.
	for i, c := range calls {
		want := i
		if i >= bad {
			want++
		}
		if c.method != "Send" || string(c.records[0].Value) != strconv.Itoa(want) {
			t.Fatalf("call %d: %s of %q, want Send of %d", i, c.method, c.records[0].Value, want)
		}
	}
}

// TestStreamErrors: a request the publisher refuses, or whose records all
// fail, gets an error response; partial failures are per-record errors.
func TestStreamErrors(t *testing.T) {
	h := newHarness(t)
	h.pub.script(func(_ context.Context, topic string, records []bridge.Record) ([]bridge.Result, error) {
		if topic == "missing" {
			return nil, bridge.ErrTopicNotFound
		}
		out := make([]bridge.Result, len(records))
		for i, r := range records {
			if string(r.Value) == "full" {
				out[i].Err = bridge.ErrBufferFull
			}
		}
		return out, nil
	})
	full := &kbridgev1.Record{Value: proto.String("full")}
	ok := &kbridgev1.Record{Value: proto.String("ok")}
	reqs := []*kbridgev1.PublishStreamRequest{
		{Topic: "missing", RequestId: "a", Records: []*kbridgev1.Record{ok}},
		streamRequest("b", full, ok),
		streamRequest("c", full, full),
		streamRequest("d"),
		streamRequest("e", ok),
	}
	resps := exchange(t, h.client, reqs)
	if len(resps) != len(reqs) {
		t.Fatalf("got %d responses, want %d", len(resps), len(reqs))
	}
	if e := resps[0].GetError(); e.GetCode() != "NOT_FOUND" || !strings.Contains(e.GetMessage(), `"missing"`) {
		t.Errorf("a: %v, want NOT_FOUND naming the topic", resps[0])
	}
	if rs := resps[1].GetResults(); resps[1].GetError() != nil || len(rs) != 2 || rs[0].GetError().GetCode() != "RESOURCE_EXHAUSTED" || rs[1].GetError() != nil {
		t.Errorf("b: %v, want a per-record RESOURCE_EXHAUSTED then a result", resps[1])
	}
	if e := resps[2].GetError(); e.GetCode() != "RESOURCE_EXHAUSTED" || len(resps[2].GetResults()) != 0 {
		t.Errorf("c: %v, want RESOURCE_EXHAUSTED for the whole request", resps[2])
	}
	if e := resps[3].GetError(); e.GetCode() != "INVALID_ARGUMENT" || !strings.Contains(e.GetMessage(), "at least one record") {
		t.Errorf("d: %v, want INVALID_ARGUMENT for no records", resps[3])
	}
	if resps[4].GetError() != nil || len(resps[4].GetResults()) != 1 {
		t.Errorf("e: %v, want one result", resps[4])
	}
	for i, r := range resps {
		if want := reqs[i].GetRequestId(); r.GetRequestId() != want {
			t.Errorf("response %d has request_id %q, want %q", i, r.GetRequestId(), want)
		}
	}
}

// TestStreamClientDisconnect: a client that goes away mid-stream, while the
// publisher is stuck, ends the server's handler and every goroutine it
// started; the server goes on serving.
func TestStreamClientDisconnect(t *testing.T) {
	h := newHarness(t)
	if _, err := h.client.Publish(t.Context(), oneRecord("t")); err != nil {
		t.Fatalf("warm-up publish: %v", err) // connects, so the baseline includes the connection
	}
	baseline := runtime.NumGoroutine()

	release := h.pub.block()
	t.Cleanup(release)
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := h.client.PublishStream(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	for i := range 20 {
		if err := stream.Send(streamRequest(strconv.Itoa(i), &kbridgev1.Record{})); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	waitFor(t, "the publisher to be called", func() bool { return h.pub.callCount() > 0 })
	cancel()

	waitFor(t, "the stream handler to return", func() bool {
		return callCount(t, h, "PublishStream") == 1
	})
	waitNoServerGoroutines(t)
	waitFor(t, fmt.Sprintf("goroutines back near the baseline of %d", baseline), func() bool {
		return runtime.NumGoroutine() <= baseline+2
	})

	release()
	if _, err := h.client.Publish(t.Context(), oneRecord("t")); err != nil {
		t.Fatalf("publish after the disconnect: %v", err)
	}
}

// waitNoServerGoroutines waits until no goroutine runs code of the service
// or the interceptors: every goroutine a call started has ended.
func waitNoServerGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "server.(*ProducerService)") && !strings.Contains(stacks, "server.(*callObserver)") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server goroutines still running:\n%s", stacks)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// callCount is kbridge_grpc_requests_total summed over codes for a method.
func callCount(t *testing.T, h *harness, method string) float64 {
	t.Helper()
	var n float64
	for _, v := range requestCounts(t, h, method) {
		n += v
	}
	return n
}
