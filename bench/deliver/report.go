package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
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
	requests   int // requests the webhook tallied
	events     int // records they carried
}

// tallied copies t's counts into s, with times from start.
func (s *sample) tallied(t *tally, start time.Time) {
	c := t.snapshot()
	s.records, s.dups, s.errs, s.firstErr, s.gaps, s.peak = t.records, c.dups, c.errs, c.firstErr, c.gaps, c.peak
	s.requests, s.events = c.requests, c.events
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

// perRequest is the mean number of records in a webhook request.
func (s sample) perRequest() float64 {
	if s.requests == 0 {
		return 0
	}
	return float64(s.events) / float64(s.requests)
}

// gapText is the longest pause of a partition, and where.
func (s sample) gapText() string {
	return fmt.Sprintf("%s (partition %d; %d gaps ≥%s, %s in all)",
		benchkit.FmtDur(s.gaps.longest), s.gaps.longestPartition, s.gaps.stalls, stallGap, benchkit.FmtDur(s.gaps.stalledFor))
}

// round is one round's samples, one per side of the scenario (see
// options.sides), in order.
type round []sample

// ratio is side c.num's records/s over side c.den's in the round; 0 if
// either failed.
func (r round) ratio(c comparison) float64 { return r.ratioOf(c, sample.rate) }

// steadyRatio is ratio with each side's time to its first delivery left
// out.
func (r round) steadyRatio(c comparison) float64 { return r.ratioOf(c, sample.steadyRate) }

func (r round) ratioOf(c comparison, rate func(sample) float64) float64 {
	if c.num >= len(r) || c.den >= len(r) || r[c.num].failed != nil || r[c.den].failed != nil {
		return 0
	}
	return rate(r[c.num]) / rate(r[c.den])
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
		for _, s := range r {
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
	short                    string
	kbridge                  bool
	rate, spread, steadyRate float64
	first, ready, longestGap time.Duration
	maxReady, maxGap         time.Duration
	stalls                   int           // median of the rounds' gaps of stallGap or more
	stalledFor               time.Duration // median of their sums
	kbridgeCPU, selfCPU      float64       // seconds per 100,000 records
	hwmKiB, maxHWMKiB        int64
	hostBusy                 float64
	perRequest               float64 // records per webhook request
	dups, errs               int64
	failed                   int
	firstErr                 error
}

func summarize(sd side, ss []sample) row {
	r := row{name: sd.label, short: sd.short, kbridge: sd.kbridge}
	var rates, steady, kbCPU, selfCPU, busy, perReq []float64
	var first, ready, longest, stalledFor []time.Duration
	var hwm, stalls []int64
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
		stalls, stalledFor = append(stalls, int64(s.gaps.stalls)), append(stalledFor, s.gaps.stalledFor)
		kbCPU = append(kbCPU, benchkit.Per100k(s.kbridgeCPU, int64(s.records)))
		selfCPU = append(selfCPU, benchkit.Per100k(s.selfCPU, int64(s.records)))
		hwm, busy = append(hwm, s.hwmKiB), append(busy, s.hostBusy)
		perReq = append(perReq, s.perRequest())
		r.maxReady, r.maxGap, r.maxHWMKiB = max(r.maxReady, s.ready), max(r.maxGap, s.gaps.longest), max(r.maxHWMKiB, s.hwmKiB)
	}
	r.rate, r.spread, r.steadyRate = benchkit.Median(rates), benchkit.Spread(rates), benchkit.Median(steady)
	r.first, r.ready, r.longestGap = benchkit.Median(first), benchkit.Median(ready), benchkit.Median(longest)
	r.stalls, r.stalledFor = int(benchkit.Median(stalls)), benchkit.Median(stalledFor)
	r.kbridgeCPU, r.selfCPU = benchkit.Median(kbCPU), benchkit.Median(selfCPU)
	r.hwmKiB, r.hostBusy, r.perRequest = benchkit.Median(hwm), benchkit.Median(busy), benchkit.Median(perReq)
	return r
}

// rows are each side's row, in the order of the sides.
func (rep *report) rows() []row {
	sides := rep.o.sides()
	rows := make([]row, len(sides))
	for i, sd := range sides {
		var ss []sample
		for _, r := range rep.rounds {
			if i < len(r) {
				ss = append(ss, r[i])
			}
		}
		rows[i] = summarize(sd, ss)
	}
	return rows
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

// ratioOf is the median over the rounds of c's ratio.
func (rep *report) ratioOf(c comparison) float64 {
	return rep.medianRatio(func(r round) float64 { return r.ratio(c) })
}

// steadyRatioOf is the median over the rounds of c's ratio after each
// side's first delivery.
func (rep *report) steadyRatioOf(c comparison) float64 {
	return rep.medianRatio(func(r round) float64 { return r.steadyRatio(c) })
}

// ratioName is "num/den" by the sides' short names.
func ratioName(sides []side, c comparison) string {
	return sides[c.num].short + "/" + sides[c.den].short
}

func (rep *report) write(w io.Writer) {
	o := rep.o
	sides, comps := o.sides(), o.comparisons()
	rows := rep.rows()
	batched := slices.ContainsFunc(sides, func(s side) bool { return s.short == "batched" })
	fmt.Fprintf(w, "## kbridge delivery benchmark (-scenario %s)\n\n", o.scenario)
	fmt.Fprintf(w, "- date: %s\n", rep.date.Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %s\n", benchkit.Machine())
	fmt.Fprintf(w, "- broker: %s (its own process); topic %s: %d partitions, replication 1\n", strings.Join(o.Brokers, ","), rep.topic, o.Partitions)
	fmt.Fprintf(w, "- backlog: %d records of %d-byte JSON values, %s, record i in partition i%%%d%s, %s\n",
		o.records, o.ValueSize, rep.keyText(), o.loaded(), rep.emptyText(), rep.backlogText())
	when, settings := kbridgeText(sides)
	fmt.Fprintf(w, "- kbridge (%s%s): started anew %s with one subscription to the webhook and a new group id "+
		"(start at earliest, %s); SIGTERM once every record was acknowledged\n", o.KbridgeBin, o.ExtraFlags(), when, settings)
	fmt.Fprintf(w, "- webhook: Go net/http server in the benchmark; answers 200 %s; counts distinct (Kafka-Partition, Kafka-Offset)%s\n", rep.answerText(), batchText(batched, o.validateBatches))
	if !sides[0].kbridge {
		fmt.Fprintf(w, "- baseline: Go http.Client (keep-alive), one goroutine per partition POSTing its records in order, the same bodies to the same webhook\n")
	}
	var names []string
	for _, c := range comps {
		names = append(names, ratioName(sides, c))
	}
	fmt.Fprintf(w, "- each row: median of %d rounds; a round runs %s; %s: median of the rounds' %s\n\n",
		o.Rounds, sideList(sides), plural("ratio", len(comps)), andList(names))

	ratioHead := "ratio " + ratioName(sides, comparison{1, 0})
	if len(sides) > 2 {
		ratioHead = "ratio to " + sides[0].short
	}
	fmt.Fprintf(w, "| side | records/s | spread | %s | first delivery | records/s after 1st delivery | longest pause of a partition | kbridge ready | kbridge CPU s/100k | bench CPU s/100k | kbridge peak RSS | host CPU busy | duplicates | errors |\n", ratioHead)
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, r := range rows {
		rowRatio := 0.0
		if i > 0 {
			rowRatio = rep.ratioOf(comparison{i, 0})
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f%% | %s | %s | %.0f | %s | %s | %s | %.2f | %s | %.0f%% | %d | %s |\n",
			r.name, r.rate, r.spread*100, ratioText(rowRatio), benchkit.FmtDur(r.first), r.steadyRate, benchkit.FmtDur(r.longestGap), r.kbridgeOnly(benchkit.FmtDur(r.ready)),
			r.kbridgeOnly(fmt.Sprintf("%.2f", r.kbridgeCPU)), r.selfCPU, r.kbridgeOnly(benchkit.FmtKiB(r.hwmKiB)), r.hostBusy*100, r.dups, r.errorsText())
	}
	rep.writeRounds(w, sides, comps)

	fmt.Fprintln(w)
	for _, c := range comps {
		if c.den != 0 {
			fmt.Fprintf(w, "ratio %s of records/s: %s (median of the rounds)\n", ratioName(sides, c), ratioText(rep.ratioOf(c)))
		}
	}
	for _, c := range comps {
		if sides[c.num].kbridge && sides[c.den].kbridge {
			// Both sides pay kbridge's start-up, group join and first fetch,
			// which weigh more on the faster side.
			fmt.Fprintf(w, "ratio %s of records/s after each side's first delivery: %s (median of the rounds)\n", ratioName(sides, c), ratioText(rep.steadyRatioOf(c)))
		}
	}
	peaks := rep.peaks()
	var peakTexts, perReq, stalls []string
	for i, sd := range sides {
		peakTexts = append(peakTexts, fmt.Sprintf("%s %d", sd.short, peaks[i]))
		perReq = append(perReq, fmt.Sprintf("%s %.1f", sd.short, rows[i].perRequest))
		stalls = append(stalls, fmt.Sprintf("%s %d (%s in all)", sd.short, rows[i].stalls, benchkit.FmtDur(rows[i].stalledFor)))
	}
	fmt.Fprintf(w, "most requests in the webhook at once, over the rounds: %s\n", strings.Join(peakTexts, ", "))
	if batched {
		fmt.Fprintf(w, "records per webhook request (mean of a round, median of the rounds): %s\n", strings.Join(perReq, ", "))
	}
	fmt.Fprintf(w, "pauses of a partition of %s or more (median of the rounds): %s\n", stallGap, strings.Join(stalls, ", "))
	fmt.Fprintf(w, "\nTimes count from kbridge's process start (the baseline's first request). spread: (max-min)/median of the rounds' records/s.\n"+
		"kbridge CPU: utime+stime of the kbridge process, start-up included. bench CPU: this process (the webhook, and the baseline's client).\n"+
		"longest pause of a partition: the longest time between two successive acknowledgements of one partition; with one record (or batch) in flight\n"+
		"per partition and a webhook that answers at once, a long one is kbridge waiting for a fetch.\n"+
		"kbridge peak RSS: VmHWM. host CPU busy: all CPUs, broker, kbridge and benchmark together. duplicates: records acknowledged more than once.\n")
	for _, r := range rows {
		if r.firstErr != nil {
			fmt.Fprintf(w, "\nfirst error of %q: %v\n", r.name, r.firstErr)
		}
	}
}

// writeRounds writes the per-round table: each side's records/s, each
// ratio, and the first delivery, longest pause, CPU and peak RSS of each
// kbridge side but the first.
func (rep *report) writeRounds(w io.Writer, sides []side, comps []comparison) {
	head := []string{"round"}
	for _, sd := range sides {
		head = append(head, sd.short+" records/s")
	}
	for _, c := range comps {
		if len(comps) == 1 {
			head = append(head, "ratio")
		} else {
			head = append(head, ratioName(sides, c))
		}
	}
	var detailed []int
	for i, sd := range sides[1:] {
		if sd.kbridge {
			detailed = append(detailed, i+1)
			m := sd.short
			head = append(head, m+" first delivery", m+" longest pause", m+" CPU s/100k", m+" peak RSS")
		}
	}
	fmt.Fprintf(w, "\n| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---:|", len(head)))
	for i, r := range rep.rounds {
		cells := []string{strconv.Itoa(i + 1)}
		for _, s := range r {
			cells = append(cells, rateText(s))
		}
		for _, c := range comps {
			cells = append(cells, ratioText(r.ratio(c)))
		}
		for _, k := range detailed {
			if k < len(r) {
				cells = append(cells, r[k].detail())
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// peaks are the most requests the webhook had at once from each side, over
// the rounds: what kbridge really kept in flight.
func (rep *report) peaks() []int {
	peaks := make([]int, len(rep.o.sides()))
	for _, r := range rep.rounds {
		for i, s := range r {
			if i < len(peaks) {
				peaks[i] = max(peaks[i], s.peak)
			}
		}
	}
	return peaks
}

// metrics are the run's key figures by name, for bench/results.sh: per
// side <short>.<figure>, per comparison ratio.<num>/<den>, and over every
// kbridge start, ready_ms_max.
func (rep *report) metrics() map[string]float64 {
	sides := rep.o.sides()
	m := map[string]float64{"records": float64(rep.o.records), "rounds": float64(len(rep.rounds))}
	var readyMax time.Duration
	for _, r := range rep.rows() {
		p := r.short + "."
		m[p+"records_per_s"], m[p+"spread"] = r.rate, r.spread
		m[p+"records_per_s_after_first"] = r.steadyRate
		m[p+"first_delivery_ms"] = benchkit.Millis(r.first)
		m[p+"longest_pause_ms"], m[p+"longest_pause_ms_max"] = benchkit.Millis(r.longestGap), benchkit.Millis(r.maxGap)
		m[p+"pauses_10ms"] = float64(r.stalls)
		m[p+"bench_cpu_s_per_100k"] = r.selfCPU
		m[p+"records_per_request"] = r.perRequest
		m[p+"errors"], m[p+"failed_rounds"], m[p+"duplicates"] = float64(r.errs), float64(r.failed), float64(r.dups)
		if r.kbridge {
			m[p+"ready_ms"], m[p+"ready_ms_max"] = benchkit.Millis(r.ready), benchkit.Millis(r.maxReady)
			m[p+"cpu_s_per_100k"] = r.kbridgeCPU
			m[p+"peak_rss_mib"], m[p+"peak_rss_mib_max"] = benchkit.MiB(r.hwmKiB), benchkit.MiB(r.maxHWMKiB)
			readyMax = max(readyMax, r.maxReady)
		}
	}
	for _, c := range rep.o.comparisons() {
		m["ratio."+ratioName(sides, c)] = rep.ratioOf(c)
		m["ratio_after_first."+ratioName(sides, c)] = rep.steadyRatioOf(c)
	}
	m["ready_ms_max"] = benchkit.Millis(readyMax)
	return m
}

// sideList names the sides in the header's prose: "the baseline, then
// single, then batched".
func sideList(sides []side) string {
	var names []string
	for _, s := range sides {
		if s.kbridge {
			names = append(names, s.short)
		} else {
			names = append(names, "the baseline")
		}
	}
	return strings.Join(names, ", then ")
}

// andList joins "a", "b" and "c" as "a, b and c".
func andList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

func plural(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func (rep *report) keyText() string {
	if rep.o.keys == 0 {
		return "no key"
	}
	return fmt.Sprintf("key i%%%d (decimal text)", rep.o.keys)
}

// emptyText says which partitions hold no backlog.
func (rep *report) emptyText() string {
	if n := rep.o.Partitions - rep.o.loaded(); n > 0 {
		return fmt.Sprintf(" (the other %d partition(s) empty)", n)
	}
	return ""
}

// kbridgeText says when kbridge starts, and with what settings.
func kbridgeText(sides []side) (when, settings string) {
	var ks []side
	for _, s := range sides {
		if s.kbridge {
			ks = append(ks, s)
		}
	}
	if len(ks) == 1 {
		return "in each round", ks[0].setting
	}
	var parts []string
	for _, s := range ks {
		parts = append(parts, s.short+": "+s.setting)
	}
	return "for each kbridge side of each round", strings.Join(parts, "; ")
}

func batchText(batched, validate bool) string {
	if !batched {
		return ""
	}
	if validate {
		return ", or of a batch request each event's (kafkapartition, kafkaoffset), the body checked with json.Valid too"
	}
	return ", or of a batch request each event's (kafkapartition, kafkaoffset), read by a scanner of the body's top level"
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

// detail is kbridge's first delivery, longest pause, CPU and peak RSS, as
// table cells.
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
