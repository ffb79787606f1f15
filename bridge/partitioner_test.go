package bridge

import (
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionFor runs the named partitioner on one record the way the client
// does: Partition -1 leaves the choice to the key.
func partitionFor(t *testing.T, name string, r *kgo.Record, n int) int {
	t.Helper()
	p, err := newPartitioner(name)
	if err != nil {
		t.Fatal(err)
	}
	return p.ForTopic("t").Partition(r, n)
}

// Hashes of Apache Kafka's Utils.murmur2 as published in Kafka's own
// UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils)
// and in Akka's Murmur2Spec, which copies values from the same function. The
// Java DefaultPartitioner picks toPositive(murmur2(key)) % n.
var javaMurmur2 = []struct {
	key  string
	hash int32
}{
	{"21", -973932308},
	{"foobar", -790332482},
	{"a-little-bit-long-string", -985981536},
	{"a-little-bit-longer-string", -1486304829},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
	{"abc", 479470107},
	{"1", -1993445489},
	{"12", 126087238},
	{"123", -267702483},
	{"1234", -1614185708},
	{"12345", -1188365604},
}

func TestMurmur2MatchesJavaClient(t *testing.T) {
	// The largest n checks all 31 bits of the positive hash.
	for _, n := range []int{1, 3, 7, 12, 100, 1<<31 - 1} {
		for _, v := range javaMurmur2 {
			want := int(uint32(v.hash)&0x7fffffff) % n
			for _, name := range []string{"murmur2", ""} {
				got := partitionFor(t, name, &kgo.Record{Key: []byte(v.key), Partition: -1}, n)
				if got != want {
					t.Errorf("%q partitioner: key %q, %d partitions: got %d, want %d (Java)", name, v.key, n, got, want)
				}
			}
		}
	}
}

func TestMurmur2MatchesStickyKeyPartitioner(t *testing.T) {
	ref := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	p, err := newPartitioner("murmur2")
	if err != nil {
		t.Fatal(err)
	}
	tp := p.ForTopic("t")
	for i := range 2000 {
		key := fmt.Appendf(nil, "key-%d", i)
		for _, n := range []int{1, 2, 3, 10, 64} {
			got := tp.Partition(&kgo.Record{Key: key, Partition: -1}, n)
			want := ref.Partition(&kgo.Record{Key: key}, n)
			if got != want {
				t.Fatalf("key %q, %d partitions: got %d, want %d", key, n, got, want)
			}
		}
	}
}

func TestCRC32MatchesLibrdkafka(t *testing.T) {
	// librdkafka's consistent(_random) partitioner: rd_crc32(key) %
	// partition_cnt, both unsigned 32-bit. CRC-32/IEEE("123456789") is the
	// standard check value 0xCBF43926, whose high bit is set: a signed
	// modulo (Sarama's) would give 34, not 262, for 1000 partitions.
	if got := partitionFor(t, "crc32", &kgo.Record{Key: []byte("123456789"), Partition: -1}, 1000); got != 262 {
		t.Fatalf(`crc32 partitioner: key "123456789", 1000 partitions: got %d, want 262`, got)
	}

	p, err := newPartitioner("crc32")
	if err != nil {
		t.Fatal(err)
	}
	tp := p.ForTopic("t")
	highBit := 0
	for i := range 5000 {
		key := fmt.Appendf(nil, "user-%d", i)
		sum := crc32.ChecksumIEEE(key)
		if sum&0x80000000 != 0 {
			highBit++
		}
		for _, n := range []int{1, 3, 7, 10, 12, 1000} {
			want := int(sum % uint32(n))
			if got := tp.Partition(&kgo.Record{Key: key, Partition: -1}, n); got != want {
				t.Fatalf("key %q (crc %#08x), %d partitions: got %d, want %d", key, sum, n, got, want)
			}
		}
	}
	if highBit == 0 {
		t.Fatal("no key had a CRC with the high bit set; the test proves nothing")
	}
}

func TestExplicitPartition(t *testing.T) {
	for _, name := range []string{"murmur2", "crc32"} {
		t.Run(name, func(t *testing.T) {
			p, err := newPartitioner(name)
			if err != nil {
				t.Fatal(err)
			}
			tp := p.ForTopic("t")
			tests := []struct {
				name string
				rec  *kgo.Record
				want int
			}{
				{"partition 0 with a key hashing elsewhere", &kgo.Record{Key: []byte("foobar"), Partition: 0}, 0},
				{"partition 0 without key", &kgo.Record{Partition: 0}, 0},
				{"last partition", &kgo.Record{Key: []byte("abc"), Partition: 4}, 4},
			}
			for _, tt := range tests {
				if got := tp.Partition(tt.rec, 5); got != tt.want {
					t.Errorf("%s: got partition %d, want %d", tt.name, got, tt.want)
				}
				if !tp.RequiresConsistency(tt.rec) {
					t.Errorf("%s: RequiresConsistency = false for an explicit partition", tt.name)
				}
			}
			// The first case proves something only if its key hashes
			// elsewhere.
			if partitionFor(t, name, &kgo.Record{Key: []byte("foobar"), Partition: -1}, 5) == 0 {
				t.Fatal("key foobar hashes to partition 0; pick another key")
			}
		})
	}
}

func TestPartitionerConsistency(t *testing.T) {
	p, err := newPartitioner("murmur2")
	if err != nil {
		t.Fatal(err)
	}
	tp := p.ForTopic("t")
	if !tp.RequiresConsistency(&kgo.Record{Key: []byte("k"), Partition: -1}) {
		t.Error("keyed record: RequiresConsistency = false")
	}
	if tp.RequiresConsistency(&kgo.Record{Partition: -1}) {
		t.Error("keyless record without explicit partition: RequiresConsistency = true")
	}
	// A keyless record is spread by the sticky partitioner: any partition
	// in range.
	for range 100 {
		if got := tp.Partition(&kgo.Record{Partition: -1}, 3); got < 0 || got >= 3 {
			t.Fatalf("keyless record: partition %d out of range", got)
		}
	}
	if _, ok := tp.(kgo.TopicPartitionerOnNewBatch); !ok {
		t.Error("partitioner hides the sticky partitioner's OnNewBatch")
	}
}

func TestNewPartitionerUnknown(t *testing.T) {
	if _, err := newPartitioner("fnv"); err == nil {
		t.Fatal(`newPartitioner("fnv") succeeded`)
	}
}

func TestRecordToKgo(t *testing.T) {
	r := Record{Key: []byte{}, Value: nil, Headers: []Header{{Key: "a", Value: []byte("1")}, {Key: "a"}}}
	kr := r.toKgo("t")
	if kr.Topic != "t" || kr.Partition != -1 {
		t.Fatalf("got topic %q partition %d, want t and -1", kr.Topic, kr.Partition)
	}
	if kr.Key == nil || len(kr.Key) != 0 || kr.Value != nil {
		t.Fatalf("key %#v value %#v: empty key and null value not kept apart", kr.Key, kr.Value)
	}
	if len(kr.Headers) != 2 || kr.Headers[0].Key != "a" || string(kr.Headers[0].Value) != "1" || kr.Headers[1].Key != "a" {
		t.Fatalf("headers %+v", kr.Headers)
	}
	r = Record{HasPartition: true}
	if kr := r.toKgo("t"); kr.Partition != 0 {
		t.Fatalf("explicit partition 0 became %d", kr.Partition)
	}
}

// TestCRC32EmptyKeyIsKeyless: librdkafka's consistent_random gives an empty
// key a random partition; crc32("") % n would pile every such record onto
// one partition for apps migrating from rdkafka.
func TestCRC32EmptyKeyIsKeyless(t *testing.T) {
	p, err := newPartitioner("crc32")
	if err != nil {
		t.Fatal(err)
	}
	tp := p.ForTopic("t")
	seen := map[int]bool{}
	for range 200 {
		seen[tp.Partition(&kgo.Record{Key: []byte{}, Partition: -1}, 8)] = true
	}
	if len(seen) < 2 {
		t.Errorf("200 empty-key records all went to partitions %v", seen)
	}
}
