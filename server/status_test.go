package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

func oneRecord(topic string) *kbridgev1.PublishRequest {
	return &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{{Value: proto.String("v")}}}
}

const oneRecordJSON = `{"records":[{"value":"v"}]}`

// TestErrorMapping sends each publisher error through the real server, once
// over gRPC and once over REST, and checks the code, the HTTP status and that
// the message names the problem without leaking internal text.
func TestErrorMapping(t *testing.T) {
	const secret = "dial tcp 10.1.2.3:9092: secret-internal-detail"
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		http     int
		contains string
	}{
		{"validation", &bridge.ValidationError{Record: 0, Field: "partition", Reason: "must not be negative, got -1"},
			codes.InvalidArgument, http.StatusBadRequest, "records[0].partition: must not be negative"},
		{"invalid sentinel", fmt.Errorf("produce: %w", bridge.ErrInvalid), codes.InvalidArgument, http.StatusBadRequest, "invalid request"},
		{"topic not found", fmt.Errorf("produce orders: %w", bridge.ErrTopicNotFound), codes.NotFound, http.StatusNotFound, `topic "orders" does not exist`},
		{"buffer full", bridge.ErrBufferFull, codes.ResourceExhausted, http.StatusTooManyRequests, "buffer is full"},
		{"unavailable", fmt.Errorf("%s: %w", secret, bridge.ErrUnavailable), codes.Unavailable, http.StatusServiceUnavailable, "kafka is unavailable"},
		{"deadline", bridge.ErrDeadline, codes.DeadlineExceeded, http.StatusGatewayTimeout, "outcome is unknown"},
		{"closed", bridge.ErrClosed, codes.Unavailable, http.StatusServiceUnavailable, "shutting down"},
		{"permission", fmt.Errorf("%s: %w", secret, bridge.ErrPermission), codes.PermissionDenied, http.StatusForbidden, `not authorized to write to topic "orders"`},
		// A *KafkaError's kind is unexported; errors.Join gives the same
		// errors.Is/As answers as one built by bridge.
		{"kafka invalid", errors.Join(&bridge.KafkaError{Code: "CORRUPT_MESSAGE"}, bridge.ErrInvalid),
			codes.InvalidArgument, http.StatusBadRequest, "kafka rejected the record: CORRUPT_MESSAGE"},
		{"kafka unavailable", errors.Join(&bridge.KafkaError{Code: "NOT_ENOUGH_REPLICAS"}, bridge.ErrUnavailable),
			codes.Unavailable, http.StatusServiceUnavailable, "kafka is unavailable: NOT_ENOUGH_REPLICAS"},
		{"kafka other", errors.Join(&bridge.KafkaError{Code: "UNKNOWN_SERVER_ERROR"}, bridge.ErrRejected),
			codes.Internal, http.StatusInternalServerError, "kafka rejected the record: UNKNOWN_SERVER_ERROR"},
		{"unknown", errors.New(secret), codes.Internal, http.StatusInternalServerError, "internal error"},
	}
	h := newHarness(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.pub.failWith(tt.err)

			_, err := h.client.Publish(t.Context(), oneRecord("orders"))
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.contains) {
				t.Errorf("gRPC: got %v %q, want %v containing %q", st.Code(), st.Message(), tt.code, tt.contains)
			}
			if strings.Contains(st.Message(), "secret") {
				t.Errorf("gRPC message leaks internal text: %q", st.Message())
			}

			r := h.post(t, "/v1/topics/orders/records", oneRecordJSON)
			if r.status != tt.http {
				t.Errorf("REST: status %d, want %d (body %s)", r.status, tt.http, r.body)
			}
			e := decodeError(t, r)
			if codes.Code(*e.Code) != tt.code || !strings.Contains(e.Message, tt.contains) {
				t.Errorf("REST: got %d %q, want %d containing %q", *e.Code, e.Message, tt.code, tt.contains)
			}
			if strings.Contains(string(r.body), "secret") {
				t.Errorf("REST body leaks internal text: %s", r.body)
			}
			if tt.name == "unknown" && (e.Message != "internal error" || st.Message() != "internal error") {
				t.Errorf("messages = %q (gRPC), %q (REST), want exactly %q", st.Message(), e.Message, "internal error")
			}
		})
	}
}

// TestPartialFailure: a Publish where some records fail succeeds, each
// failed record carrying its own error; when all fail, the call fails with
// the first record's status.
func TestPartialFailure(t *testing.T) {
	h := newHarness(t)
	h.pub.script(func(_ context.Context, _ string, records []bridge.Record) ([]bridge.Result, error) {
		out := make([]bridge.Result, len(records))
		for i, r := range records {
			switch string(r.Value) {
			case "full":
				out[i].Err = bridge.ErrBufferFull
			case "gone":
				out[i].Err = fmt.Errorf("record %d: %w", i, bridge.ErrUnavailable)
			default:
				out[i] = bridge.Result{Partition: 2, Offset: int64(10 + i), Timestamp: fakeTime}
			}
		}
		return out, nil
	})
	values := func(vs ...string) []*kbridgev1.Record {
		var rs []*kbridgev1.Record
		for _, v := range vs {
			rs = append(rs, &kbridgev1.Record{Value: proto.String(v)})
		}
		return rs
	}

	t.Run("some fail gRPC", func(t *testing.T) {
		resp, err := h.client.Publish(t.Context(), &kbridgev1.PublishRequest{Topic: "t", Records: values("ok", "full", "ok", "gone")})
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		rs := resp.GetResults()
		if len(rs) != 4 {
			t.Fatalf("got %d results, want 4", len(rs))
		}
		if rs[0].GetError() != nil || rs[0].GetPartition() != 2 || rs[0].GetOffset() != 10 || !rs[0].GetTimestamp().AsTime().Equal(fakeTime) {
			t.Errorf("results[0] = %v, want partition 2 offset 10 at %v", rs[0], fakeTime)
		}
		if e := rs[1].GetError(); e.GetCode() != "RESOURCE_EXHAUSTED" || !strings.Contains(e.GetMessage(), "buffer is full") {
			t.Errorf("results[1].error = %v, want RESOURCE_EXHAUSTED", e)
		}
		if rs[2].GetError() != nil || rs[2].GetOffset() != 12 {
			t.Errorf("results[2] = %v, want offset 12", rs[2])
		}
		if e := rs[3].GetError(); e.GetCode() != "UNAVAILABLE" || strings.Contains(e.GetMessage(), "record 3") {
			t.Errorf("results[3].error = %v, want UNAVAILABLE without internal text", e)
		}
	})

	t.Run("some fail REST", func(t *testing.T) {
		r := h.post(t, "/v1/topics/t/records", `{"records":[{"value":"full"},{"value":"ok"}]}`)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		rs := decodeResults(t, r)
		if len(rs) != 2 || rs[0].Error == nil || rs[0].Error.Code != "RESOURCE_EXHAUSTED" || rs[1].Error != nil || rs[1].Offset != "11" {
			t.Errorf("results = %s", r.body)
		}
	})

	t.Run("all fail", func(t *testing.T) {
		_, err := h.client.Publish(t.Context(), &kbridgev1.PublishRequest{Topic: "t", Records: values("gone", "full")})
		if st := status.Convert(err); st.Code() != codes.Unavailable {
			t.Errorf("gRPC: got %v %q, want the first record's Unavailable", st.Code(), st.Message())
		}
		r := h.post(t, "/v1/topics/t/records", `{"records":[{"value":"full"},{"value":"gone"}]}`)
		if r.status != http.StatusTooManyRequests {
			t.Errorf("REST: status %d, want 429 (first record's status): %s", r.status, r.body)
		}
	})
}
