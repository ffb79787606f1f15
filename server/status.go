package server

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kbridge/kbridge/bridge"
)

// statusFor maps a bridge error to the gRPC status a caller sees. It is the
// only place errors become codes; messages name the problem in the caller's
// terms and never carry internal error text (that is logged instead).
// grpc-gateway turns the codes into HTTP statuses: InvalidArgument 400,
// NotFound 404, PermissionDenied 403, ResourceExhausted 429, Unavailable 503,
// DeadlineExceeded 504, Internal 500.
func statusFor(err error, topic string) *status.Status {
	var ve *bridge.ValidationError
	var ke *bridge.KafkaError
	switch {
	case errors.As(err, &ve):
		return status.New(codes.InvalidArgument, ve.Error())
	case errors.Is(err, bridge.ErrTopicNotFound):
		return status.New(codes.NotFound, fmt.Sprintf("topic %q does not exist and topic auto-creation is off", topic))
	case errors.Is(err, bridge.ErrBufferFull):
		return status.New(codes.ResourceExhausted, "kbridge's producer buffer is full: the record was not accepted; retry with backoff")
	case errors.Is(err, bridge.ErrDeadline):
		return status.New(codes.DeadlineExceeded, "deadline exceeded before Kafka acknowledged: the outcome is unknown, the records may have been written")
	case errors.Is(err, bridge.ErrClosed):
		return status.New(codes.Unavailable, "kbridge is shutting down")
	case errors.Is(err, bridge.ErrPermission):
		return status.New(codes.PermissionDenied, fmt.Sprintf("kbridge is not authorized to write to topic %q", topic))
	case errors.As(err, &ke) && errors.Is(err, bridge.ErrInvalid):
		return status.New(codes.InvalidArgument, "kafka rejected the record: "+ke.Code)
	case errors.As(err, &ke) && errors.Is(err, bridge.ErrUnavailable):
		return status.New(codes.Unavailable, "kafka is unavailable: "+ke.Code)
	case errors.Is(err, bridge.ErrUnavailable):
		return status.New(codes.Unavailable, "kafka is unavailable: it could not be reached or did not acknowledge in time")
	case errors.As(err, &ke):
		return status.New(codes.Internal, "kafka rejected the record: "+ke.Code)
	case errors.Is(err, bridge.ErrInvalid):
		return status.New(codes.InvalidArgument, "invalid request")
	}
	return status.New(codes.Internal, "internal error")
}
