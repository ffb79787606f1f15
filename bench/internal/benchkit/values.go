package benchkit

import (
	"math/rand/v2"

	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// PoolSize is how many distinct values the loads cycle through: far more
// than fit one compression block (snappy's is 64 KiB), so that the records
// of a batch differ as they do in real traffic. With one value repeated,
// compression would shrink every batch to almost nothing and the broker's
// work with it.
const PoolSize = 4096

// ValuePool is a fixed set of distinct values, and a proto Record for each,
// built once so that the loads measure kbridge, not building records.
type ValuePool struct {
	vals    [][]byte
	records []*kbridgev1.Record
}

// NewValuePool builds PoolSize values of size bytes, the same in every run.
func NewValuePool(size int) *ValuePool {
	rng := rand.New(rand.NewPCG(1, 2)) // the same values in every run
	p := &ValuePool{}
	for range PoolSize {
		v := MakeValue(rng, size)
		p.vals = append(p.vals, v)
		p.records = append(p.records, &kbridgev1.Record{ValueBytes: v})
	}
	return p
}

// Value is the i-th value, cycling.
func (p *ValuePool) Value(i uint64) []byte { return p.vals[i%PoolSize] }

// Batch is n consecutive records for the i-th request of n records each.
// The records are shared: marshalling a message concurrently is safe.
func (p *ValuePool) Batch(i uint64, n int) []*kbridgev1.Record {
	start := int(i*uint64(n)) % (PoolSize - n + 1)
	return p.records[start : start+n]
}

// MakeValue is a JSON document of exactly size bytes whose payload is
// random base64 text: it compresses to about three quarters, less than
// typical events do, so compression flatters neither side.
func MakeValue(rng *rand.Rand, size int) []byte {
	const head, tail = `{"event":"bench","payload":"`, `"}`
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, size)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	if size >= len(head)+len(tail) {
		copy(b, head)
		copy(b[size-len(tail):], tail)
	}
	return b
}
