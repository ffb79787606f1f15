package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

func TestTallyCountsDistinctRecordsOfTheBacklog(t *testing.T) {
	tl := newTally(3, 7) // partition 0: offsets 0-2, partitions 1 and 2: offsets 0-1
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
	hook, err := startWebhook()
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
	hook, err := startWebhook()
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()
	tl := newTally(1, 1)
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
	rep := &report{o: options{Common: benchkit.Common{Partitions: 12, Rounds: 3}, records: 100_000}, rounds: []round{
		{side(false, 10*time.Second), side(true, 20*time.Second)}, // 0.5
		{side(false, 5*time.Second), side(true, 20*time.Second)},  // 0.25
		{side(false, 10*time.Second), sample{failed: errors.New("boom")}},
	}}
	_, kb, ratio := rep.rows()
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
