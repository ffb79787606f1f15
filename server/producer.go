package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime/debug"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// ProducerService implements kbridge.v1.ProducerService on a Publisher.
type ProducerService struct {
	kbridgev1.UnimplementedProducerServiceServer

	pub               Publisher
	streamMaxInFlight int64
	log               *slog.Logger
}

// NewProducerService returns the service. streamMaxInFlight bounds the
// records one PublishStream keeps in flight.
func NewProducerService(pub Publisher, streamMaxInFlight int, log *slog.Logger) *ProducerService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ProducerService{pub: pub, streamMaxInFlight: int64(max(streamMaxInFlight, 1)), log: log}
}

// Publish implements the unary RPC. If no record was written, the call fails
// with the first record's status; otherwise each result carries its own.
func (s *ProducerService) Publish(ctx context.Context, req *kbridgev1.PublishRequest) (*kbridgev1.PublishResponse, error) {
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
	records, err := toRecords(ctx, in)
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

	// queue holds the requests in flight, in arrival order. Its capacity is
	// the record budget because every request costs at least one unit of it,
	// so the receiver never blocks on the queue before it blocks on the
	// budget; an unbuffered queue would serialize the stream.
	queue := make(chan *streamCall, s.streamMaxInFlight)
	recvDone := make(chan error, 1)

	// The receiver ends when the client half-closes, the stream breaks or
	// ctx ends. stream.Recv only returns once the RPC is torn down, so on a
	// send error this method returns without waiting for it; the return
	// itself tears the RPC down and the receiver follows at once.
	go func() {
		defer close(queue)
		recvDone <- s.receive(ctx, stream, budget, queue)
	}()

	for call := range queue {
		resp, err := call.response(ctx, s)
		budget.Release(call.cost)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return <-recvDone
}

// streamCall is one request of a stream: its records in flight, or the error
// that kept them from being sent.
type streamCall struct {
	req     *kbridgev1.PublishStreamRequest
	cost    int64
	pending *bridge.Pending
	err     error
}

// response waits for the call's results and builds its response.
func (c *streamCall) response(ctx context.Context, s *ProducerService) (*kbridgev1.PublishStreamResponse, error) {
	resp := &kbridgev1.PublishStreamResponse{RequestId: c.req.GetRequestId()}
	topic := c.req.GetTopic()
	if c.err != nil {
		st := s.status(c.err, topic)
		resp.Error = apiError(st.Code(), st.Message())
		return resp, nil
	}
	select {
	case <-c.pending.Done():
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	results, _ := c.pending.Wait(ctx) // done: never fails
	out, firstErr, ok := toResults(results, topic)
	if !ok {
		st := s.status(firstErr, topic)
		resp.Error = apiError(st.Code(), st.Message())
		return resp, nil
	}
	resp.Results = out
	return resp, nil
}

func (s *ProducerService) receive(ctx context.Context, stream grpc.BidiStreamingServer[kbridgev1.PublishStreamRequest, kbridgev1.PublishStreamResponse], budget *semaphore.Weighted, queue chan<- *streamCall) error {
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
		call := &streamCall{req: req, cost: cost}
		if records, err := toRecords(ctx, req.GetRecords()); err != nil {
			call.err = err
		} else {
			call.pending, call.err = s.send(ctx, req.GetTopic(), records)
		}
		queue <- call // never blocks: see the queue's capacity
	}
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
