package main

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

// sample is one side's measurement in one round.
type sample struct {
	failed     error // the round failed on this side; the medians leave it out
	kbridge    bool
	records    int
	first      time.Duration // start to the first acknowledgement
	elapsed    time.Duration // start to the acknowledgement that completed the backlog
	ready      time.Duration // kbridge: start to /readyz 200
	kbridgeCPU time.Duration // kbridge: its whole CPU time until the backlog was done
	selfCPU    time.Duration // this process (webhook, and the baseline's client)
	hwmKiB     int64         // kbridge: VmHWM when the backlog was done
	hostBusy   float64       // share of all CPUs busy in that time
	dups, errs int64
	firstErr   error
	gaps       gaps
	peak       int // most requests in the webhook at once
}

// tallied copies t's counts into s, with times from start.
func (s *sample) tallied(t *tally, start time.Time) {
	c := t.snapshot()
	s.records, s.dups, s.errs, s.firstErr, s.gaps, s.peak = t.records, c.dups, c.errs, c.firstErr, c.gaps, c.peak
	if !c.first.IsZero() {
		s.first = c.first.Sub(start)
	}
	if !c.last.IsZero() {
		s.elapsed = c.last.Sub(start)
	}
}

// rate is records/s from start until every record was acknowledged.
func (s sample) rate() float64 { return float64(s.records) / s.elapsed.Seconds() }

// steadyRate leaves out the time to the first delivery (kbridge's start-up,
// its group join and first fetch).
func (s sample) steadyRate() float64 {
	return float64(s.records-1) / max(s.elapsed-s.first, time.Microsecond).Seconds()
}

// gapText is the longest pause of a partition, and where.
func (s sample) gapText() string {
	return fmt.Sprintf("%s (partition %d; %d gaps ≥%s, %s in all)",
		benchkit.FmtDur(s.gaps.longest), s.gaps.longestPartition, s.gaps.stalls, stallGap, benchkit.FmtDur(s.gaps.stalledFor))
}

// round is one round's two sides (see options.sides): the baseline, and
// the one measured against it.
type round struct{ baseline, measured sample }

// ratio is the measured side's records/s over the baseline's in the round;
// 0 if either failed.
func (r round) ratio() float64 { return r.ratioOf(sample.rate) }

// steadyRatio is ratio with each side's time to its first delivery left
// out.
func (r round) steadyRatio() float64 { return r.ratioOf(sample.steadyRate) }

func (r round) ratioOf(rate func(sample) float64) float64 {
	if r.baseline.failed != nil || r.measured.failed != nil {
		return 0
	}
	return rate(r.measured) / rate(r.baseline)
}

type report struct {
	o        options
	date     time.Time
	topic    string
	produced time.Duration
	rounds   []round
}

// failed says how many rounds' sides failed or saw errors; nil if none.
func (rep *report) failed() error {
	n := 0
	for _, r := range rep.rounds {
		for _, s := range []sample{r.baseline, r.measured} {
			if s.failed != nil || s.errs > 0 {
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d round(s) of a side failed or had errors, or kbridge did not exit cleanly (see the table)", n)
}

// row is one side's medians over the rounds it did not fail.
type row struct {
	name                     string
	kbridge                  bool
	rate, spread, steadyRate float64
	first, ready, longestGap time.Duration
	kbridgeCPU, selfCPU      float64 // seconds per 100,000 records
	hwmKiB                   int64
	hostBusy                 float64
	dups, errs               int64
	failed                   int
	firstErr                 error
}

func summarize(sd side, ss []sample) row {
	r := row{name: sd.label, kbridge: sd.kbridge}
	var rates, steady, kbCPU, selfCPU, busy []float64
	var first, ready, longest []time.Duration
	var hwm []int64
	for _, s := range ss {
		r.dups += s.dups
		r.errs += s.errs
		r.firstErr = cmp.Or(r.firstErr, s.failed, s.firstErr)
		if s.failed != nil {
			r.failed++
			continue
		}
		rates, steady = append(rates, s.rate()), append(steady, s.steadyRate())
		first, ready, longest = append(first, s.first), append(ready, s.ready), append(longest, s.gaps.longest)
		kbCPU = append(kbCPU, benchkit.Per100k(s.kbridgeCPU, int64(s.records)))
		selfCPU = append(selfCPU, benchkit.Per100k(s.selfCPU, int64(s.records)))
		hwm, busy = append(hwm, s.hwmKiB), append(busy, s.hostBusy)
	}
	r.rate, r.spread, r.steadyRate = benchkit.Median(rates), benchkit.Spread(rates), benchkit.Median(steady)
	r.first, r.ready, r.longestGap = benchkit.Median(first), benchkit.Median(ready), benchkit.Median(longest)
	r.kbridgeCPU, r.selfCPU = benchkit.Median(kbCPU), benchkit.Median(selfCPU)
	r.hwmKiB, r.hostBusy = benchkit.Median(hwm), benchkit.Median(busy)
	return r
}

// rows are the baseline's and the measured side's rows, and the median of
// the rounds' ratios.
func (rep *report) rows() (base, measured row, ratio float64) {
	var bs, ms []sample
	for _, r := range rep.rounds {
		bs, ms = append(bs, r.baseline), append(ms, r.measured)
	}
	baseSide, measuredSide := rep.o.sides()
	return summarize(baseSide, bs), summarize(measuredSide, ms), rep.medianRatio(round.ratio)
}

// medianRatio is the median of ratio over the rounds where neither side
// failed.
func (rep *report) medianRatio(ratio func(round) float64) float64 {
	var ratios []float64
	for _, r := range rep.rounds {
		if x := ratio(r); x > 0 {
			ratios = append(ratios, x)
		}
	}
	return benchkit.Median(ratios)
}

func (rep *report) write(w io.Writer) {
	o := rep.o
	baseSide, measuredSide := o.sides()
	base, measured, ratio := rep.rows()
	fmt.Fprintf(w, "## kbridge delivery benchmark\n\n")
	fmt.Fprintf(w, "- date: %s\n", rep.date.Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %s\n", benchkit.Machine())
	fmt.Fprintf(w, "- broker: %s (its own process); topic %s: %d partitions, replication 1\n", strings.Join(o.Brokers, ","), rep.topic, o.Partitions)
	fmt.Fprintf(w, "- backlog: %d records of %d-byte JSON values, %s, record i in partition i%%%d, %s\n",
		o.records, o.ValueSize, rep.keyText(), o.Partitions, rep.backlogText())
	when, settings := kbridgeText(baseSide, measuredSide)
	fmt.Fprintf(w, "- kbridge (%s%s): started anew %s with one subscription to the webhook and a new group id "+
		"(start at earliest, %s); SIGTERM once every record was acknowledged\n", o.KbridgeBin, o.ExtraFlags(), when, settings)
	fmt.Fprintf(w, "- webhook: Go net/http server in the benchmark; answers 200 %s; counts distinct (Kafka-Partition, Kafka-Offset)\n", rep.answerText())
	if !baseSide.kbridge {
		fmt.Fprintf(w, "- baseline: Go http.Client (keep-alive), one goroutine per partition POSTing its records in order, the same bodies to the same webhook\n")
	}
	fmt.Fprintf(w, "- each row: median of %d rounds; a round runs %s, then %s; ratio: median of the rounds' %s/%s\n\n",
		o.Rounds, theSide(baseSide), theSide(measuredSide), measuredSide.short, baseSide.short)
	fmt.Fprintf(w, "| side | records/s | spread | ratio %s/%s | first delivery | records/s after 1st delivery | longest pause of a partition | kbridge ready | kbridge CPU s/100k | bench CPU s/100k | kbridge peak RSS | host CPU busy | duplicates | errors |\n",
		measuredSide.short, baseSide.short)
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, r := range []row{base, measured} {
		rowRatio := 0.0
		if i == 1 {
			rowRatio = ratio
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f%% | %s | %s | %.0f | %s | %s | %s | %.2f | %s | %.0f%% | %d | %s |\n",
			r.name, r.rate, r.spread*100, ratioText(rowRatio), benchkit.FmtDur(r.first), r.steadyRate, benchkit.FmtDur(r.longestGap), r.kbridgeOnly(benchkit.FmtDur(r.ready)),
			r.kbridgeOnly(fmt.Sprintf("%.2f", r.kbridgeCPU)), r.selfCPU, r.kbridgeOnly(benchkit.FmtKiB(r.hwmKiB)), r.hostBusy*100, r.dups, r.errorsText())
	}
	b, m := baseSide.short, measuredSide.short
	fmt.Fprintf(w, "\n| round | %s records/s | %s records/s | ratio | %s first delivery | %s longest pause | %s CPU s/100k | %s peak RSS |\n", b, m, m, m, m, m)
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, r := range rep.rounds {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i+1, rateText(r.baseline), rateText(r.measured), ratioText(r.ratio()), r.measured.detail())
	}
	if baseSide.kbridge {
		// Both sides pay kbridge's start-up, group join and first fetch,
		// which weigh more on the faster side.
		fmt.Fprintf(w, "\nratio %s/%s of records/s after each side's first delivery: %s (median of the rounds)\n", m, b, ratioText(rep.medianRatio(round.steadyRatio)))
		basePeak, measuredPeak := rep.peaks()
		fmt.Fprintf(w, "most requests in the webhook at once, over the rounds: %s %d, %s %d\n", b, basePeak, m, measuredPeak)
	}
	fmt.Fprintf(w, "\nTimes count from kbridge's process start (the baseline's first request). spread: (max-min)/median of the rounds' records/s.\n"+
		"kbridge CPU: utime+stime of the kbridge process, start-up included. bench CPU: this process (the webhook, and the baseline's client).\n"+
		"longest pause of a partition: the longest time between two successive acknowledgements of one partition; with one record in flight\n"+
		"per partition and a webhook that answers at once, a long one is kbridge waiting for a fetch.\n"+
		"kbridge peak RSS: VmHWM. host CPU busy: all CPUs, broker, kbridge and benchmark together. duplicates: records acknowledged more than once.\n")
	for _, r := range []row{base, measured} {
		if r.firstErr != nil {
			fmt.Fprintf(w, "\nfirst error of %q: %v\n", r.name, r.firstErr)
		}
	}
}

// peaks are the most requests the webhook had at once from each side, over
// the rounds: what kbridge really kept in flight.
func (rep *report) peaks() (base, measured int) {
	for _, r := range rep.rounds {
		base, measured = max(base, r.baseline.peak), max(measured, r.measured.peak)
	}
	return base, measured
}

// theSide names a side in the header's prose.
func theSide(s side) string {
	if !s.kbridge {
		return "the baseline"
	}
	return s.short
}

func (rep *report) keyText() string {
	if rep.o.keys == 0 {
		return "no key"
	}
	return fmt.Sprintf("key i%%%d (decimal text)", rep.o.keys)
}

// kbridgeText says when kbridge starts, and with what settings.
func kbridgeText(base, measured side) (when, settings string) {
	if !base.kbridge {
		return "in each round", measured.setting
	}
	return "for each side of each round", base.short + ": " + base.setting + "; " + measured.short + ": " + measured.setting
}

func (rep *report) answerText() string {
	if rep.o.webhookDelay == 0 {
		return "at once"
	}
	return "after sleeping " + rep.o.webhookDelay.String()
}

func (rep *report) backlogText() string {
	if rep.o.topic != "" {
		return "the existing topic given by -topic"
	}
	return fmt.Sprintf("produced with franz-go before the rounds in %s: compression %s, batches filled to %d bytes",
		rep.produced.Round(time.Millisecond), rep.o.Compression, rep.o.batchBytes)
}

func (r row) kbridgeOnly(s string) string {
	if !r.kbridge {
		return "—"
	}
	return s
}

func (r row) errorsText() string {
	if r.failed > 0 {
		return fmt.Sprintf("%d, and %d round(s) FAILED", r.errs, r.failed)
	}
	return fmt.Sprint(r.errs)
}

// detail is kbridge's first delivery, CPU and peak RSS, as table cells.
func (s sample) detail() string {
	if s.failed != nil {
		return "— | — | — | —"
	}
	return fmt.Sprintf("%s | %s (p%d) | %.2f | %s", benchkit.FmtDur(s.first), benchkit.FmtDur(s.gaps.longest), s.gaps.longestPartition,
		benchkit.Per100k(s.kbridgeCPU, int64(s.records)), benchkit.FmtKiB(s.hwmKiB))
}

func rateText(s sample) string {
	if s.failed != nil {
		return "FAILED"
	}
	return fmt.Sprintf("%.0f", s.rate())
}

func ratioText(x float64) string {
	if x == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x)
}
