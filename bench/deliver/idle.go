package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

// idleSampleEvery is how often the idle scenario reads kbridge's VmRSS.
const idleSampleEvery = 100 * time.Millisecond

// topicSettle is how long the idle scenario waits after creating its
// topics before it starts kbridge on the first.
const topicSettle = 3 * time.Second

// idleSample is one round of -scenario idle.
type idleSample struct {
	failed      error
	ready       time.Duration // start to /readyz 200
	readyRSSKiB int64         // VmRSS just after ready
	first, all  time.Duration // start to the first probe, and to the last, acknowledged
	rss         []int64       // VmRSS every idleSampleEvery while idle, KiB
	idleCPU     time.Duration // kbridge's CPU time while idle
	idleFor     time.Duration // how long that was
	hwmKiB      int64         // VmHWM at the end: start-up, join and idling
	anonKiB     int64         // RssAnon at the end: heap, stacks, runtime
	fileKiB     int64         // RssFile at the end: the binary's pages in memory
	errs, dups  int64
	firstErr    error
}

func (s idleSample) medianRSS() int64 { return benchkit.Median(s.rss) }

func (s idleSample) maxRSS() int64 {
	if len(s.rss) == 0 {
		return 0
	}
	return slices.Max(s.rss)
}

// cpuPerSecond is kbridge's CPU while idle, in milliseconds per second.
func (s idleSample) cpuPerSecond() float64 {
	if s.idleFor <= 0 {
		return 0
	}
	return benchkit.Millis(s.idleCPU) / s.idleFor.Seconds()
}

// idleReport is what -scenario idle prints.
type idleReport struct {
	o      options
	date   time.Time
	rounds []idleSample
}

// runIdle measures kbridge with nothing to deliver (scenario 8): in each
// round it makes an empty topic of -partitions partitions, starts kbridge
// with one subscription to it (a new group), and once kbridge is ready
// produces one probe record to each partition. When the webhook has every
// probe, kbridge has joined the group and fetched every partition; it is
// then caught up, and its VmRSS is sampled every idleSampleEvery for
// -idle-for, with its CPU time over that span. The topics and groups are
// deleted at the end, unless -keep-topics.
func runIdle(ctx context.Context, o options, progress io.Writer) (rep *idleReport, err error) {
	cl, err := benchkit.NewProducerClient(o.Producer(0, 1000), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	hook, err := startWebhook(0, false)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, hook.close()) }()

	rep = &idleReport{o: o, date: time.Now()}
	var topics, groups []string
	defer func() {
		if !o.KeepTopics && len(topics) > 0 {
			err = errors.Join(err, benchkit.Cleanup(func(ctx context.Context) error {
				return errors.Join(deleteGroups(ctx, adm, groups), benchkit.DeleteTopics(ctx, adm, topics))
			}))
		}
	}()
	// The topics are made up front, and given topicSettle: kbridge
	// started on a topic created just before can leave some of its
	// partitions unfetched for up to 5 s (see bench/README.md, "Idle"),
	// which is not what an idle sidecar sees.
	stamp := rep.date.Format("20060102-150405")
	for i := range o.Rounds {
		topics = append(topics, fmt.Sprintf("kbench-%s-idle-r%d", stamp, i+1))
	}
	if err := benchkit.CreateTopics(ctx, adm, o.Partitions, topics); err != nil {
		topics = nil
		return rep, err
	}
	select {
	case <-time.After(topicSettle):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	for i, topic := range topics {
		group := topic + "-kbridge"
		groups = append(groups, group)
		s := measureIdle(ctx, o, cl, hook, topic, group, progress)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		rep.rounds = append(rep.rounds, s)
		if s.failed != nil {
			fmt.Fprintf(progress, "round %d/%d  idle FAILED: %v\n", i+1, o.Rounds, s.failed)
			continue
		}
		fmt.Fprintf(progress, "round %d/%d  idle  ready %s (RSS %s)  probes delivered %s after start  idle RSS %s (max %s)  VmHWM %s  CPU %.1f ms/s\n",
			i+1, o.Rounds, benchkit.FmtDur(s.ready), benchkit.FmtKiB(s.readyRSSKiB), benchkit.FmtDur(s.all),
			benchkit.FmtKiB(s.medianRSS()), benchkit.FmtKiB(s.maxRSS()), benchkit.FmtKiB(s.hwmKiB), s.cpuPerSecond())
	}
	return rep, nil
}

// measureIdle is one round of runIdle.
func measureIdle(ctx context.Context, o options, cl *kgo.Client, hook *webhook, topic, group string, progress io.Writer) idleSample {
	t := newTally(o.Partitions, o.Partitions, 0) // probe p: partition p, offset 0
	hook.measure(t)
	kb, err := benchkit.StartKbridge(ctx, o.Kbridge(nil, []string{
		"KBRIDGE_SUBSCRIBE_TOPICS=" + topic,
		"KBRIDGE_WEBHOOK_URL=" + hook.url,
		"KBRIDGE_GROUP_ID=" + group,
	}))
	if err != nil {
		return idleSample{failed: err}
	}
	s := idleSample{ready: kb.ReadyAfter}
	s.failed = s.watch(ctx, o, kb, cl, t, topic)
	if err := kb.StopReporting(s.failed != nil, progress); err != nil {
		s.failed = errors.Join(s.failed, err)
	}
	c := t.snapshot()
	s.errs, s.dups, s.firstErr = c.errs, c.dups, c.firstErr
	if !c.first.IsZero() {
		s.first = c.first.Sub(kb.Started)
	}
	if !c.last.IsZero() {
		s.all = c.last.Sub(kb.Started)
	}
	return s
}

// watch produces the probes, waits for them, then samples kbridge while
// idle.
func (s *idleSample) watch(ctx context.Context, o options, kb *benchkit.Kbridge, cl *kgo.Client, t *tally, topic string) error {
	var err error
	if s.readyRSSKiB, err = benchkit.StatusKiB(kb.PID(), "VmRSS"); err != nil {
		return err
	}
	for p := range o.Partitions {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte(`{"event":"probe"}`)}, func(_ *kgo.Record, perr error) {
			if perr != nil {
				t.fail(fmt.Errorf("produce a probe: %w", perr))
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce the probes: %w", err)
	}
	timer := time.NewTimer(o.timeout)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-kb.Exited():
		return fmt.Errorf("kbridge exited: %w", kb.ExitErr())
	case <-timer.C:
		return fmt.Errorf("%d of %d probes acknowledged after %s", t.snapshot().distinct, o.Partitions, o.timeout)
	case <-ctx.Done():
		return ctx.Err()
	}

	cpu0, err := kb.CPU()
	if err != nil {
		return err
	}
	start := time.Now()
	tick := time.NewTicker(idleSampleEvery)
	defer tick.Stop()
	for end := start.Add(o.idleFor); ; {
		kib, err := benchkit.StatusKiB(kb.PID(), "VmRSS")
		if err != nil {
			return err
		}
		s.rss = append(s.rss, kib)
		if !time.Now().Before(end) {
			break
		}
		select {
		case <-tick.C:
		case <-kb.Exited():
			return fmt.Errorf("kbridge exited: %w", kb.ExitErr())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cpu1, err := kb.CPU()
	if err != nil {
		return err
	}
	s.idleCPU, s.idleFor = cpu1-cpu0, time.Since(start)
	if s.anonKiB, err = benchkit.StatusKiB(kb.PID(), "RssAnon"); err != nil {
		return err
	}
	if s.fileKiB, err = benchkit.StatusKiB(kb.PID(), "RssFile"); err != nil {
		return err
	}
	s.hwmKiB, err = kb.PeakRSSKiB()
	return err
}

// idleRow is the medians over the rounds that did not fail.
type idleRow struct {
	ready, first, all                 time.Duration
	maxReady                          time.Duration
	readyRSS, rss, rssMax, hwm, hwmHi int64
	anon, file                        int64
	cpuPerSecond                      float64
	failed                            int
	errs, dups                        int64
	firstErr                          error
}

func (rep *idleReport) summary() idleRow {
	var r idleRow
	var ready, first, all []time.Duration
	var readyRSS, rss, rssMax, hwm, anon, file []int64
	var cpu []float64
	for _, s := range rep.rounds {
		r.errs += s.errs
		r.dups += s.dups
		r.firstErr = cmp.Or(r.firstErr, s.failed, s.firstErr)
		if s.failed != nil {
			r.failed++
			continue
		}
		ready, first, all = append(ready, s.ready), append(first, s.first), append(all, s.all)
		readyRSS, rss, rssMax, hwm = append(readyRSS, s.readyRSSKiB), append(rss, s.medianRSS()), append(rssMax, s.maxRSS()), append(hwm, s.hwmKiB)
		cpu, anon, file = append(cpu, s.cpuPerSecond()), append(anon, s.anonKiB), append(file, s.fileKiB)
		r.maxReady, r.hwmHi = max(r.maxReady, s.ready), max(r.hwmHi, s.hwmKiB)
	}
	r.ready, r.first, r.all = benchkit.Median(ready), benchkit.Median(first), benchkit.Median(all)
	r.readyRSS, r.rss, r.rssMax, r.hwm = benchkit.Median(readyRSS), benchkit.Median(rss), benchkit.Median(rssMax), benchkit.Median(hwm)
	r.cpuPerSecond, r.anon, r.file = benchkit.Median(cpu), benchkit.Median(anon), benchkit.Median(file)
	return r
}

func (rep *idleReport) failed() error {
	n := 0
	for _, s := range rep.rounds {
		if s.failed != nil || s.errs > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d idle round(s) failed or had errors, or kbridge did not exit cleanly (see the table)", n)
}

func (rep *idleReport) write(w io.Writer) {
	o := rep.o
	r := rep.summary()
	fmt.Fprintf(w, "## kbridge idle benchmark (-scenario idle)\n\n")
	fmt.Fprintf(w, "- date: %s\n", rep.date.Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %s\n", benchkit.Machine())
	fmt.Fprintf(w, "- broker: %s (its own process); a new empty topic each round: %d partitions, replication 1\n", strings.Join(o.Brokers, ","), o.Partitions)
	fmt.Fprintf(w, "- kbridge (%s%s): started anew in each round with one subscription to the topic and the webhook and a new group id "+
		"(defaults: start at earliest, ordering partition); SIGTERM at the end of the round\n", o.KbridgeBin, o.ExtraFlags())
	fmt.Fprintf(w, "- once kbridge is ready, one probe record is produced to each partition; once the webhook has every probe "+
		"(group joined, every partition fetched, nothing left), kbridge's VmRSS is read every %s for %s\n", idleSampleEvery, o.idleFor)
	fmt.Fprintf(w, "- each row but the first: one round; the first: the median of the rounds that did not fail\n\n")
	fmt.Fprintln(w, "| round | kbridge ready | RSS at ready | first probe delivered | every probe delivered | idle RSS (median) | idle RSS (max) | of which anon / file | peak RSS (VmHWM) | kbridge CPU while idle | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	errs := fmt.Sprint(r.errs)
	if r.failed > 0 {
		errs = fmt.Sprintf("%d, and %d round(s) FAILED", r.errs, r.failed)
	}
	fmt.Fprintf(w, "| median | %s | %s | %s | %s | %s | %s | %s | %s | %.1f ms/s | %s |\n", benchkit.FmtDur(r.ready), benchkit.FmtKiB(r.readyRSS),
		benchkit.FmtDur(r.first), benchkit.FmtDur(r.all), benchkit.FmtKiB(r.rss), benchkit.FmtKiB(r.rssMax), anonFile(r.anon, r.file), benchkit.FmtKiB(r.hwm), r.cpuPerSecond, errs)
	for i, s := range rep.rounds {
		if s.failed != nil {
			fmt.Fprintf(w, "| %d | FAILED | — | — | — | — | — | — | — | — | %d |\n", i+1, s.errs)
			continue
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %.1f ms/s | %d |\n", i+1, benchkit.FmtDur(s.ready), benchkit.FmtKiB(s.readyRSSKiB),
			benchkit.FmtDur(s.first), benchkit.FmtDur(s.all), benchkit.FmtKiB(s.medianRSS()), benchkit.FmtKiB(s.maxRSS()), anonFile(s.anonKiB, s.fileKiB),
			benchkit.FmtKiB(s.hwmKiB), s.cpuPerSecond(), s.errs)
	}
	fmt.Fprintf(w, "\nTimes count from kbridge's process start. idle RSS: VmRSS once every probe was delivered, median and largest of the samples;\n"+
		"anon / file: RssAnon (heap, stacks, runtime) and RssFile (the binary's pages in memory) at the end of the idle span.\n"+
		"peak RSS: VmHWM at the end of the idle span (start-up and group join included). kbridge CPU while idle: utime+stime over the\n"+
		"idle span, in 10 ms ticks, per second.\n")
	if r.firstErr != nil {
		fmt.Fprintf(w, "\nfirst error: %v\n", r.firstErr)
	}
}

func anonFile(anon, file int64) string {
	return fmt.Sprintf("%.1f / %.1f MiB", benchkit.MiB(anon), benchkit.MiB(file))
}

// metrics are the idle scenario's key figures, for bench/results.sh.
func (rep *idleReport) metrics() map[string]float64 {
	r := rep.summary()
	return map[string]float64{
		"rounds":                  float64(len(rep.rounds)),
		"idle.ready_ms":           benchkit.Millis(r.ready),
		"idle.ready_ms_max":       benchkit.Millis(r.maxReady),
		"idle.ready_rss_mib":      benchkit.MiB(r.readyRSS),
		"idle.first_delivery_ms":  benchkit.Millis(r.first),
		"idle.all_delivered_ms":   benchkit.Millis(r.all),
		"idle.rss_mib":            benchkit.MiB(r.rss),
		"idle.rss_mib_max":        benchkit.MiB(r.rssMax),
		"idle.rss_anon_mib":       benchkit.MiB(r.anon),
		"idle.rss_file_mib":       benchkit.MiB(r.file),
		"idle.peak_rss_mib":       benchkit.MiB(r.hwm),
		"idle.peak_rss_mib_max":   benchkit.MiB(r.hwmHi),
		"idle.cpu_ms_per_s":       r.cpuPerSecond,
		"idle.errors":             float64(r.errs),
		"idle.failed_rounds":      float64(r.failed),
		"ready_ms_max":            benchkit.Millis(r.maxReady),
		"idle.idle_for_s":         rep.o.idleFor.Seconds(),
		"idle.partitions":         float64(rep.o.Partitions),
		"idle.sample_interval_ms": benchkit.Millis(idleSampleEvery),
	}
}
