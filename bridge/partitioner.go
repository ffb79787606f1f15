package bridge

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kgo"
)

// newPartitioner returns the partitioner for the given name: keys hash like
// the Java client ("murmur2") or like librdkafka's default consistent_random
// ("crc32"), keyless records are spread in sticky batches, and a record with
// an explicit partition (Partition >= 0 on the kgo.Record) goes there.
func newPartitioner(name string) (kgo.Partitioner, error) {
	var hasher kgo.PartitionerHasher
	switch name {
	case "murmur2", "":
		hasher = nil // franz-go's default is Kafka's murmur2
	case "crc32":
		// SaramaHasher with CRC-32 (IEEE) is librdkafka's unsigned
		// crc32(key) % partitions on 64-bit platforms. librdkafka's
		// consistent_random treats an empty key like no key (a random
		// partition), so an empty key must not pile onto crc32("") % n.
		crc := kgo.SaramaHasher(crc32.ChecksumIEEE)
		hasher = func(key []byte, n int) int {
			if len(key) == 0 {
				return rand.IntN(n)
			}
			return crc(key, n)
		}
	default:
		return nil, fmt.Errorf("unknown partitioner %q", name)
	}
	return explicitPartitioner{kgo.StickyKeyPartitioner(hasher)}, nil
}

// explicitPartitioner honours a record's explicit partition and otherwise
// defers to the key partitioner. Records that leave the choice open carry
// Partition -1 (set in Record.toKgo).
type explicitPartitioner struct{ inner kgo.Partitioner }

func (p explicitPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &explicitTopicPartitioner{inner: p.inner.ForTopic(topic)}
}

type explicitTopicPartitioner struct{ inner kgo.TopicPartitioner }

// RequiresConsistency pins explicit partitions: the record must go to the
// partition asked for even while it is unavailable.
func (p *explicitTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || p.inner.RequiresConsistency(r)
}

func (p *explicitTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		// Validated against the partition count before producing, and a
		// topic's partitions never shrink.
		return int(r.Partition)
	}
	return p.inner.Partition(r, n)
}

// OnNewBatch forwards the sticky partitioner's batch boundary signal.
func (p *explicitTopicPartitioner) OnNewBatch() {
	if nb, ok := p.inner.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
