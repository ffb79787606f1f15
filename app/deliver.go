package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kbridge/kbridge/bridge"
	"github.com/kbridge/kbridge/config"
)

// subscriptions turns the configured subscriptions into consumer configs and
// validates them, so that a setting the bridge refuses is a configuration
// error (exit 2) before anything starts. The Kafka connection is filled in
// by serve, which knows the brokers (dev mode's are only known then).
func subscriptions(cfg config.Config) ([]bridge.ConsumerConfig, error) {
	out := make([]bridge.ConsumerConfig, 0, len(cfg.Subscriptions))
	var errs []error
	for _, s := range cfg.Subscriptions {
		cc := consumerConfig(cfg, s)
		if err := cc.Validate(); err != nil {
			errs = append(errs, err)
		}
		out = append(out, cc)
	}
	return out, errors.Join(errs...)
}

func consumerConfig(cfg config.Config, s config.Subscription) bridge.ConsumerConfig {
	headers := make(http.Header, len(s.Headers))
	for name, v := range s.Headers {
		headers[name] = []string{v} // verbatim: the app sees the name as configured
	}
	dlq := ""
	if s.OnExhausted == "dead-letter" {
		dlq = s.DeadLetterTopic
	}
	return bridge.ConsumerConfig{
		Name:             s.Name,
		Topics:           s.Topics,
		TopicRegex:       s.TopicRegex,
		Group:            s.GroupID,
		InstanceID:       cfg.Consumer.InstanceID,
		StartAtLatest:    s.StartOffset == "latest",
		SessionTimeout:   cfg.Consumer.SessionTimeout,
		RebalanceTimeout: cfg.Consumer.RebalanceTimeout,
		CommitInterval:   cfg.Consumer.CommitInterval,
		URL:              s.WebhookURL,
		Request: bridge.WebhookRequestSettings{
			Group:              s.GroupID,
			CloudEventType:     s.CloudEventType,
			DefaultContentType: s.ContentType,
			ExtraHeaders:       headers,
		},
		Webhook: bridge.WebhookClientConfig{
			MaxConcurrency:    s.MaxConcurrency,
			AttemptTimeout:    s.AttemptTimeout,
			PermanentStatuses: append([]int{}, s.PermanentStatuses...), // non-nil: an empty list means none
		},
		Retry: bridge.RetryPolicy{
			InitialBackoff: s.Retry.InitialBackoff,
			Multiplier:     s.Retry.Multiplier,
			MaxBackoff:     s.Retry.MaxBackoff,
			Jitter:         s.Retry.Jitter,
			AttemptTimeout: s.AttemptTimeout,
			MaxAttempts:    s.Retry.MaxAttempts,
			MaxElapsed:     s.Retry.MaxElapsed,
		},
		Ordering:        s.Ordering,
		MaxInFlight:     s.MaxInFlight,
		DeadLetterTopic: dlq,
		Batch: bridge.BatchConfig{
			MaxRecords: s.Batch.MaxRecords,
			MaxBytes:   s.Batch.MaxBytes,
			MaxWait:    s.Batch.MaxWait,
		},
	}
}

// delivery is the webhook half of kbridge: one consumer per subscription
// and the dead-letter writer they share.
type delivery struct {
	consumers []*bridge.Consumer
	dlq       *bridge.DeadLetterWriter // nil when no subscription dead-letters
}

// newDelivery builds the consumers; nothing contacts Kafka yet.
func newDelivery(subs []bridge.ConsumerConfig, client bridge.ClientConfig, maxRecordBytes int, autoCreate bool, log *slog.Logger, reg prometheus.Registerer) (*delivery, error) {
	d := &delivery{}
	for _, s := range subs {
		if s.DeadLetterTopic != "" && d.dlq == nil {
			dlq, err := bridge.NewDeadLetterWriter(bridge.DeadLetterConfig{
				Client:           client,
				MaxRecordBytes:   maxRecordBytes,
				AutoCreateTopics: autoCreate,
			}, log, reg)
			if err != nil {
				return nil, err
			}
			d.dlq = dlq
		}
	}
	for _, s := range subs {
		s.Client = client
		c, err := bridge.NewConsumer(s, d.dlq, log, reg)
		if err != nil {
			d.closeDLQ()
			return nil, err
		}
		d.consumers = append(d.consumers, c)
	}
	return d, nil
}

// run runs every consumer until ctx ends or one fails to start.
func (d *delivery) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(d.consumers))
	var wg sync.WaitGroup
	for _, c := range d.consumers {
		wg.Go(func() {
			if err := c.Run(ctx); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	return nil
}

// close shuts every consumer down at once, each in DESIGN.md's order.
func (d *delivery) close(drain, final context.Context) {
	var wg sync.WaitGroup
	for _, c := range d.consumers {
		wg.Go(func() { c.Close(drain, final) })
	}
	wg.Wait()
}

// closeDLQ closes the dead-letter writer; it outlives the consumers.
func (d *delivery) closeDLQ() {
	if d.dlq != nil {
		d.dlq.Close()
	}
}

func (d *delivery) status() []bridge.ConsumerStatus {
	out := make([]bridge.ConsumerStatus, 0, len(d.consumers))
	for _, c := range d.consumers {
		out = append(out, c.Status())
	}
	return out
}
