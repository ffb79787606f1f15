package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callObserver is the one interceptor chain of the API: it turns a panic into
// Internal, logs each call, and counts and times it by method and code.
type callObserver struct {
	log      *slog.Logger
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newCallObserver(log *slog.Logger, reg prometheus.Registerer) (*callObserver, error) {
	o := &callObserver{
		log: log,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbridge_grpc_requests_total",
			Help: "API calls (gRPC and REST through the gateway), by method and gRPC code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kbridge_grpc_request_duration_seconds",
			Help:    "API call latency by method (whole stream for PublishStream).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{o.calls, o.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return o, nil
}

func (o *callObserver) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err = o.recovered(info.FullMethod, p)
		}
		o.observe(ctx, info.FullMethod, start, err)
	}()
	return handler(ctx, req)
}

func (o *callObserver) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err = o.recovered(info.FullMethod, p)
		}
		o.observe(ss.Context(), info.FullMethod, start, err)
	}()
	return handler(srv, ss)
}

func (o *callObserver) recovered(method string, p any) error {
	o.log.Error("panic in handler", "method", method, "panic", p, "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

func (o *callObserver) observe(ctx context.Context, method string, start time.Time, err error) {
	elapsed := time.Since(start)
	code := status.Code(err)
	o.calls.WithLabelValues(method, code.String()).Inc()
	o.duration.WithLabelValues(method).Observe(elapsed.Seconds())
	level := slog.LevelDebug
	if code == codes.Internal || code == codes.Unknown {
		level = slog.LevelWarn
	}
	if o.log.Enabled(ctx, level) { // the arguments cost allocations on every call
		o.log.Log(ctx, level, "call", "method", method, "code", code.String(), "duration", elapsed, "error", errText(err))
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return status.Convert(err).Message()
}
