package chaos

import (
	"sync"
)

// slot is what the run knows about one offset of one partition.
type slot struct {
	inLog  bool  // the log reader read a record at this offset
	logID  int64 // the id in that record's value
	poison bool  // that record's value is poison (the webhook answers 422)

	arrivals int32  // webhook requests for this record
	firstArr uint64 // ledger sequence number of the first request
	hookID   int64  // the id in the body of the first request

	acks   int32  // 2xx answers the webhook recorded
	ackSeq uint64 // ledger sequence number of the first one; 0 = none

	dlqs    int32 // copies in the dead-letter topic
	dlqPart int32 // where the first copy is
	dlqOff  int64
}

// limits say which facts a commit-ahead check may count: acknowledgements
// recorded up to a sequence number, and dead-letter copies below the DLQ
// end offsets, both taken just after the committed offsets were read. What
// happened later cannot justify that commit.
type limits struct {
	seq    uint64
	dlqEnd map[int32]int64
}

// ledger records, per partition and offset, what the log holds, what the
// webhook received and acknowledged, and what was dead-lettered. One mutex
// guards it all: it sees a few thousand events a second at most.
type ledger struct {
	mu    sync.Mutex
	seq   uint64 // counts arrivals and acks, to order them
	parts []partLedger
}

type partLedger struct {
	slots  []slot
	logEnd int64 // offset after the last record the log reader read
	prefix int64 // cache of prefix: only grows, as its limits only grow
}

func newLedger(partitions int32) *ledger {
	return &ledger{parts: make([]partLedger, partitions)}
}

// slot returns the slot of (p, off), growing the partition as needed; the
// caller holds mu. A partition the topic does not have returns nil.
func (l *ledger) slot(p int32, off int64) *slot {
	if p < 0 || int(p) >= len(l.parts) || off < 0 {
		return nil
	}
	pl := &l.parts[p]
	for int64(len(pl.slots)) <= off {
		pl.slots = append(pl.slots, slot{})
	}
	return &pl.slots[off]
}

// arrived records a webhook request for (p, off) whose body carried id. It
// returns false for coordinates that cannot be ours.
func (l *ledger) arrived(p int32, off, id int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.slot(p, off)
	if s == nil {
		return false
	}
	l.seq++
	if s.arrivals == 0 {
		s.firstArr, s.hookID = l.seq, id
	}
	s.arrivals++
	return true
}

// acked records a 2xx the webhook is about to send for (p, off).
func (l *ledger) acked(p int32, off int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.slot(p, off)
	l.seq++
	if s.ackSeq == 0 {
		s.ackSeq = l.seq
	}
	s.acks++
}

// deadLettered records a copy of (p, off) at (dlqPart, dlqOff) of the DLQ.
func (l *ledger) deadLettered(p int32, off int64, dlqPart int32, dlqOff int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.slot(p, off)
	if s == nil {
		return false
	}
	if s.dlqs == 0 || (dlqPart == s.dlqPart && dlqOff < s.dlqOff) {
		s.dlqPart, s.dlqOff = dlqPart, dlqOff
	}
	s.dlqs++
	return true
}

// logged records the record the log reader read at (p, off). Offsets
// between the previous record and this one hold nothing deliverable.
func (l *ledger) logged(p int32, off, id int64, poison bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.slot(p, off)
	if s == nil {
		return false
	}
	s.inLog, s.logID, s.poison = true, id, poison
	l.parts[p].logEnd = max(l.parts[p].logEnd, off+1)
	return true
}

// sequence is the number of arrivals and acks so far.
func (l *ledger) sequence() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// logEnd is the offset after the last record the log reader read in p.
func (l *ledger) logEnd(p int32) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parts[p].logEnd
}

// prefix is the offset of p's first record that is neither acknowledged
// nor dead-lettered within lim: the most kbridge may have committed. An
// offset the log reader passed without a record holds nothing to deliver
// and is skipped; an offset it has not reached yet counts as a record
// (the caller waits for the reader before it calls a commit ahead).
// Successive calls must pass limits that never decrease.
func (l *ledger) prefix(p int32, lim limits) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	pl := &l.parts[p]
	for ; pl.prefix < int64(len(pl.slots)); pl.prefix++ {
		s := &pl.slots[pl.prefix]
		gap := pl.prefix < pl.logEnd && !s.inLog
		acked := s.ackSeq != 0 && s.ackSeq <= lim.seq
		dead := s.dlqs > 0 && s.dlqOff < lim.dlqEnd[s.dlqPart]
		if !gap && !acked && !dead {
			break
		}
	}
	return pl.prefix
}

// doneEnd is, per partition, the offset after the highest record that was
// acknowledged or dead-lettered so far.
func (l *ledger) doneEnd() map[int32]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int32]int64, len(l.parts))
	for p, pl := range l.parts {
		for off := int64(len(pl.slots)) - 1; off >= 0; off-- {
			if s := &pl.slots[off]; s.acks > 0 || s.dlqs > 0 {
				out[int32(p)] = off + 1
				break
			}
		}
	}
	return out
}

// snapshot copies every partition's slots, for the final checks.
func (l *ledger) snapshot() [][]slot {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]slot, len(l.parts))
	for p, pl := range l.parts {
		out[p] = append([]slot(nil), pl.slots...)
	}
	return out
}
