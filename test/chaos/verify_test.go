package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// summary is what a run found; format prints it, assert judges it.
type summary struct {
	settings settings
	broker   string
	wall     time.Duration

	published   int // acknowledged publishes
	calls       [apiKinds]callCount
	callErrors  map[string]int
	unknownWhy  map[string]int // records in the log whose publish failed, by the error
	inLog       int            // records in the log
	unconfirmed int            // in the log without an acknowledged publish

	lost         []string // acknowledged publishes not in the log as acknowledged
	undelivered  []string // in the log, neither acknowledged nor dead-lettered
	misdelivered []string // the webhook got another body than the log holds
	outOfOrder   []string // first deliveries not in offset order
	badDLQ       []string // dead-letter copies without their reason or value
	poisonAcked  []string // poison records that were acknowledged
	finalCommits []string // partitions whose final committed offset is not the log end

	poison       int // poison records in the log
	deadLettered int // records with a dead-letter copy
	exhausted    int // non-poison records dead-lettered (retries exhausted)
	dlqCopies    int
	duplicates   int64             // acknowledgements and dead-letter copies beyond the first
	redelivered  int               // records delivered (requested) more than once
	injected     [replyKinds]int64 // one-record requests, by the webhook's reply
	batches      batchTotals       // batch requests and their events (batch delivery only)

	tally                            tally
	samples, sampleErrors, ahead     int
	rebalances                       int
	regressions                      int
	regressionExamples               []string
	webhookProblems, readerProblems  int
	webhookExamples, readerExamples  []string
	partitions                       int32
	endOffsets, committedAfterFinish map[int32]int64
}

// verify checks the whole run from the ledger, the publisher's
// acknowledgements and the dead-letter copies; end is the log end.
func (r *run) verify(pub *publisher, end, committed map[int32]int64) *summary {
	sum := &summary{unknownWhy: map[string]int{}, settings: r.s, broker: r.kafka.String(), wall: time.Since(r.began), published: len(pub.acknowledged()),
		calls: pub.counts, callErrors: pub.errors, injected: r.hook.injected(), batches: r.hook.batches.totals(), partitions: r.s.partitions, endOffsets: end, committedAfterFinish: committed}
	slots := r.ledger.snapshot()
	acknowledged := make(map[int64]bool, len(pub.acknowledged()))
	for _, p := range pub.acknowledged() {
		acknowledged[p.id] = true
		if int(p.partition) >= len(slots) || p.offset >= int64(len(slots[p.partition])) ||
			!slots[p.partition][p.offset].inLog || slots[p.partition][p.offset].logID != p.id {
			sum.lost = append(sum.lost, fmt.Sprintf("id %d acknowledged at %d/%d", p.id, p.partition, p.offset))
		}
	}
	for p, ps := range slots {
		sum.checkPartition(int32(p), ps, acknowledged)
		for _, s := range ps {
			if s.inLog && !acknowledged[s.logID] {
				sum.unknownWhy[pub.failed[s.logID]]++
			}
		}
		if c, e := committed[int32(p)], end[int32(p)]; c != e {
			sum.finalCommits = append(sum.finalCommits, fmt.Sprintf("partition %d: committed %d, log end %d", p, c, e))
		}
	}
	for _, c := range r.dlqs.all() {
		s := slots[c.partition][c.offset]
		switch {
		case c.topic != r.topic || c.group != r.group || c.reason == "" || c.attempts == "" || c.id != s.logID:
			sum.badDLQ = append(sum.badDLQ, fmt.Sprintf("%+v", c))
		case s.poison && c.lastStatus != "422":
			sum.badDLQ = append(sum.badDLQ, fmt.Sprintf("poison record dead-lettered with last status %q: %+v", c.lastStatus, c))
		case !s.poison && c.lastStatus == "422":
			// The webhook answers 422 for a record only when it is poison,
			// or for a whole batch holding one, which must not dead-letter
			// the batch's other records.
			sum.badDLQ = append(sum.badDLQ, fmt.Sprintf("record that is not poison dead-lettered with last status 422: %+v", c))
		}
	}
	sum.dlqCopies = len(r.dlqs.all())
	sum.samples, sum.sampleErrors, sum.ahead, sum.rebalances = r.checker.counts()
	sum.regressions, sum.regressionExamples = r.checker.regressions.report()
	sum.webhookProblems, sum.webhookExamples = r.hook.problems.report()
	sum.readerProblems, sum.readerExamples = r.readers.report()
	return sum
}

// checkPartition checks every record of one partition.
func (sum *summary) checkPartition(p int32, slots []slot, acknowledged map[int64]bool) {
	var lastFirst uint64
	for off, s := range slots {
		if !s.inLog {
			continue
		}
		at := fmt.Sprintf("%d/%d (id %d)", p, off, s.logID)
		sum.inLog++
		if !acknowledged[s.logID] {
			sum.unconfirmed++
		}
		if s.acks == 0 && s.dlqs == 0 {
			sum.undelivered = append(sum.undelivered, at)
		}
		if s.poison {
			sum.poison++
			if s.acks > 0 {
				sum.poisonAcked = append(sum.poisonAcked, at)
			}
		}
		if s.dlqs > 0 {
			sum.deadLettered++
			if !s.poison {
				sum.exhausted++
			}
		}
		if s.arrivals > 0 && s.hookID != s.logID {
			sum.misdelivered = append(sum.misdelivered, fmt.Sprintf("%s: webhook got id %d", at, s.hookID))
		}
		if s.arrivals > 0 {
			if s.firstArr < lastFirst {
				sum.outOfOrder = append(sum.outOfOrder, fmt.Sprintf("%s first delivered after a later offset", at))
			}
			lastFirst = s.firstArr
		}
		sum.duplicates += int64(max(0, s.acks-1) + max(0, s.dlqs-1))
		if s.arrivals > 1 {
			sum.redelivered++
		}
	}
}

// assert fails the test for every broken promise.
func (sum *summary) assert(t *testing.T) {
	t.Helper()
	fails := map[string][]string{
		"acknowledged publishes lost":                    sum.lost,
		"records neither acknowledged nor dead-lettered": sum.undelivered,
		"records delivered with another body":            sum.misdelivered,
		"first deliveries out of offset order":           sum.outOfOrder,
		"dead-letter copies without their reason":        sum.badDLQ,
		"poison records acknowledged":                    sum.poisonAcked,
		"final committed offsets not at the log end":     sum.finalCommits,
		"graceful shutdowns that failed":                 sum.tally.shutdownFailures,
		"commits that moved backwards":                   sum.regressionExamples,
		"webhook contract breaches":                      sum.webhookExamples,
		"records the readers could not parse":            sum.readerExamples,
	}
	for _, what := range slices.Sorted(maps.Keys(fails)) {
		if got := fails[what]; len(got) > 0 {
			t.Errorf("%s: %d, e.g. %s", what, len(got), strings.Join(got[:min(len(got), 5)], "; "))
		}
	}
	if sum.ahead > 0 {
		t.Errorf("commit-ahead violations: %d", sum.ahead)
	}
	if sum.duplicates > sum.tally.dupBound {
		t.Errorf("duplicates %d exceed the bound %d of records acknowledged-but-uncommitted or in flight at the disturbances", sum.duplicates, sum.tally.dupBound)
	}
	if sum.settings.poisonOne > 0 && sum.poison == 0 {
		t.Errorf("no poison record was published: the dead-letter path went untested")
	}
	if sum.poison > 0 && sum.deadLettered < sum.poison {
		t.Errorf("%d poison records in the log, only %d dead-lettered", sum.poison, sum.deadLettered)
	}
	if sum.settings.batch > 1 && sum.batches.multi == 0 {
		t.Errorf("batch delivery is on, but no request carried more than one event: batching went untested")
	}
}

// format is the printed summary.
func (sum *summary) format() string {
	var b strings.Builder
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-38s %s\n", name, fmt.Sprintf(format, args...))
	}
	t := sum.tally
	fmt.Fprintf(&b, "kbridge chaos summary (%s, seed %d, %s)\n", sum.settings.mode, sum.settings.seed, sum.broker)
	line("records published (acknowledged)", "%d", sum.published)
	line("records in the log", "%d (%d from calls that failed)", sum.inLog, sum.unconfirmed)
	for _, why := range slices.Sorted(maps.Keys(sum.unknownWhy)) {
		line("", "%d× in the log although: %s", sum.unknownWhy[why], why)
	}
	line("publish calls", "%s", sum.callsLine())
	errs := slices.SortedFunc(maps.Keys(sum.callErrors), func(a, b string) int { return sum.callErrors[b] - sum.callErrors[a] })
	for _, e := range errs[:min(len(errs), 8)] {
		line("", "%d× %s", sum.callErrors[e], e)
	}
	line("instances", "%d in the group, %d partitions", sum.settings.instances, sum.partitions)
	line("kills (kill -9, then restart)", "%d", t.kills)
	line("SIGTERMs (then restart)", "%d", t.sigterms)
	line("instances added / removed", "%d / %d", t.adds, t.removes)
	line("instance (re)starts", "%d", t.restarts)
	line("graceful stops (SIGTERM)", "%d during the run (longest %v) + %d at the end; failures %d", len(t.shutdowns), longest(t.shutdowns), sum.settings.instances, len(t.shutdownFailures))
	line("rebalances (member-set changes)", "%d", sum.rebalances)
	line("broker restarts", "%d", t.brokerRestarts)
	if sum.settings.batch > 0 {
		requests, events := sum.batches.lines()
		line("batch delivery", "max_records %d, max_wait %v", sum.settings.batch, batchMaxWait)
		line("batch requests", "%s", requests)
		line("batch events", "%s", events)
	} else {
		line("injected webhook failures", "%s", sum.injectedLine())
	}
	line("lost", "%d", len(sum.lost))
	line("commit-ahead violations", "%d", sum.ahead)
	line("commits moved backwards", "%d", sum.regressions)
	line("neither acked nor dead-lettered", "%d", len(sum.undelivered))
	line("first deliveries out of order", "%d", len(sum.outOfOrder))
	line("duplicates", "%d (bound %d); %d records requested more than once", sum.duplicates, t.dupBound, sum.redelivered)
	line("DLQ", "%d records (%d poison of %d, %d after exhausted retries), %d copies", sum.deadLettered, sum.deadLettered-sum.exhausted, sum.poison, sum.exhausted, sum.dlqCopies)
	line("final committed = log end", "%t (%d partitions)", len(sum.finalCommits) == 0, sum.partitions)
	line("checker samples", "%d (%d could not read the offsets: broker away, group not formed yet)", sum.samples, sum.sampleErrors)
	line("wall time", "%v", sum.wall.Round(time.Second))
	if len(t.events) > 0 {
		b.WriteString("  events:\n")
	}
	for _, e := range t.events {
		b.WriteString("    " + e + "\n")
	}
	return b.String()
}

func (sum *summary) callsLine() string {
	var parts []string
	for k, c := range sum.calls {
		parts = append(parts, fmt.Sprintf("%s %d (%d failed)", apiNames[k], c.calls, c.failedCalls))
	}
	return strings.Join(parts, ", ")
}

func (sum *summary) injectedLine() string {
	var parts []string
	for k := replyPoison; k < replyKinds; k++ {
		parts = append(parts, fmt.Sprintf("%s %d", replyNames[k], sum.injected[k]))
	}
	return fmt.Sprintf("%s; %d answered 204", strings.Join(parts, ", "), sum.injected[replyAck])
}

func longest(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Round(time.Millisecond)
}
