package main

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

// report is what the run prints: the settings, the environment, and one row
// per scenario holding the medians over the rounds.
type report struct {
	o          options
	date       time.Time
	readyAfter time.Duration
	hwmKiB     int64
	cleanExit  bool
	rows       []row
}

type row struct {
	name       string
	slug       string
	kbridge    bool
	vs         string  // name of the compared row
	rate       float64 // records/s
	spread     float64 // (max-min)/median of the rounds' records/s
	ratio      float64 // rate / the compared row's rate; 0 without one
	p50, p99   time.Duration
	kbridgeCPU float64 // CPU seconds of kbridge per 100,000 records
	clientCPU  float64 // CPU seconds of this process per 100,000 records
	peakRSSKiB int64
	hostBusy   float64 // share of the machine's CPU that was busy
	errs       int64
	firstErr   error
	failed     int // rounds whose load failed; the medians leave them out
}

func newReport(o options, readyAfter time.Duration, hwmKiB int64, scs []scenario, samples [][]sample) *report {
	rep := &report{o: o, date: time.Now(), readyAfter: readyAfter, hwmKiB: hwmKiB}
	rates := make(map[string]float64, len(scs))
	names := make(map[string]string, len(scs))
	for i, sc := range scs {
		r := summarize(sc, samples[i])
		rates[sc.slug], names[sc.slug] = r.rate, sc.name
		rep.rows = append(rep.rows, r)
	}
	for i, sc := range scs {
		if base, ok := rates[sc.baseline]; ok && base > 0 {
			rep.rows[i].ratio = rep.rows[i].rate / base
			rep.rows[i].vs = names[sc.baseline]
		}
	}
	return rep
}

// summarize takes each metric's median over the rounds, the largest RSS,
// and the total of errors.
func summarize(sc scenario, ss []sample) row {
	r := row{name: sc.name, slug: sc.slug, kbridge: sc.kbridge}
	var rates []float64
	var p50s, p99s []time.Duration
	var kbCPU, selfCPU, busy []float64
	for _, s := range ss {
		if s.failed != nil {
			r.failed++
			r.firstErr = cmp.Or(r.firstErr, s.failed)
			continue
		}
		rates = append(rates, s.rate())
		p50s, p99s = append(p50s, s.p50), append(p99s, s.p99)
		kbCPU = append(kbCPU, benchkit.Per100k(s.kbridgeCPU, s.records))
		selfCPU = append(selfCPU, benchkit.Per100k(s.selfCPU, s.records))
		busy = append(busy, s.hostBusy)
		r.peakRSSKiB = max(r.peakRSSKiB, s.peakRSSKiB)
		r.errs += s.errs
		r.firstErr = cmp.Or(r.firstErr, s.firstErr)
	}
	r.rate, r.p50, r.p99 = benchkit.Median(rates), benchkit.Median(p50s), benchkit.Median(p99s)
	r.kbridgeCPU, r.clientCPU, r.hostBusy = benchkit.Median(kbCPU), benchkit.Median(selfCPU), benchkit.Median(busy)
	r.spread = benchkit.Spread(rates)
	return r
}

// failures counts the failed records or calls and the failed rounds.
func (rep *report) failures() (errs int64, rounds int) {
	for _, r := range rep.rows {
		errs += r.errs
		rounds += r.failed
	}
	return errs, rounds
}

func (rep *report) write(w io.Writer) {
	o := rep.o
	fmt.Fprintf(w, "## kbridge publish benchmark\n\n")
	fmt.Fprintf(w, "- date: %s\n", rep.date.Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %s\n", benchkit.Machine())
	fmt.Fprintf(w, "- broker: %s (its own process); one topic per scenario, %d partitions, replication 1\n", strings.Join(o.Brokers, ","), o.Partitions)
	fmt.Fprintf(w, "- records: %d-byte JSON values, no key; acks=all, idempotent, compression %s, linger %s on both sides\n", o.ValueSize, o.Compression, o.linger)
	fmt.Fprintf(w, "- each row: median of %d rounds of %s after %s warm-up; rounds interleave the scenarios\n", o.Rounds, o.duration, o.warmup)
	fmt.Fprintf(w, "- kbridge (%s%s): ready %s after start; peak RSS (VmHWM) %s; %s\n\n",
		o.KbridgeBin, o.ExtraFlags(), rep.readyAfter.Round(time.Millisecond), benchkit.FmtKiB(rep.hwmKiB), rep.exitText())
	fmt.Fprintln(w, "| scenario | records/s | spread | p50 | p99 | ratio vs baseline | kbridge CPU s/100k | client CPU s/100k | kbridge peak RSS | host CPU busy | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
	for _, r := range rep.rows {
		fmt.Fprintf(w, "| %s | %.0f | %.0f%% | %s | %s | %s | %s | %.2f | %s | %.0f%% | %s |\n",
			r.name, r.rate, r.spread*100, benchkit.FmtDur(r.p50), benchkit.FmtDur(r.p99), r.ratioText(), r.kbridgeCPUText(), r.clientCPU, r.rssText(), r.hostBusy*100, r.errorsText())
	}
	fmt.Fprintf(w, "\nspread: (max-min)/median of the rounds' records/s. p50/p99: per call (ProduceSync, Publish, POST),\n"+
		"per request (PublishStream) or per record from Produce to its promise (async); the async rows' latency is\n"+
		"mostly queueing behind the in-flight bound. client CPU: this benchmark process (franz-go itself for A and B).\n"+
		"host CPU busy: share of all %d CPUs busy during the measurement (broker, kbridge and clients together).\n", runtime.NumCPU())
	for _, r := range rep.rows {
		if r.firstErr != nil {
			fmt.Fprintf(w, "\nfirst error of %q: %v\n", r.name, r.firstErr)
		}
	}
}

// metrics are the run's key figures by name, for bench/results.sh: per
// scenario <slug>.<figure>, and kbridge's ready time and VmHWM.
func (rep *report) metrics() map[string]float64 {
	m := map[string]float64{
		"ready_ms": benchkit.Millis(rep.readyAfter), "ready_ms_max": benchkit.Millis(rep.readyAfter),
		"peak_rss_mib": benchkit.MiB(rep.hwmKiB), "rounds": float64(rep.o.Rounds), "duration_s": rep.o.duration.Seconds(),
	}
	if rep.cleanExit {
		m["clean_exit"] = 1
	} else {
		m["clean_exit"] = 0
	}
	for _, r := range rep.rows {
		p := r.slug + "."
		m[p+"records_per_s"], m[p+"spread"], m[p+"client_cpu_s_per_100k"] = r.rate, r.spread, r.clientCPU
		m[p+"errors"], m[p+"failed_rounds"] = float64(r.errs), float64(r.failed)
		if r.ratio > 0 {
			m[p+"ratio"] = r.ratio
		}
		if r.kbridge {
			m[p+"cpu_s_per_100k"], m[p+"peak_rss_mib"] = r.kbridgeCPU, benchkit.MiB(r.peakRSSKiB)
		}
	}
	return m
}

func (rep *report) exitText() string {
	if rep.cleanExit {
		return "exit 0 after SIGTERM"
	}
	return "did NOT exit cleanly after SIGTERM"
}

func (r row) errorsText() string {
	if r.failed > 0 {
		return fmt.Sprintf("%d, and %d round(s) FAILED", r.errs, r.failed)
	}
	return strconv.FormatInt(r.errs, 10)
}

func (r row) ratioText() string {
	if r.ratio == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f× (vs %s)", r.ratio, shortName(r.vs))
}

func (r row) kbridgeCPUText() string {
	if !r.kbridge {
		return "—"
	}
	return fmt.Sprintf("%.2f", r.kbridgeCPU)
}

func (r row) rssText() string {
	if !r.kbridge {
		return "—"
	}
	return benchkit.FmtKiB(r.peakRSSKiB)
}

// shortName is a row's name up to its first comma.
func shortName(name string) string {
	before, _, _ := strings.Cut(name, ",")
	return before
}
