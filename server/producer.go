package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// Publisher is the part of bridge.Producer the service needs.
type Publisher interface {
	// Publish produces and waits, bounded by ctx or the publish timeout.
	Publish(ctx context.Context, topic string, records []bridge.Record) ([]bridge.Result, error)
	// Send hands the records to Kafka in call order without waiting.
	Send(ctx context.Context, topic string, records []bridge.Record) (*bridge.Pending, error)
}

// ProducerServiceConfig bounds what the service accepts.
type ProducerServiceConfig struct {
	// StreamMaxInFlight bounds the records one PublishStream keeps in flight.
	StreamMaxInFlight int
	// MaxRequestBytes is the largest request (one stream message) accepted;
	// larger ones are INVALID_ARGUMENT. The gRPC transport reads messages
	// up to twice this size (see GRPCConfig) so that this check, not the
	// transport's RESOURCE_EXHAUSTED, answers an oversize request.
	MaxRequestBytes int
	// PublishTimeout bounds how long a stream request whose caller set no
	// deadline waits for Kafka before it is answered UNAVAILABLE (unary
	// calls are bounded by the Publisher itself). Zero means no bound.
	PublishTimeout time.Duration
}

// ProducerService implements kbridge.v1.ProducerService on a Publisher.
type ProducerService struct {
	kbridgev1.UnimplementedProducerServiceServer

	pub               Publisher
	streamMaxInFlight int64
	maxRequestBytes   int
	publishTimeout    time.Duration
	log               *slog.Logger

	draining  chan struct{} // closed by Drain
	drainOnce sync.Once
}

// NewProducerService returns the service.
func NewProducerService(pub Publisher, cfg ProducerServiceConfig, log *slog.Logger) *ProducerService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxRequest := cfg.MaxRequestBytes
	if maxRequest <= 0 {
		maxRequest = math.MaxInt
	}
	return &ProducerService{
		pub:               pub,
		streamMaxInFlight: int64(max(cfg.StreamMaxInFlight, 1)),
		maxRequestBytes:   maxRequest,
		publishTimeout:    cfg.PublishTimeout,
		log:               log,
		draining:          make(chan struct{}),
	}
}

// Drain makes every open PublishStream stop reading, answer the requests it
// has already published, and end with UNAVAILABLE, so that a graceful stop
// does not wait for clients that never close their streams and no published
// request goes unanswered. Call it before stopping the gRPC server.
func (s *ProducerService) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// errDraining ends a stream at shutdown. Its message is the contract a
// client relies on to resend safely.
var errDraining = status.Error(codes.Unavailable,
	"kbridge is shutting down: every request of this stream that got no response was not published; send it again on a new stream")

// checkSize refuses a request over the size limit before anything else.
func (s *ProducerService) checkSize(req proto.Message) error {
	if n := proto.Size(req); n > s.maxRequestBytes {
		return &bridge.ValidationError{Record: -1, Field: "request", Reason: fmt.Sprintf("is %d bytes; the limit is %d", n, s.maxRequestBytes)}
	}
	return nil
}

// Publish implements the unary RPC. If no record was written, the call fails
// with the first record's status; otherwise each result carries its own.
func (s *ProducerService) Publish(ctx context.Context, req *kbridgev1.PublishRequest) (*kbridgev1.PublishResponse, error) {
	if err := s.checkSize(req); err != nil {
		return nil, s.status(err, req.GetTopic()).Err()
	}
	results, err := s.publish(ctx, req.GetTopic(), req.GetRecords())
	if err != nil {
		return nil, s.status(err, req.GetTopic()).Err()
	}
	out, firstErr, ok := toResults(results, req.GetTopic())
	if !ok {
		return nil, s.status(firstErr, req.GetTopic()).Err()
	}
	return &kbridgev1.PublishResponse{Results: out}, nil
}

func (s *ProducerService) publish(ctx context.Context, topic string, in []*kbridgev1.Record) ([]bridge.Result, error) {
	records, err := toRecords(topic, in, traceContext(ctx))
	if err != nil {
		return nil, err
	}
	return s.pub.Publish(ctx, topic, records)
}

// status maps err and logs what the caller will not see.
func (s *ProducerService) status(err error, topic string) *status.Status {
	st := statusFor(err, topic)
	switch st.Code() {
	case codes.Internal, codes.Unavailable:
		s.log.Warn("publish failed", "topic", topic, "code", st.Code().String(), "error", err)
	}
	return st
}

// PublishStream implements the bidirectional RPC: one response per request,
// in request order, with at most streamMaxInFlight records in flight.
//
// A receiver goroutine reads requests and hands their records to the
// producer in arrival order (so records of one stream keep their order in
// each partition); this goroutine waits for each request's results in the
// same order and sends the responses. When the in-flight budget is spent,
// the receiver stops reading, and HTTP/2 flow control holds the client back.
func (s *ProducerService) PublishStream(stream grpc.BidiStreamingServer[kbridgev1.PublishStreamRequest, kbridgev1.PublishStreamResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	budget := semaphore.NewWeighted(s.streamMaxInFlight)
	gate := &streamGate{}

	// queue holds the requests in flight, in arrival order. Its capacity is
	// the record budget because every request costs at least one unit of it,
	// so the receiver never blocks on the queue before it blocks on the
	// budget; an unbuffered queue would serialize the stream.
	queue := make(chan *streamCall, s.streamMaxInFlight)
	recvDone := make(chan error, 1)

	// The receiver ends when the client half-closes, the stream breaks, the
	// gate closes or ctx ends. stream.Recv only returns once the RPC is torn
	// down, so on a send error or a drain this method returns without
	// waiting for it; the return itself tears the RPC down and the receiver
	// follows at once.
	go func() {
		defer close(queue)
		recvDone <- s.receive(ctx, stream, budget, gate, queue)
	}()

	answer := func(call *streamCall) error {
		resp, err := call.response(ctx, s)
		budget.Release(call.cost)
		if err != nil {
			return err
		}
		return stream.Send(resp)
	}
	for {
		select {
		case call, ok := <-queue:
			if !ok {
				return <-recvDone
			}
			if err := answer(call); err != nil {
				return err
			}
		case <-s.draining:
			// No request is published after the gate closes, so answering
			// what is queued answers everything that was published.
			gate.close()
			for {
				select {
				case call, ok := <-queue:
					if !ok {
						return errDraining
					}
					if err := answer(call); err != nil {
						return err
					}
				default:
					return errDraining
				}
			}
		}
	}
}

// streamGate stops a stream's receiver from publishing more requests once
// the stream drains. The receiver holds it from its check to the enqueue, so
// after close returns no request is published that is not queued.
type streamGate struct {
	mu     sync.Mutex
	closed bool
}

func (g *streamGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// streamCall is one request of a stream: its records in flight, or the error
// that kept them from being sent.
type streamCall struct {
	req     *kbridgev1.PublishStreamRequest
	cost    int64
	sent    time.Time // when the request was handed to the producer
	pending *bridge.Pending
	err     error
}

// response waits for the call's results and builds its response.
func (c *streamCall) response(ctx context.Context, s *ProducerService) (*kbridgev1.PublishStreamResponse, error) {
	resp := &kbridgev1.PublishStreamResponse{RequestId: echoedRequestID(c.req.GetRequestId())}
	topic := c.req.GetTopic()
	if c.err != nil {
		st := s.status(c.err, topic)
		resp.Error = apiError(st)
		return resp, nil
	}
	// A request without the caller's deadline waits at most the publish
	// timeout from when it was handed over: a broker that froze with a
	// produce request in flight would otherwise hold it (and the stream's
	// answers behind it) until the broker comes back, because franz-go
	// cannot fail in-flight records safely. Its records may still be
	// written; the answer says so.
	wait := ctx
	if _, ok := ctx.Deadline(); !ok && s.publishTimeout > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithDeadline(ctx, c.sent.Add(s.publishTimeout))
		defer cancel()
	}
	select {
	case <-c.pending.Done():
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		resp.Error = apiError(status.New(codes.Unavailable, fmt.Sprintf(
			"kafka is unavailable: the records were not acknowledged within %s (they may have been written)", s.publishTimeout)))
		return resp, nil
	}
	results, _ := c.pending.Wait(ctx) // done: never fails
	out, firstErr, ok := toResults(results, topic)
	if !ok {
		st := s.status(firstErr, topic)
		resp.Error = apiError(st)
		return resp, nil
	}
	resp.Results = out
	return resp, nil
}

func (s *ProducerService) receive(ctx context.Context, stream grpc.BidiStreamingServer[kbridgev1.PublishStreamRequest, kbridgev1.PublishStreamResponse], budget *semaphore.Weighted, gate *streamGate, queue chan<- *streamCall) error {
	trace := traceContext(ctx) // a stream's metadata never changes
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// A request larger than the whole budget takes all of it rather
		// than waiting forever.
		cost := min(max(int64(len(req.GetRecords())), 1), s.streamMaxInFlight)
		if err := budget.Acquire(ctx, cost); err != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		if !s.publishStreamRequest(ctx, req, trace, cost, gate, queue) {
			budget.Release(cost)
			return errDraining
		}
	}
}

// publishStreamRequest publishes one request and queues it for its answer,
// unless the gate is closed; it reports whether it did.
func (s *ProducerService) publishStreamRequest(ctx context.Context, req *kbridgev1.PublishStreamRequest, trace []bridge.Header, cost int64, gate *streamGate, queue chan<- *streamCall) bool {
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if gate.closed {
		return false
	}
	call := &streamCall{req: req, cost: cost, sent: time.Now()}
	if err := s.checkSize(req); err != nil {
		call.err = err
	} else if err := checkRequestID(req.GetRequestId()); err != nil {
		call.err = err
	} else if records, err := toRecords(req.GetTopic(), req.GetRecords(), trace); err != nil {
		call.err = err
	} else {
		call.pending, call.err = s.send(ctx, req.GetTopic(), records)
	}
	queue <- call // never blocks: see the queue's capacity
	return true
}

// send calls the publisher's Send, turning a panic into an error: it runs on
// the receiver goroutine, out of reach of the recovery interceptor, where a
// panic would end the process.
func (s *ProducerService) send(ctx context.Context, topic string, records []bridge.Record) (pending *bridge.Pending, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in publisher", "topic", topic, "panic", p, "stack", string(debug.Stack()))
			err = errPanic // statusFor answers Internal without detail
		}
	}()
	return s.pub.Send(ctx, topic, records)
}

var errPanic = errors.New("panic in publisher")
