package main

import (
	"math/rand/v2"

	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// poolSize is how many distinct values the loads cycle through: far more
// than fit one compression block (snappy's is 64 KiB), so that the records
// of a batch differ as they do in real traffic. With one value repeated,
// compression would shrink every batch to almost nothing and the broker's
// work with it.
const poolSize = 4096

// valuePool is a fixed set of distinct values, and a proto Record for each,
// built once so that the loads measure publishing, not building records.
type valuePool struct {
	values  [][]byte
	records []*kbridgev1.Record
}

func newValuePool(size int) *valuePool {
	rng := rand.New(rand.NewPCG(1, 2)) // the same values in every run
	p := &valuePool{}
	for range poolSize {
		v := makeValue(rng, size)
		p.values = append(p.values, v)
		p.records = append(p.records, &kbridgev1.Record{ValueBytes: v})
	}
	return p
}

// value is the i-th value, cycling.
func (p *valuePool) value(i uint64) []byte { return p.values[i%poolSize] }

// batch is n consecutive records for the i-th request of n records each.
// The records are shared: marshalling a message concurrently is safe.
func (p *valuePool) batch(i uint64, n int) []*kbridgev1.Record {
	start := int(i*uint64(n)) % (poolSize - n + 1)
	return p.records[start : start+n]
}

// makeValue is a JSON document of exactly size bytes whose payload is
// random base64 text: it compresses to about three quarters, less than
// typical events do, so compression flatters neither side.
func makeValue(rng *rand.Rand, size int) []byte {
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
