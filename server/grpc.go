package server

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// GRPCConfig configures the gRPC server.
type GRPCConfig struct {
	// MaxRequestBytes is the largest request accepted. The transport reads
	// messages up to twice this size, so that the service answers a request
	// over the limit with INVALID_ARGUMENT; only a message over twice the
	// limit is refused by gRPC's transport itself, with RESOURCE_EXHAUSTED.
	// REST bodies are limited before either, with 413 (see NewGateway).
	MaxRequestBytes int
}

// GRPC is the gRPC server with the ProducerService, reflection and
// grpc.health.v1. The health service reports NOT_SERVING until SetServing.
type GRPC struct {
	srv    *grpc.Server
	health *health.Server
}

// NewGRPC builds the server; Serve starts it on a listener.
func NewGRPC(cfg GRPCConfig, svc kbridgev1.ProducerServiceServer, log *slog.Logger, reg prometheus.Registerer) (*GRPC, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	obs, err := newCallObserver(log, reg)
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer(
		grpc.ForceServerCodecV2(newUTF8Codec()),
		grpc.ChainUnaryInterceptor(obs.unary),
		grpc.ChainStreamInterceptor(obs.stream),
		grpc.MaxRecvMsgSize(TransportLimit(cfg.MaxRequestBytes)),
		grpc.NumStreamWorkers(streamWorkers),
		// Clients on loopback may ping often to keep streams alive.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	kbridgev1.RegisterProducerServiceServer(srv, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(kbridgev1.ProducerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return &GRPC{srv: srv, health: hs}, nil
}

// streamWorkers is how many long-lived goroutines serve calls. Without
// them gRPC starts a goroutine per call, whose stack grows on every call:
// stack copying was 10% of kbridge's CPU with 32 unary callers. A call
// that finds every worker busy (a PublishStream holds one for its life)
// gets a goroutine of its own, as before.
const streamWorkers = 64

// TransportLimit is the largest message the gRPC transport reads for a
// request limit of maxRequestBytes (see GRPCConfig).
func TransportLimit(maxRequestBytes int) int { return 2 * maxRequestBytes }

// SetServing flips grpc.health.v1 to SERVING (once Kafka has answered).
func (g *GRPC) SetServing() {
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	g.health.SetServingStatus(kbridgev1.ProducerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

// Serve serves on lis until Stop; it returns nil after a stop.
func (g *GRPC) Serve(lis net.Listener) error {
	if err := g.srv.Serve(lis); err != nil && err != grpc.ErrServerStopped {
		return err
	}
	return nil
}

// Stop stops gracefully: no new calls, in-flight calls finish. An open
// PublishStream never ends by itself, so when ctx ends first the remaining
// calls are cut off.
func (g *GRPC) Stop(ctx context.Context) {
	g.health.Shutdown()
	done := make(chan struct{})
	go func() {
		g.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		g.srv.Stop()
		<-done
	}
}
