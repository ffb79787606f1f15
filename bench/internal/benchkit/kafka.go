package benchkit

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicsReadyTimeout bounds waiting for new topics to have leaders.
const topicsReadyTimeout = 30 * time.Second

// CreateTopics creates the topics with replication factor 1 and waits until
// the broker's metadata shows a leader for every partition, so that the
// first publishes of the warm-up do not meet a topic still being born.
func CreateTopics(ctx context.Context, adm *kadm.Client, partitions int, names []string) error {
	resp, err := adm.CreateTopics(ctx, int32(partitions), 1, nil, names...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, topicsReadyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ready, err := topicsReady(ctx, adm, partitions, names)
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topics: %w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func topicsReady(ctx context.Context, adm *kadm.Client, partitions int, names []string) (bool, error) {
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return false, err
	}
	for _, name := range names {
		d, ok := details[name]
		if !ok || d.Err != nil || len(d.Partitions) != partitions {
			return false, fmt.Errorf("topic %s not ready", name)
		}
		for _, p := range d.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false, fmt.Errorf("topic %s partition %d has no leader", name, p.Partition)
			}
		}
	}
	return true, nil
}

// DeleteTopics deletes the topics.
func DeleteTopics(ctx context.Context, adm *kadm.Client, names []string) error {
	resp, err := adm.DeleteTopics(ctx, names...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	return nil
}

// ProducerSettings are those of a franz-go producer set up as kbridge's is,
// so that a baseline differs from kbridge only by what kbridge adds.
type ProducerSettings struct {
	Brokers     []string
	Compression string // none, gzip, snappy, lz4 or zstd
	Linger      time.Duration
	MaxBuffered int // records
}

// NewProducerClient is a franz-go client with s, then opts.
func NewProducerClient(s ProducerSettings, opts ...kgo.Opt) (*kgo.Client, error) {
	c, err := Codec(s.Compression)
	if err != nil {
		return nil, err
	}
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(s.Brokers...),
		kgo.ClientID("kbridge-bench"),
		// Idempotent with acks=all: franz-go's default, and kbridge's.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(c),
		// franz-go lingers 10ms by default; kbridge sets its --linger (0s).
		kgo.ProducerLinger(s.Linger),
		kgo.MaxBufferedRecords(s.MaxBuffered),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new kafka client: %w", err)
	}
	return cl, nil
}

// Codec is the franz-go codec named name.
func Codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression: must be none, gzip, snappy, lz4 or zstd, got %q", name)
}
