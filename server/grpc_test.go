package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// requestCounts reads kbridge_grpc_requests_total for one ProducerService
// method from the harness's registry, by code.
func requestCounts(t *testing.T, h *harness, method string) map[string]float64 {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "kbridge_grpc_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == "/"+kbridgev1.ProducerService_ServiceDesc.ServiceName+"/"+method {
				out[labels["code"]] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func panicOn(value string) func(context.Context, string, []bridge.Record) ([]bridge.Result, error) {
	return func(_ context.Context, _ string, records []bridge.Record) ([]bridge.Result, error) {
		for _, r := range records {
			if string(r.Value) == value {
				panic("publisher bug: secret-internal-detail")
			}
		}
		return []bridge.Result{{Timestamp: fakeTime}}, nil
	}
}

// TestPanicRecovery: a panicking publisher fails only its own call, with
// Internal and no detail, and the server goes on; calls are counted by code.
func TestPanicRecovery(t *testing.T) {
	h := newHarness(t)
	h.pub.script(panicOn("boom"))
	boom := &kbridgev1.PublishRequest{Topic: "t", Records: []*kbridgev1.Record{{Value: proto.String("boom")}}}

	_, err := h.client.Publish(t.Context(), boom)
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("gRPC: got %v %q, want Internal %q", st.Code(), st.Message(), "internal error")
	}
	if _, err := h.client.Publish(t.Context(), oneRecord("t")); err != nil {
		t.Fatalf("publish after a panic: %v", err)
	}
	r := h.post(t, "/v1/topics/t/records", `{"records":[{"value":"boom"}]}`)
	if r.status != http.StatusInternalServerError || strings.Contains(string(r.body), "secret") {
		t.Errorf("REST: %d %s, want 500 without detail", r.status, r.body)
	}
	if e := decodeError(t, r); e.Message != "internal error" {
		t.Errorf("REST message = %q", e.Message)
	}
	if r := h.post(t, "/v1/topics/t/records", oneRecordJSON); r.status != http.StatusOK {
		t.Errorf("REST after a panic: %d %s", r.status, r.body)
	}

	got := requestCounts(t, h, "Publish")
	if got["OK"] != 2 || got["Internal"] != 2 || len(got) != 2 {
		t.Errorf("kbridge_grpc_requests_total for Publish = %v, want OK 2 and Internal 2", got)
	}
}

// TestStreamPanic: a publisher that panics inside a stream fails that
// request with Internal, not the process.
func TestStreamPanic(t *testing.T) {
	h := newHarness(t)
	h.pub.script(panicOn("boom"))
	resps := exchange(t, h.client, []*kbridgev1.PublishStreamRequest{
		streamRequest("1", &kbridgev1.Record{Value: proto.String("ok")}),
		streamRequest("2", &kbridgev1.Record{Value: proto.String("boom")}),
		streamRequest("3", &kbridgev1.Record{Value: proto.String("ok")}),
	})
	if len(resps) != 3 {
		t.Fatalf("got %d responses, want 3", len(resps))
	}
	if e := resps[1].GetError(); e.GetCode() != "INTERNAL" || e.GetMessage() != "internal error" {
		t.Errorf("response to the panicking request = %v, want INTERNAL", resps[1])
	}
	if resps[0].GetError() != nil || resps[2].GetError() != nil {
		t.Errorf("responses around the panic = %v, %v, want results", resps[0], resps[2])
	}
	if got := requestCounts(t, h, "PublishStream"); got["OK"] != 1 {
		t.Errorf("kbridge_grpc_requests_total for PublishStream = %v, want OK 1", got)
	}
}

// TestGRPCMessageLimit: a request over the limit is INVALID_ARGUMENT (not
// RESOURCE_EXHAUSTED, which the API documents as "buffer full, retry"), for
// unary calls and on streams; only a message over the transport's limit
// (twice the request limit) is refused by gRPC itself.
func TestGRPCMessageLimit(t *testing.T) {
	h := newHarness(t)
	big := &kbridgev1.PublishRequest{Topic: "t", Records: []*kbridgev1.Record{{ValueBytes: make([]byte, testMaxRequestBytes)}}}
	_, err := h.client.Publish(t.Context(), big)
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "limit") {
		t.Errorf("got %v, want InvalidArgument naming the limit", err)
	}
	huge := &kbridgev1.PublishRequest{Topic: "t", Records: []*kbridgev1.Record{{ValueBytes: make([]byte, TransportLimit(testMaxRequestBytes))}}}
	if _, err := h.client.Publish(t.Context(), huge); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("over the transport limit: got %v, want ResourceExhausted from gRPC", err)
	}

	stream, err := h.client.PublishStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&kbridgev1.PublishStreamRequest{Topic: "t", RequestId: "big", Records: big.Records}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.GetError().GetCode() != "INVALID_ARGUMENT" {
		t.Errorf("oversize stream request answered %v, %v; want an INVALID_ARGUMENT response", resp, err)
	}
	_ = stream.CloseSend()
	if n := h.pub.callCount(); n != 0 {
		t.Errorf("publisher got %d calls", n)
	}
}

func TestHealth(t *testing.T) {
	h := newHarness(t)
	client := healthpb.NewHealthClient(h.conn)
	check := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("check %q: %v", service, err)
		}
		if resp.GetStatus() != want {
			t.Errorf("check %q = %v, want %v", service, resp.GetStatus(), want)
		}
	}
	const svc = "kbridge.v1.ProducerService"
	check("", healthpb.HealthCheckResponse_NOT_SERVING)
	check(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	h.grpc.SetServing()
	check("", healthpb.HealthCheckResponse_SERVING)
	check(svc, healthpb.HealthCheckResponse_SERVING)
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("check of an unknown service: %v, want NotFound", err)
	}
}

func TestReflection(t *testing.T) {
	h := newHarness(t)
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"kbridge.v1.ProducerService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %q, want %s among them", names, want)
		}
	}

	// The descriptors resolve too, so grpcurl can build requests.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "kbridge.v1.ProducerService"},
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("no file descriptor for kbridge.v1.ProducerService: %v", resp)
	}
	_ = stream.CloseSend()
}

// TestStop: Stop lets an in-flight call finish, and cuts off an open stream
// (which never ends by itself) once its context ends.
func TestStop(t *testing.T) {
	h := newHarness(t)
	stream, err := h.client.PublishStream(t.Context())
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if err := stream.Send(streamRequest("1", &kbridgev1.Record{})); err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("recv: %v", err)
	}

	release := h.pub.block()
	t.Cleanup(release)
	unary := make(chan error, 1)
	go func() {
		_, err := h.client.Publish(context.Background(), oneRecord("t"))
		unary <- err
	}()
	waitFor(t, "the unary call to reach the publisher", func() bool { return h.pub.callCount() == 2 })

	stopCtx, cancelStop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		h.grpc.Stop(stopCtx)
		close(stopped)
	}()
	release()
	if err := <-unary; err != nil {
		t.Errorf("in-flight call during a graceful stop: %v", err)
	}
	select {
	case <-stopped:
		t.Fatalf("Stop returned while a stream was open and its context had not ended")
	default:
	}
	cancelStop()
	<-stopped
	if _, err := stream.Recv(); err == nil {
		t.Errorf("stream still open after Stop")
	}
}
