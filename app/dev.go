package app

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// startDevKafka starts the in-process broker of dev mode on lis, so that
// other tools (kcat, an app with rdkafka) can use it too.
func startDevKafka(lis net.Listener, log *slog.Logger) (*kfake.Cluster, error) {
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return lis, nil }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(3),
	)
	if err != nil {
		return nil, fmt.Errorf("start dev kafka: %w", err)
	}
	log.Warn("DEV MODE: using an in-memory Kafka broker; all data is lost when kbridge exits. Do not use in production.",
		"kafka_addr", lis.Addr().String())
	return cluster, nil
}
