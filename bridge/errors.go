package bridge

import (
	"errors"
	"fmt"
)

// Sentinel errors of the package: the publish path's, which the server
// package maps to status codes, and the commit tracker's. Wrap them with
// context, and test with errors.Is.
var (
	// ErrInvalid marks a request that cannot be valid; nothing was written.
	ErrInvalid = errors.New("invalid request")
	// ErrTopicNotFound means the topic does not exist and may not be created.
	ErrTopicNotFound = errors.New("topic not found")
	// ErrBufferFull means the producer buffer is full; the record was not
	// accepted. Retrying later may succeed.
	ErrBufferFull = errors.New("producer buffer full")
	// ErrUnavailable means Kafka could not be reached or did not acknowledge
	// in time.
	ErrUnavailable = errors.New("kafka unavailable")
	// ErrDeadline means the caller's deadline passed before every record was
	// acknowledged. The outcome is unknown: records may have been written.
	ErrDeadline = errors.New("deadline exceeded before kafka acknowledged")
	// ErrClosed means the producer is shutting down.
	ErrClosed = errors.New("producer closed")
	// ErrRejected means Kafka refused the record for a reason the caller
	// cannot fix by retrying; KafkaError carries the broker's error name.
	ErrRejected = errors.New("kafka rejected the record")
	// ErrPermission means the broker denied access to the topic.
	ErrPermission = errors.New("not authorized")

	// Errors of the commit tracker. Each one is a bug in the caller, never a
	// delivery outcome: the tracker changes nothing when it returns one, so the
	// commit point stays safe, and the caller should log it loudly.

	// ErrOffsetOrder means an offset was reported out of fetch order: a
	// dispatched offset below the fetch position (not above the previous
	// record, or below the start), a fetch position moving backwards, or a
	// value that is no Kafka offset at all.
	ErrOffsetOrder = errors.New("offset out of fetch order")
	// ErrNotInFlight means Done named an offset that is not in flight: it was
	// never dispatched, or it is already done.
	ErrNotInFlight = errors.New("offset not in flight")
	// ErrCommitAhead means MarkCommitted named an offset beyond the commit
	// point: something committed an offset the tracker never offered.
	ErrCommitAhead = errors.New("committed offset beyond the commit point")
)

// ValidationError is an ErrInvalid that names the offending field. Most are
// found before producing, and then nothing of the request was written; one
// with a Cause is a record Kafka refused on its own (the others of its
// request may have been written, each with its own result).
type ValidationError struct {
	// Record is the index of the offending record, or -1 for the request.
	Record int
	// Field names the offending field, such as "topic" or "partition".
	Field string
	// Reason says what is wrong in words a caller can act on.
	Reason string
	// Cause is Kafka's refusal (a *KafkaError) when the broker, not kbridge,
	// found the field at fault; nil otherwise.
	Cause error
}

func (e *ValidationError) Error() string {
	if e.Record < 0 {
		return fmt.Sprintf("%s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("records[%d].%s: %s", e.Record, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold, and exposes the Cause.
func (e *ValidationError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.Cause}
}

// KafkaError is a record failure reported by Kafka. Code is Kafka's own name
// for the error (such as "INVALID_RECORD"): public protocol vocabulary, safe to
// show to callers.
type KafkaError struct {
	Code string
	kind error // one of the sentinels above
	err  error
}

func (e *KafkaError) Error() string { return fmt.Sprintf("%s: %s", e.kind, e.Code) }

// Unwrap exposes both the sentinel kind and the client's original error.
func (e *KafkaError) Unwrap() []error { return []error{e.kind, e.err} }
