package server

import (
	"context"
	"fmt"
	"unicode/utf8"

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

// toRecords converts a request's records to bridge records, checking what
// only the API can know: that its text fields (the topic, keys, values and
// header names) are valid UTF-8, and that no record sets both key and
// key_bytes (or value and value_bytes). The bridge checks the rest. The
// call's trace context (from traceContext) is added to each record that does
// not carry its own.
func toRecords(topic string, in []*kbridgev1.Record, trace []bridge.Header) ([]bridge.Record, error) {
	if !utf8.ValidString(topic) {
		return nil, notUTF8(-1, "topic", "topic names use only ASCII letters, digits, '.', '_' and '-'")
	}
	out := make([]bridge.Record, len(in))
	for i, r := range in {
		if r == nil {
			return nil, &bridge.ValidationError{Record: i, Field: "record", Reason: "must not be null"}
		}
		b := &out[i]
		switch {
		case r.Key != nil && r.KeyBytes != nil:
			return nil, &bridge.ValidationError{Record: i, Field: "key", Reason: "set key or key_bytes, not both"}
		case r.Key != nil && !utf8.ValidString(*r.Key):
			return nil, notUTF8(i, "key", "send binary data as key_bytes")
		case r.Key != nil:
			b.Key = []byte(*r.Key)
		case r.KeyBytes != nil:
			b.Key = nonNil(r.KeyBytes)
		}
		switch {
		case r.Value != nil && r.ValueBytes != nil:
			return nil, &bridge.ValidationError{Record: i, Field: "value", Reason: "set value or value_bytes, not both"}
		case r.Value != nil && !utf8.ValidString(*r.Value):
			return nil, notUTF8(i, "value", "send binary data as value_bytes")
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
			if !utf8.ValidString(h.Key) {
				return nil, notUTF8(i, fmt.Sprintf("headers[%d].key", j), "header names are text; the value may be any bytes")
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

// notUTF8 refuses a string field that is not valid UTF-8 (record -1: a field
// of the request). The proto turns off decode-time UTF-8 validation for the
// string fields a client fills (features.utf8_validation = NONE) because
// grpc-go answers a message that fails to decode with INTERNAL, before the
// handler and the interceptors see the call, and ends a PublishStream; checked
// here, it is an INVALID_ARGUMENT naming the field, counted and logged like
// every other refusal, and on a stream it refuses only its request.
func notUTF8(record int, field, hint string) error {
	return &bridge.ValidationError{Record: record, Field: field, Reason: "is not valid UTF-8; " + hint}
}

// checkRequestID refuses a stream request whose request_id is not valid UTF-8.
func checkRequestID(id string) error {
	if !utf8.ValidString(id) {
		return notUTF8(-1, "request_id", "the response to this request carries no request_id")
	}
	return nil
}

// echoedRequestID is the request_id a response carries: the request's, or
// none when it is not valid UTF-8 (such a request is refused by
// checkRequestID). PublishStreamResponse.request_id is validated when
// encoded, so echoing it would fail the send and end the stream.
func echoedRequestID(id string) string {
	if !utf8.ValidString(id) {
		return ""
	}
	return id
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
