package app

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/kbridge/kbridge/bridge"
	"github.com/kbridge/kbridge/config"
)

// echoBodyLimit is how much of a delivered value the echo webhook logs.
const echoBodyLimit = 1 << 10

// newEchoWebhook is dev mode's built-in webhook: it logs every delivery and
// answers 204, so `kbridge --dev` shows a publish coming back as a delivery
// without an app.
func newEchoWebhook(log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, echoBodyLimit+1))
			attrs := []any{
				"topic", r.Header.Get("Kafka-Topic"),
				"partition", r.Header.Get("Kafka-Partition"),
				"offset", r.Header.Get("Kafka-Offset"),
				"key", r.Header.Get("Kafka-Key"),
				"content_type", r.Header.Get("Content-Type"),
				"idempotency_key", r.Header.Get("Idempotency-Key"),
				"attempt", r.Header.Get("Delivery-Attempt"),
			}
			switch {
			case len(body) > echoBodyLimit:
				attrs = append(attrs, "value", string(body[:echoBodyLimit])+"…(truncated)")
			case utf8.Valid(body):
				attrs = append(attrs, "value", string(body))
			default:
				attrs = append(attrs, "value_bytes", len(body))
			}
			log.Info("dev echo webhook received a delivery", attrs...)
			w.WriteHeader(http.StatusNoContent)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// echoSubscription delivers every topic (but Kafka's internal ones) to the
// echo webhook on lis, in a group of its own.
func echoSubscription(cfg config.Config, lis net.Listener) bridge.ConsumerConfig {
	s := config.DefaultSubscription()
	s.Name = "dev-echo"
	s.TopicRegex = ".*"
	s.GroupID = "kbridge-dev-echo"
	s.WebhookURL = "http://" + lis.Addr().String() + "/"
	cc := consumerConfig(cfg, s)
	cc.MetadataMaxAge = time.Second // a topic created by a publish is seen at once
	return cc
}
