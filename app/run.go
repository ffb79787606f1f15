package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kbridge/kbridge"
	"github.com/kbridge/kbridge/bridge"
	"github.com/kbridge/kbridge/config"
	"github.com/kbridge/kbridge/server"
)

// Exit codes of Run.
const (
	ExitOK     = 0
	ExitError  = 1 // a runtime failure, or records that could not be flushed
	ExitConfig = 2 // the configuration is invalid; nothing was started
)

// Version is kbridge's version, set at build time by scripts/build.sh.
var Version = "dev"

// Addrs are the addresses kbridge listens on, once bound.
type Addrs struct {
	GRPC, HTTP, Admin string
	// DevKafka is the dev-mode broker's address, empty outside dev mode.
	DevKafka string
	// DevEcho is the dev-mode echo webhook's address, empty unless it runs.
	DevEcho string
}

// Hooks let tests observe a run. All are optional.
type Hooks struct {
	// Started is called once every listener is bound, before serving.
	Started func(Addrs)
}

// Run is kbridge's whole life: load the configuration from args and
// lookupEnv, serve until ctx ends, shut down, and return the exit code.
// Logs go to stderr.
func Run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stderr io.Writer, hooks Hooks) int {
	cfg, err := config.Load(args, lookupEnv, os.ReadFile)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(stderr, config.Usage())
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "kbridge: invalid configuration:\n%s\n", indent(err.Error()))
		return ExitConfig
	}
	subs, err := subscriptions(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kbridge: invalid configuration:\n%s\n", indent(err.Error()))
		return ExitConfig
	}
	log := newLogger(cfg, stderr)
	log.Info("starting kbridge", "version", Version, "config", cfg)
	if err := serve(ctx, cfg, subs, log, hooks); err != nil {
		log.Error("kbridge stopped with an error", "error", err)
		return ExitError
	}
	log.Info("kbridge stopped")
	return ExitOK
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listeners are bound before anything starts, so that a taken port fails at
// once and ":0" works in tests.
type listeners struct {
	grpc, http, admin, devKafka, devEcho net.Listener
}

func listen(cfg config.Config, echo bool) (*listeners, error) {
	var l listeners
	var err error
	bind := func(name, addr string) net.Listener {
		if err != nil {
			return nil
		}
		var lis net.Listener
		if lis, err = net.Listen("tcp", addr); err != nil {
			err = fmt.Errorf("listen %s on %s: %w", name, addr, err)
		}
		return lis
	}
	l.grpc = bind("grpc-addr", cfg.GRPCAddr)
	l.http = bind("http-addr", cfg.HTTPAddr)
	l.admin = bind("admin-addr", cfg.AdminAddr)
	if cfg.Dev {
		l.devKafka = bind("dev-kafka-addr", cfg.DevKafkaAddr)
	}
	if echo {
		l.devEcho = bind("dev echo webhook", "127.0.0.1:0")
	}
	if err != nil {
		l.close()
		return nil, err
	}
	return &l, nil
}

func (l *listeners) close() {
	for _, lis := range []net.Listener{l.grpc, l.http, l.admin, l.devKafka, l.devEcho} {
		if lis != nil {
			_ = lis.Close()
		}
	}
}

func serve(ctx context.Context, cfg config.Config, subs []bridge.ConsumerConfig, log *slog.Logger, hooks Hooks) error {
	// Dev mode without a subscription shows the whole loop: everything
	// published comes back to a built-in webhook that logs it.
	echo := cfg.Dev && len(subs) == 0
	lis, err := listen(cfg, echo)
	if err != nil {
		return err
	}
	defer lis.close()
	if echo {
		subs = append(subs, echoSubscription(cfg, lis.devEcho))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	brokers := cfg.Brokers
	if cfg.Dev {
		cluster, err := startDevKafka(lis.devKafka, log)
		if err != nil {
			return err
		}
		// The broker outlives everything that uses it: closed last.
		defer cluster.Close()
		brokers = cluster.ListenAddrs() // config refuses brokers with --dev
	}

	pcfg := producerConfig(cfg, brokers)
	producer, err := bridge.NewProducer(pcfg, log, reg)
	if err != nil {
		return err
	}
	// The producer outlives the servers that use it: flushed and closed after
	// the run group returns (flushAndClose); this covers the early returns.
	defer producer.Close()

	deliveries, err := newDelivery(subs, pcfg.Client, cfg.Producer.MaxRecordBytes, pcfg.AutoCreateTopics, log, reg)
	if err != nil {
		return err
	}
	// The DLQ writer outlives the consumers' drain: closed after the group.
	defer deliveries.closeDLQ()

	monitor, err := bridge.NewKafkaMonitor(producer.Client(), 10*time.Second, log, reg)
	if err != nil {
		return err
	}
	svc := server.NewProducerService(producer, server.ProducerServiceConfig{
		StreamMaxInFlight: cfg.Producer.StreamMaxInFlight,
		MaxRequestBytes:   cfg.Producer.MaxRequestBytes,
		PublishTimeout:    cfg.Producer.PublishTimeout,
	}, log)
	grpcSrv, err := server.NewGRPC(server.GRPCConfig{MaxRequestBytes: cfg.Producer.MaxRequestBytes}, svc, log, reg)
	if err != nil {
		return err
	}

	// The gateway reaches the gRPC server through an in-memory listener, so
	// REST calls take the same interceptor chain whatever grpc-addr is.
	internal := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///kbridge-internal",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return internal.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(server.TransportLimit(cfg.Producer.MaxRequestBytes)), grpc.MaxCallRecvMsgSize(64<<20),
			server.CallCodec()),
	)
	if err != nil {
		return fmt.Errorf("gateway connection: %w", err)
	}
	defer conn.Close()
	gateway, err := server.NewGateway(ctx, conn, cfg.Producer.MaxRequestBytes)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: gateway, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	adminSrv := &http.Server{
		Handler: server.NewAdmin(server.AdminConfig{
			Ready:    readiness(monitor),
			Details:  func() any { return health(monitor, producer, deliveries) },
			Gatherer: reg,
			OpenAPI:  kbridge.OpenAPI,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	if hooks.Started != nil {
		addrs := Addrs{GRPC: lis.grpc.Addr().String(), HTTP: lis.http.Addr().String(), Admin: lis.admin.Addr().String()}
		if lis.devKafka != nil {
			addrs.DevKafka = lis.devKafka.Addr().String()
		}
		if lis.devEcho != nil {
			addrs.DevEcho = lis.devEcho.Addr().String()
		}
		hooks.Started(addrs)
	}
	log.Info("listening", "grpc", lis.grpc.Addr().String(), "http", lis.http.Addr().String(), "admin", lis.admin.Addr().String())

	// The shutdown budget starts with the first interrupt and is shared by
	// every step after it, including the final flush.
	sd := &shutdown{timeout: cfg.ShutdownTimeout}
	defer sd.release()
	var g run.Group

	// Signal: the run ends when ctx does (SIGTERM/SIGINT in main).
	{
		stop := make(chan struct{})
		g.Add(func() error {
			select {
			case <-ctx.Done():
				log.Info("shutting down", "budget", cfg.ShutdownTimeout)
			case <-stop:
			}
			return nil
		}, func(error) { close(stop) })
	}
	// Deliveries: stop first, while the publish API still serves (an app
	// that is stopping may still publish): stop fetching, let in-flight
	// deliveries finish within their share of the budget, commit, leave
	// the groups.
	if len(deliveries.consumers) > 0 {
		g.Add(func() error {
			return deliveries.run(context.Background())
		}, func(error) {
			deliveries.close(sd.deliveryContext(), sd.drainContext())
		})
	}
	// Dev mode's echo webhook: up until the deliveries have drained.
	if echo {
		addHTTP(&g, "dev echo webhook", newEchoWebhook(log), lis.devEcho, sd, log)
		log.Info("dev mode: no subscription configured, so every topic is delivered to the built-in echo webhook, which logs each record",
			"echo_webhook", "http://"+lis.devEcho.Addr().String()+"/")
	}
	// REST API: stops after the deliveries, letting in-flight requests
	// finish; they go through the gRPC server, which is still up.
	addHTTP(&g, "rest api", httpSrv, lis.http, sd, log)
	// gRPC API (and the gateway's in-memory listener): drain the streams
	// (they answer what they published and end), then GracefulStop, falling
	// back to Stop at the deadline.
	{
		internalErr := make(chan error, 1)
		g.Add(func() error {
			go func() { internalErr <- grpcSrv.Serve(internal) }()
			err := grpcSrv.Serve(lis.grpc)
			if ierr := <-internalErr; err == nil {
				err = ierr
			}
			if err != nil {
				return fmt.Errorf("grpc server: %w", err)
			}
			return nil
		}, func(error) {
			svc.Drain()
			grpcSrv.Stop(sd.drainContext())
		})
	}
	// Kafka monitor: decides readiness, flips gRPC health to SERVING.
	{
		mctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			go func() {
				select {
				case <-monitor.Ready():
					grpcSrv.SetServing()
				case <-mctx.Done():
				}
			}()
			return monitor.Run(mctx)
		}, func(error) { cancel() })
	}
	// Admin server: last, so probes and metrics answer while the rest drains.
	addHTTP(&g, "admin server", adminSrv, lis.admin, sd, log)

	runErr := g.Run()
	return errors.Join(runErr, flushAndClose(sd.finalContext(), producer, log))
}

// addHTTP adds an actor serving srv on lis; its interrupt lets in-flight
// requests finish until the drain deadline, then closes what is left.
func addHTTP(g *run.Group, name string, srv *http.Server, lis net.Listener, sd *shutdown, log *slog.Logger) {
	g.Add(func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}, func(error) {
		if err := srv.Shutdown(sd.drainContext()); err != nil {
			log.Warn(name+": in-flight requests cut off at the shutdown deadline", "error", err)
			_ = srv.Close()
		}
	})
}

// flushAndClose waits for buffered records within the remaining budget.
// Records that could not be flushed are an error: their callers were told
// (DEADLINE_EXCEEDED or UNAVAILABLE), but the operator must know too.
func flushAndClose(ctx context.Context, p *bridge.Producer, log *slog.Logger) error {
	defer p.Close()
	buffered := p.BufferedRecords()
	if buffered == 0 {
		return nil
	}
	if err := p.Flush(ctx); err != nil {
		left := p.BufferedRecords()
		log.Error("records could not be flushed to Kafka before the shutdown deadline", "records", left)
		return fmt.Errorf("%d of %d buffered records not flushed: %w", left, buffered, err)
	}
	return nil
}

// shutdown holds the shutdown deadlines, fixed at the first request for
// them: in-flight deliveries may finish until the delivery deadline (then
// they are cancelled, committed and the groups left), the servers drain
// until the drain deadline, and the final steps (flushing the producer)
// have until the end of the budget, so a stream that never ends cannot eat
// the flush's time, nor a slow webhook the publish API's.
type shutdown struct {
	timeout  time.Duration
	once     sync.Once
	delivery context.Context
	drain    context.Context
	final    context.Context
	cancels  []context.CancelFunc
}

// deliveryShare is the part of the budget in-flight deliveries may use.
func deliveryShare(budget time.Duration) time.Duration { return budget * 3 / 5 }

// flushReserve is the part of the budget kept for the final flush.
func flushReserve(budget time.Duration) time.Duration { return min(budget/5, 5*time.Second) }

func (s *shutdown) start() {
	s.once.Do(func() {
		end := time.Now().Add(s.timeout)
		var c1, c2, c3 context.CancelFunc
		s.final, c1 = context.WithDeadline(context.Background(), end)
		s.drain, c2 = context.WithDeadline(s.final, end.Add(-flushReserve(s.timeout)))
		s.delivery, c3 = context.WithDeadline(s.drain, time.Now().Add(deliveryShare(s.timeout)))
		s.cancels = []context.CancelFunc{c3, c2, c1}
	})
}

// deliveryContext ends when in-flight webhook deliveries are cancelled.
func (s *shutdown) deliveryContext() context.Context { s.start(); return s.delivery }

// drainContext ends when the servers must stop waiting for in-flight calls.
func (s *shutdown) drainContext() context.Context { s.start(); return s.drain }

// finalContext ends with the whole budget.
func (s *shutdown) finalContext() context.Context { s.start(); return s.final }

// release frees the deadlines' timers once the shutdown is over.
func (s *shutdown) release() {
	s.once.Do(func() {}) // no deadline was ever asked for: nothing to free
	for _, cancel := range s.cancels {
		cancel()
	}
}

func readiness(m *bridge.KafkaMonitor) func() (bool, string) {
	return func() (bool, string) {
		select {
		case <-m.Ready():
			return true, ""
		default:
		}
		reason := "waiting for Kafka to answer a metadata request"
		if st := m.Status(); st.LastError != "" {
			reason += " (last error: " + st.LastError + ")"
		}
		return false, reason
	}
}

func health(m *bridge.KafkaMonitor, p *bridge.Producer, d *delivery) any {
	return map[string]any{
		"kafka":         m.Status(),
		"producer":      map[string]any{"buffered_records": p.BufferedRecords()},
		"subscriptions": d.status(),
	}
}

func producerConfig(cfg config.Config, brokers []string) bridge.ProducerConfig {
	return bridge.ProducerConfig{
		Client: bridge.ClientConfig{
			Brokers:       brokers,
			ClientID:      cfg.Kafka.ClientID,
			SASLMechanism: cfg.Kafka.SASLMechanism,
			SASLUsername:  cfg.Kafka.SASLUsername,
			SASLPassword:  string(cfg.Kafka.SASLPassword),
			TLS:           cfg.Kafka.TLS,
			TLSCAFile:     cfg.Kafka.TLSCAFile,
		},
		PublishTimeout:     cfg.Producer.PublishTimeout,
		MaxRecordBytes:     cfg.Producer.MaxRecordBytes,
		AutoCreateTopics:   cfg.Producer.AutoCreate(cfg.Dev),
		Partitioner:        cfg.Producer.Partitioner,
		Acks:               cfg.Producer.Acks,
		Compression:        cfg.Producer.Compression,
		Linger:             cfg.Producer.Linger,
		MaxBufferedRecords: cfg.Producer.MaxBufferedRecords,
		MaxBufferedBytes:   cfg.Producer.MaxBufferedBytes,
	}
}

func indent(s string) string {
	out := "  "
	for _, r := range s {
		out += string(r)
		if r == '\n' {
			out += "  "
		}
	}
	return out
}
