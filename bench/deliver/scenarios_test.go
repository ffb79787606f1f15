package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

func brokersEnv(k string) (string, bool) { return "127.0.0.1:1", k == "KAFKA_BROKERS" }

func TestBatchLaggingAndIdleOptions(t *testing.T) {
	o, err := parseOptions([]string{"-scenario", "batch", "-batch-max-records", "250", "-batch-max-wait", "5ms"}, brokersEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Partitions != 12 || o.records != 100_000 || o.loaded() != 12 {
		t.Errorf("batch defaults: %+v", o)
	}
	sides := o.sides()
	if len(sides) != 3 || sides[0].kbridge || sides[1].short != "single" || sides[1].env != nil || sides[2].short != "batched" ||
		!slices.Equal(sides[2].env, []string{"KBRIDGE_BATCH_MAX_RECORDS=250", "KBRIDGE_BATCH_MAX_WAIT=5ms"}) {
		t.Errorf("batch sides %+v", sides)
	}
	if got := o.comparisons(); !slices.Equal(got, []comparison{{1, 0}, {2, 0}, {2, 1}}) {
		t.Errorf("batch comparisons %v", got)
	}

	o, err = parseOptions([]string{"-scenario", "lagging"}, brokersEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Partitions != 4 || o.loaded() != 1 || o.records != 10_000 || len(o.sides()) != 2 {
		t.Errorf("lagging defaults: %+v", o)
	}
	if o, err = parseOptions([]string{"-scenario", "lagging", "-partitions", "8", "-backlog-partitions", "2"}, brokersEnv, io.Discard); err != nil || o.loaded() != 2 {
		t.Errorf("lagging flags: %+v, %v", o, err)
	}
	if o, err = parseOptions([]string{"-scenario", "idle", "-idle-for", "2s"}, brokersEnv, io.Discard); err != nil || o.idleFor != 2*time.Second {
		t.Errorf("idle: %+v, %v", o, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-scenario", "batch", "-batch-max-records", "10001"}, "batch-max-records"},
		{[]string{"-scenario", "batch", "-batch-max-wait", "10"}, "batch-max-wait"},
		{[]string{"-partitions", "4", "-backlog-partitions", "5"}, "backlog-partitions"},
		{[]string{"-scenario", "idle", "-idle-for", "0s"}, "idle-for"},
	} {
		if _, err := parseOptions(c.args, brokersEnv, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error about %s", c.args, err, c.want)
		}
	}
}

// With a backlog in some partitions only, the baseline posts those, and
// the tally counts them.
func TestBaselineDeliversABacklogInOnePartition(t *testing.T) {
	hook, err := startWebhook(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()
	o := options{Common: benchkit.Common{Partitions: 4}, backlogPartitions: 1, records: 300, timeout: 30 * time.Second}
	b := newBaseline(o, hook.url, benchkit.NewValuePool(64))
	defer b.close()
	s := b.measure(context.Background(), o, hook)
	if s.failed != nil || s.errs != 0 || s.dups != 0 || s.peak != 1 || s.requests != 300 || s.perRequest() != 1 {
		t.Fatalf("failed %v, errs %d (%v), dups %d, peak %d, requests %d", s.failed, s.errs, s.firstErr, s.dups, s.peak, s.requests)
	}
}

// Three sides: the ratio column is against the first, the per-round table
// has every ratio, and batched/single is also below the table.
func TestReportOfTheBatchScenario(t *testing.T) {
	side := func(kbridge bool, elapsed time.Duration, perRequest int) sample {
		return sample{kbridge: kbridge, records: 100_000, first: 10 * time.Millisecond, elapsed: elapsed, ready: 15 * time.Millisecond,
			kbridgeCPU: 2 * time.Second, hwmKiB: 80 << 10, requests: 100_000 / perRequest, events: 100_000}
	}
	o := options{Common: benchkit.Common{Partitions: 12, Rounds: 2}, scenario: scenarioBatch, records: 100_000, batchMaxRecords: 100}
	rep := &report{o: o, rounds: []round{
		{side(false, 2*time.Second, 1), side(true, 4*time.Second, 1), side(true, time.Second, 100)},
		{side(false, 2*time.Second, 1), side(true, 3*time.Second, 1), side(true, time.Second, 50)},
	}}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{
		"| side | records/s | spread | ratio to baseline |",
		"| kbridge single: backlog of 12 partitions, 1 record per request, 1 in flight each | 29167 | 29% | 0.58× |",
		"| kbridge batched: backlog of 12 partitions, batches of up to 100 records, 1 in flight each | 100000 | 0% | 2.00× |",
		"| round | baseline records/s | single records/s | batched records/s | single/baseline | batched/baseline | batched/single | single first delivery |",
		"| 1 | 50000 | 25000 | 100000 | 0.50× | 2.00× | 4.00× | 10.00ms |",
		"ratio batched/single of records/s: 3.50× (median of the rounds)",
		"records per webhook request (mean of a round, median of the rounds): baseline 1.0, single 1.0, batched 75.0",
		"batch max_records 100 (default max_bytes, default max_wait)",
		"kafkapartition, kafkaoffset",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	m := rep.metrics()
	if m["ratio.batched/single"] != 3.5 || m["ratio.single/baseline"] != 7.0/12 || m["batched.peak_rss_mib_max"] != 80 || m["ready_ms_max"] != 15 ||
		m["batched.records_per_request"] != 75 {
		t.Errorf("metrics %v", m)
	}
}

func TestIdleReport(t *testing.T) {
	s := idleSample{ready: 12 * time.Millisecond, readyRSSKiB: 15 << 10, first: 40 * time.Millisecond, all: 45 * time.Millisecond,
		rss: []int64{17 << 10, 18 << 10, 19 << 10}, idleCPU: 50 * time.Millisecond, idleFor: 5 * time.Second, hwmKiB: 21 << 10}
	rep := &idleReport{o: options{Common: benchkit.Common{Partitions: 12, Rounds: 2}, idleFor: 5 * time.Second},
		rounds: []idleSample{s, {failed: io.ErrUnexpectedEOF}}}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{
		"| median | 12.00ms | 15 MiB | 40.00ms | 45.00ms | 18 MiB | 19 MiB | 0.0 / 0.0 MiB | 21 MiB | 10.0 ms/s | 0, and 1 round(s) FAILED |",
		"| 2 | FAILED |",
		"first error: unexpected EOF",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := rep.failed(); err == nil {
		t.Error("no failure")
	}
	path := filepath.Join(t.TempDir(), "m")
	if err := benchkit.WriteMetrics(path, rep.metrics()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{"idle.rss_mib 18\n", "idle.ready_ms 12\n", "idle.cpu_ms_per_s 10\n", "idle.failed_rounds 1\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}
