package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

func TestTallyCountsDistinctRecordsOfTheBacklog(t *testing.T) {
	tl := newTally(3, 7, 0) // partition 0: offsets 0-2, partitions 1 and 2: offsets 0-1
	for _, c := range []struct {
		p int32
		o int64
	}{{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}, {1, 1}, {2, 2} /* past the end */, {3, 0}, {-1, 0}, {0, -1}} {
		tl.ack(c.p, c.o)
	}
	if tl.complete() {
		t.Fatal("complete without partition 0 offset 2")
	}
	tl.ack(0, 2)
	if !tl.complete() {
		t.Fatal("not complete after every record")
	}
	got := tl.snapshot()
	if got.distinct != 7 || got.dups != 1 || got.errs != 4 {
		t.Errorf("distinct %d, dups %d, errs %d; want 7, 1, 4", got.distinct, got.dups, got.errs)
	}
	if got.first.IsZero() || got.last.Before(got.first) {
		t.Errorf("first %v, last %v", got.first, got.last)
	}
}

func TestGapsKeepTheLongestAndTheStalls(t *testing.T) {
	var g gaps
	for _, c := range []struct {
		p int
		d time.Duration
	}{{0, time.Millisecond}, {3, 5 * time.Second}, {1, stallGap}, {2, 2 * time.Second}} {
		g.add(c.p, c.d)
	}
	if g.longest != 5*time.Second || g.longestPartition != 3 || g.stalls != 3 || g.stalledFor != 7*time.Second+stallGap {
		t.Errorf("gaps %+v", g)
	}
}

// The baseline against the webhook, in this process: every record is
// acknowledged once, and the sample says so.
func TestBaselineDeliversTheBacklogOnce(t *testing.T) {
	hook, err := startWebhook(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := hook.close(); err != nil {
			t.Error(err)
		}
	}()
	o := options{Common: benchkit.Common{Partitions: 4}, records: 1001, timeout: 30 * time.Second}
	b := newBaseline(o, hook.url, benchkit.NewValuePool(64))
	defer b.close()
	s := b.measure(context.Background(), o, hook)
	if s.failed != nil || s.errs != 0 || s.dups != 0 {
		t.Fatalf("failed %v, errs %d (%v), dups %d", s.failed, s.errs, s.firstErr, s.dups)
	}
	if s.records != 1001 || s.elapsed <= 0 || s.first <= 0 || s.first > s.elapsed || s.rate() <= 0 {
		t.Errorf("records %d, first %v, elapsed %v", s.records, s.first, s.elapsed)
	}
}

func TestWebhookCountsMalformedRequestsAndAnswers200(t *testing.T) {
	hook, err := startWebhook(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()
	tl := newTally(1, 1, 0)
	hook.measure(tl)
	resp, err := http.Post(hook.url, "text/plain", strings.NewReader("x")) // no Kafka-Partition
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	if got := tl.snapshot(); got.errs != 1 || got.distinct != 0 {
		t.Errorf("errs %d, distinct %d", got.errs, got.distinct)
	}
}

func TestReportRatioIsMedianOfRounds(t *testing.T) {
	side := func(kbridge bool, elapsed time.Duration) sample {
		return sample{kbridge: kbridge, records: 100_000, first: 10 * time.Millisecond, elapsed: elapsed,
			kbridgeCPU: 2 * time.Second, hwmKiB: 40 << 10}
	}
	rep := &report{o: options{Common: benchkit.Common{Partitions: 12, Rounds: 3}, scenario: scenarioDelivery, records: 100_000}, rounds: []round{
		{side(false, 10*time.Second), side(true, 20*time.Second)}, // 0.5
		{side(false, 5*time.Second), side(true, 20*time.Second)},  // 0.25
		{side(false, 10*time.Second), sample{failed: errors.New("boom")}},
	}}
	rows, ratio := rep.rows(), rep.ratioOf(comparison{1, 0})
	kb := rows[1]
	if want := 0.375; ratio != want {
		t.Errorf("ratio %v, want %v", ratio, want)
	}
	if kb.rate != 5000 || kb.failed != 1 || kb.kbridgeCPU != 2 {
		t.Errorf("kbridge row %+v", kb)
	}
	if err := rep.failed(); err == nil || !strings.HasPrefix(err.Error(), "1 round(s)") {
		t.Errorf("failed() = %v, want 1 round", err)
	}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{"| 0.38× |", "1 round(s) FAILED", "| 3 | 10000 | FAILED | — | — | — | — | — |", `first error of "kbridge`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestOptions(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "KAFKA_BROKERS" {
			return "127.0.0.1:1,127.0.0.1:2", true
		}
		return "", false
	}
	o, err := parseOptions(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Partitions != 12 || o.records != 100_000 || o.Rounds != 3 || o.ValueSize != 1024 || len(o.Brokers) != 2 {
		t.Errorf("defaults: %+v", o)
	}
	if _, err := parseOptions([]string{"-records", "0", "-partitions", "0"}, env, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "records") || !strings.Contains(err.Error(), "partitions") {
		t.Errorf("bad flags: %v", err)
	}
	if _, err := parseOptions(nil, func(string) (string, bool) { return "", false }, io.Discard); err == nil {
		t.Error("no brokers accepted")
	}
}

// A record acknowledged after a later record of its key (in its partition)
// is an error; other keys and partitions may interleave.
func TestTallyChecksOrderWithinEachKey(t *testing.T) {
	tl := newTally(2, 12, 3) // record i: partition i%2, offset i/2, key i%3
	for _, i := range []int{1, 0, 2, 4, 3, 5, 7, 6, 11, 9, 8, 10} {
		tl.ack(int32(i%2), int64(i/2))
	}
	if got := tl.snapshot(); got.errs != 0 || got.distinct != 12 {
		t.Fatalf("in order per key: errs %d (%v), distinct %d", got.errs, got.firstErr, got.distinct)
	}
	tl = newTally(1, 4, 2) // keys 0, 1, 0, 1
	for _, i := range []int{1, 2, 0, 3} {
		tl.ack(0, int64(i))
	}
	got := tl.snapshot()
	if got.errs != 1 || got.distinct != 4 || !strings.Contains(got.firstErr.Error(), "offset 0 acknowledged after offset 2 of its key") {
		t.Errorf("errs %d, distinct %d, first %v", got.errs, got.distinct, got.firstErr)
	}
	tl = newTally(2, 4, 0) // no keys: order per partition
	for _, i := range []int{3, 1, 0, 2} {
		tl.ack(int32(i%2), int64(i/2))
	}
	if got := tl.snapshot(); got.errs != 1 || !strings.Contains(got.firstErr.Error(), "of its partition") {
		t.Errorf("errs %d, first %v", got.errs, got.firstErr)
	}
}

func TestWebhookAnswersAfterItsDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	hook, err := startWebhook(delay, false)
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()
	tl := newTally(1, 1, 0)
	hook.measure(tl)
	start := time.Now()
	err = benchkit.Post(context.Background(), benchkit.KeepAliveClient(1), hook.url, []byte("{}"),
		http.Header{"Kafka-Partition": {"0"}, "Kafka-Offset": {"0"}})
	if took := time.Since(start); err != nil || took < delay {
		t.Fatalf("answered after %v, err %v; want at least %v", took, err, delay)
	}
	if got := tl.snapshot(); got.distinct != 1 || got.peak != 1 {
		t.Errorf("distinct %d, peak %d; want 1, 1", got.distinct, got.peak)
	}
}

func TestOrderingScenarioDefaultsAndSides(t *testing.T) {
	env := func(k string) (string, bool) { return "127.0.0.1:1", k == "KAFKA_BROKERS" }
	o, err := parseOptions([]string{"-scenario", "ordering", "-records", "500"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Partitions != 1 || o.records != 500 || o.keys != 1000 || o.webhookDelay != 5*time.Millisecond || o.maxInFlight != 100 {
		t.Errorf("ordering defaults: %+v", o)
	}
	sides := o.sides()
	base, measured := sides[0], sides[1]
	if len(sides) != 2 || !base.kbridge || !measured.kbridge || !slices.Contains(base.env, "KBRIDGE_ORDERING=partition") ||
		!slices.Equal(measured.env, []string{"KBRIDGE_ORDERING=key", "KBRIDGE_MAX_IN_FLIGHT=100", "KBRIDGE_MAX_CONCURRENCY=100"}) {
		t.Errorf("sides %+v, %+v", base, measured)
	}
	if got := string(o.key(1234)); got != "234" {
		t.Errorf("key(1234) = %q", got)
	}
	if d, err := parseOptions(nil, env, io.Discard); err != nil || d.keys != 0 || d.webhookDelay != 0 || d.key(5) != nil {
		t.Errorf("delivery defaults: %+v, %v", d, err)
	}
	if _, err := parseOptions([]string{"-scenario", "nope", "-keys", "-1"}, env, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "scenario") || !strings.Contains(err.Error(), "keys") {
		t.Errorf("bad flags: %v", err)
	}
}

// With two kbridge sides, the ratio is on the measured row only, both rows
// have kbridge's columns, and the ratio after the first delivery is shown.
func TestReportOfTheOrderingScenario(t *testing.T) {
	side := func(elapsed time.Duration) sample {
		return sample{kbridge: true, records: 2000, first: 100 * time.Millisecond, elapsed: elapsed, ready: 20 * time.Millisecond,
			kbridgeCPU: time.Second, hwmKiB: 30 << 10}
	}
	o := options{Common: benchkit.Common{Partitions: 1, Rounds: 1}, scenario: scenarioOrdering, records: 2000, keys: 1000,
		webhookDelay: 5 * time.Millisecond, maxInFlight: 100}
	base, measured := side(10100*time.Millisecond), side(300*time.Millisecond)
	base.peak, measured.peak = 1, 100
	rep := &report{o: o, rounds: []round{{base, measured}}}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{
		"| ratio key/partition |",
		"| kbridge ordering partition: 1 partition(s), 1 in flight each | 198 | 0% | — |",
		"| kbridge ordering key: 1 partition(s), max_in_flight 100 each | 6667 | 0% | 33.67× |",
		"| round | partition records/s | key records/s | ratio | key first delivery |",
		"after each side's first delivery: 50.00×",
		"at once, over the rounds: partition 1, key 100",
		"answers 200 after sleeping 5ms",
		"key i%1000",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "- baseline:") {
		t.Errorf("report describes a plain-client baseline:\n%s", out.String())
	}
}
