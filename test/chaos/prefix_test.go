package chaos

import "testing"

// TestPrefix pins the checker's notion of "the most kbridge may have
// committed": it runs in every test run, unlike TestChaos. Invariants: an
// acknowledgement or dead-letter copy later than the limits never counts;
// an offset without a record (a gap the log reader passed) never holds the
// prefix back; an offset the reader has not reached does.
func TestPrefix(t *testing.T) {
	tests := []struct {
		name  string
		setup func(l *ledger) limits
		want  int64
	}{
		{"nothing", func(l *ledger) limits { return limits{seq: l.sequence()} }, 0},
		{"acked run", func(l *ledger) limits {
			for off := range int64(3) {
				l.logged(0, off, off, false)
				l.acked(0, off)
			}
			l.logged(0, 3, 3, false)
			return limits{seq: l.sequence()}
		}, 3},
		{"ack after the sample does not count", func(l *ledger) limits {
			l.logged(0, 0, 0, false)
			l.acked(0, 0)
			lim := limits{seq: l.sequence()}
			l.logged(0, 1, 1, false)
			l.acked(0, 1)
			return lim
		}, 1},
		{"dead-lettered below the DLQ end counts", func(l *ledger) limits {
			l.logged(0, 0, 0, true)
			l.deadLettered(0, 0, 2, 7)
			return limits{seq: l.sequence(), dlqEnd: map[int32]int64{2: 8}}
		}, 1},
		{"dead-lettered at or past the DLQ end does not", func(l *ledger) limits {
			l.logged(0, 0, 0, true)
			l.deadLettered(0, 0, 2, 7)
			return limits{seq: l.sequence(), dlqEnd: map[int32]int64{2: 7}}
		}, 0},
		{"gaps the reader passed are skipped", func(l *ledger) limits {
			l.logged(0, 0, 0, false)
			l.acked(0, 0)
			l.logged(0, 3, 3, false) // 1 and 2 hold no record
			l.acked(0, 3)
			return limits{seq: l.sequence()}
		}, 4},
		{"offsets past the reader block", func(l *ledger) limits {
			l.logged(0, 0, 0, false)
			l.acked(0, 0)
			l.acked(0, 2) // acknowledged, but 1 is unknown yet
			return limits{seq: l.sequence()}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger(1)
			lim := tt.setup(l)
			if got := l.prefix(0, lim); got != tt.want {
				t.Errorf("prefix = %d, want %d", got, tt.want)
			}
		})
	}
}
