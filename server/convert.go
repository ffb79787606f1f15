package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// traceHeaders are the W3C trace context keys carried from a call's metadata
// (or HTTP headers, through the gateway) into every record of the call.
var traceHeaders = [...]string{"traceparent", "tracestate"}

// toRecords converts API records to bridge records, checking what only the
// API can know (both key and key_bytes set). The call's trace context (from
// traceContext) is added to each record that does not carry its own.
func toRecords(in []*kbridgev1.Record, trace []bridge.Header) ([]bridge.Record, error) {
	out := make([]bridge.Record, len(in))
	for i, r := range in {
		if r == nil {
			return nil, &bridge.ValidationError{Record: i, Field: "record", Reason: "must not be null"}
		}
		b := &out[i]
		switch {
		case r.Key != nil && r.KeyBytes != nil:
			return nil, &bridge.ValidationError{Record: i, Field: "key", Reason: "set key or key_bytes, not both"}
		case r.Key != nil:
			b.Key = []byte(*r.Key)
		case r.KeyBytes != nil:
			b.Key = nonNil(r.KeyBytes)
		}
		switch {
		case r.Value != nil && r.ValueBytes != nil:
			return nil, &bridge.ValidationError{Record: i, Field: "value", Reason: "set value or value_bytes, not both"}
		case r.Value != nil:
			b.Value = []byte(*r.Value)
		case r.ValueBytes != nil:
			b.Value = nonNil(r.ValueBytes)
		}
		if r.Partition != nil {
			b.Partition, b.HasPartition = *r.Partition, true
		}
		if r.Timestamp != nil {
			if err := r.Timestamp.CheckValid(); err != nil {
				return nil, &bridge.ValidationError{Record: i, Field: "timestamp", Reason: "is not a valid timestamp"}
			}
			if r.Timestamp.Seconds < 0 {
				return nil, &bridge.ValidationError{Record: i, Field: "timestamp", Reason: "must not be before 1970-01-01"}
			}
			b.Timestamp = r.Timestamp.AsTime()
		}
		b.Headers = make([]bridge.Header, 0, len(r.Headers)+len(trace))
		for j, h := range r.Headers {
			if h == nil {
				return nil, &bridge.ValidationError{Record: i, Field: fmt.Sprintf("headers[%d]", j), Reason: "must not be null"}
			}
			b.Headers = append(b.Headers, bridge.Header{Key: h.Key, Value: h.Value})
		}
		for _, t := range trace {
			if !hasHeader(b.Headers, t.Key) {
				b.Headers = append(b.Headers, t)
			}
		}
	}
	return out, nil
}

// nonNil keeps an empty bytes field an empty value rather than Kafka's null:
// the field was set, so the caller asked for an empty value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func hasHeader(hs []bridge.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

func traceContext(ctx context.Context) []bridge.Header {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	var out []bridge.Header
	for _, k := range traceHeaders {
		if v := md.Get(k); len(v) > 0 && v[0] != "" {
			out = append(out, bridge.Header{Key: k, Value: []byte(v[0])})
		}
	}
	return out
}

// toResults converts bridge results to API results. A failed record carries
// its error; ok reports whether at least one record was written.
func toResults(in []bridge.Result, topic string) (out []*kbridgev1.PublishResult, firstErr error, ok bool) {
	out = make([]*kbridgev1.PublishResult, len(in))
	for i, r := range in {
		if r.Err != nil {
			if firstErr == nil {
				firstErr = r.Err
			}
			out[i] = &kbridgev1.PublishResult{Error: apiError(statusFor(r.Err, topic))}
			continue
		}
		ok = true
		out[i] = &kbridgev1.PublishResult{
			Partition: proto.Int32(r.Partition),
			Offset:    proto.Int64(r.Offset),
			Timestamp: timestamppb.New(r.Timestamp),
		}
	}
	return out, firstErr, ok
}

func apiError(st *status.Status) *kbridgev1.Error {
	return &kbridgev1.Error{Code: codeName(st.Code()), Message: st.Message()}
}

// codeName is the canonical upper-case name of a gRPC code, as in
// google.rpc.Code ("INVALID_ARGUMENT").
func codeName(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK"
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.Canceled:
		return "CANCELLED"
	}
	return "INTERNAL"
}
