package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

// backlogLinger is longer than producing the backlog takes.
const backlogLinger = time.Minute

// run creates the topic and fills it with the backlog, starts the webhook,
// and measures each side of the scenario (options.sides) in each round. It
// deletes the topic and the rounds' consumer groups at the end, unless
// -keep-topics.
func run(ctx context.Context, o options, progress io.Writer) (rep *report, err error) {
	values := benchkit.NewValuePool(o.ValueSize)
	// Record i goes to partition i%loaded, explicitly: every partition of
	// the backlog holds the same share, and the webhook knows where each
	// record is.
	// Batches are cut only when full (-batch-bytes), never by time (the
	// linger outlasts producing, Flush sends the last ones) nor by a full
	// buffer (it holds the whole backlog): the backlog lies in the log the
	// same way in every run. Left to the producer's pace it did not, and
	// kbridge's speed depends on it (bench/README.md, "Delivery").
	cl, err := benchkit.NewProducerClient(o.Producer(backlogLinger, o.records),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(int32(o.batchBytes)))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic, produced, cleanup, err := backlog(ctx, cl, adm, o, values, progress)
	if err != nil {
		return nil, err
	}
	var groups []string
	defer func() {
		if !o.KeepTopics {
			err = errors.Join(err, benchkit.Cleanup(func(ctx context.Context) error {
				return errors.Join(deleteGroups(ctx, adm, groups), cleanup(ctx))
			}))
		}
	}()

	hook, err := startWebhook(o.webhookDelay, o.validateBatches)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, hook.close()) }()
	base := newBaseline(o, hook.url, values)
	defer base.close()

	rep = &report{o: o, date: time.Now(), topic: topic, produced: produced}
	sides := o.sides()
	for i := range o.Rounds {
		r := make(round, len(sides))
		for k, sd := range sides {
			if sd.kbridge {
				group := fmt.Sprintf("kbench-%s-deliver-r%d-%s", rep.date.Format("20060102-150405"), i+1, sd.short)
				groups = append(groups, group)
				r[k] = measureKbridge(ctx, o, hook, topic, group, sd.env, progress)
			} else {
				r[k] = base.measure(ctx, o, hook)
			}
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			progressLine(progress, i, o.Rounds, sd.short, r[k])
		}
		rep.rounds = append(rep.rounds, r)
	}
	return rep, nil
}

func progressLine(w io.Writer, i, rounds int, side string, s sample) {
	if s.failed != nil {
		fmt.Fprintf(w, "round %d/%d  %-9s FAILED: %v\n", i+1, rounds, side, s.failed)
		return
	}
	fmt.Fprintf(w, "round %d/%d  %-9s %8.0f records/s  first delivery %-9s all in %-9s longest gap %s\n  %s  at most %d requests in the webhook at once, %.1f records each  duplicates %d  errors %d\n",
		i+1, rounds, side, s.rate(), benchkit.FmtDur(s.first), benchkit.FmtDur(s.elapsed), s.gapText(), cpuText(s), s.peak, s.perRequest(), s.dups, s.errs)
}

func cpuText(s sample) string {
	if !s.kbridge {
		return fmt.Sprintf("CPU bench %.2fs", s.selfCPU.Seconds())
	}
	return fmt.Sprintf("CPU kbridge %.2fs, bench %.2fs; peak RSS %s; ready %s",
		s.kbridgeCPU.Seconds(), s.selfCPU.Seconds(), benchkit.FmtKiB(s.hwmKiB), benchkit.FmtDur(s.ready))
}

// backlog makes the topic and produces the backlog, or with -topic checks
// the one given. cleanup deletes what it made.
func backlog(ctx context.Context, cl *kgo.Client, adm *kadm.Client, o options, values *benchkit.ValuePool, progress io.Writer) (
	topic string, produced time.Duration, cleanup func(context.Context) error, err error,
) {
	if o.topic != "" {
		fmt.Fprintf(progress, "backlog: the existing topic %s\n", o.topic)
		return o.topic, 0, func(context.Context) error { return nil }, checkBacklog(ctx, adm, o.topic, o)
	}
	topic = "kbench-" + time.Now().Format("20060102-150405") + "-deliver"
	if err := benchkit.CreateTopics(ctx, adm, o.Partitions, []string{topic}); err != nil {
		return "", 0, nil, err
	}
	cleanup = func(ctx context.Context) error { return benchkit.DeleteTopics(ctx, adm, []string{topic}) }
	produced, err = produceBacklog(ctx, cl, adm, topic, o, values)
	if err != nil {
		return "", 0, nil, errors.Join(err, benchkit.Cleanup(cleanup))
	}
	fmt.Fprintf(progress, "backlog: %d records of %d bytes (%d keys) over %d of the %d partitions of %s, produced in %s\n",
		o.records, o.ValueSize, o.keys, o.loaded(), o.Partitions, topic, produced.Round(time.Millisecond))
	return topic, produced, cleanup, nil
}

// produceBacklog produces o.records records to topic, record i to
// partition i%loaded (see options.loaded) with the pool's i-th value and
// key i%keys (none without -keys), and checks that each
// partition ends where the webhook's tally expects. It returns how long
// producing took.
func produceBacklog(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, o options, values *benchkit.ValuePool) (time.Duration, error) {
	start := time.Now()
	var mu sync.Mutex
	var failed int
	var firstErr error
	for i := range o.records {
		r := &kgo.Record{Topic: topic, Partition: int32(i % o.loaded()), Key: o.key(i), Value: values.Value(uint64(i))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				failed++
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("backlog: flush: %w", err)
	}
	elapsed := time.Since(start)
	if failed > 0 {
		return 0, fmt.Errorf("backlog: %d records failed: %w", failed, firstErr)
	}
	return elapsed, checkBacklog(ctx, adm, topic, o)
}

// checkBacklog checks that each partition of topic ends where a backlog of
// o.records spread round-robin over the first o.loaded() partitions does,
// the others empty, as the webhook's tally expects.
func checkBacklog(ctx context.Context, adm *kadm.Client, topic string, o options) error {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("backlog: end offsets: %w", err)
	}
	if n := len(ends[topic]); n != o.Partitions {
		return fmt.Errorf("backlog: %s has %d partitions, want %d", topic, n, o.Partitions)
	}
	for p := range o.Partitions {
		var want int64
		if n := o.loaded(); p < n {
			want = int64(o.records / n)
			if p < o.records%n {
				want++
			}
		}
		if end, ok := ends.Lookup(topic, int32(p)); !ok || end.Offset != want {
			return fmt.Errorf("backlog: partition %d of %s ends at %d, want %d: the topic must hold only the backlog", p, topic, end.Offset, want)
		}
	}
	return nil
}

func deleteGroups(ctx context.Context, adm *kadm.Client, groups []string) error {
	resp, err := adm.DeleteGroups(ctx, groups...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("delete consumer groups: %w", err)
	}
	return nil
}

// measureKbridge starts kbridge with one subscription of a new group to
// the webhook, with env's settings besides, and waits until the webhook has acknowledged every record of
// the backlog, then reads kbridge's CPU time and VmHWM and stops it. Times
// count from just before the process started. A failure (kbridge did not
// start, exited, timed out, or did not exit 0 after SIGTERM) comes back as
// a failed sample; the log is kept then.
func measureKbridge(ctx context.Context, o options, hook *webhook, topic, group string, env []string, progress io.Writer) sample {
	t := newTally(o.loaded(), o.records, o.keys)
	hook.measure(t)
	cpu0, err := benchkit.CPUTimes(0)
	if err != nil {
		return sample{failed: err}
	}
	kb, err := benchkit.StartKbridge(ctx, o.Kbridge(nil, append([]string{
		"KBRIDGE_SUBSCRIBE_TOPICS=" + topic,
		"KBRIDGE_WEBHOOK_URL=" + hook.url,
		"KBRIDGE_GROUP_ID=" + group,
	}, env...)))
	if err != nil {
		return sample{failed: err}
	}
	s := sample{kbridge: true, ready: kb.ReadyAfter}
	timer := time.NewTimer(o.timeout)
	defer timer.Stop()
	select {
	case <-t.done:
		s.failed = s.readKbridge(kb, cpu0)
	case <-kb.Exited():
		s.failed = fmt.Errorf("kbridge exited: %w", kb.ExitErr())
	case <-timer.C:
		s.failed = fmt.Errorf("%d of %d records acknowledged after %s", t.snapshot().distinct, o.records, o.timeout)
	case <-ctx.Done():
		s.failed = ctx.Err()
	}
	if err := kb.StopReporting(s.failed != nil, progress); err != nil {
		s.failed = errors.Join(s.failed, err)
	}
	// Read after the stop: late duplicates count too.
	s.tallied(t, kb.Started)
	return s
}

// readKbridge reads kbridge's CPU time (all of it: the process is new) and
// VmHWM, and this process's and the host's CPU since cpu0.
func (s *sample) readKbridge(kb *benchkit.Kbridge, cpu0 benchkit.CPUSnapshot) error {
	cpu1, err := benchkit.CPUTimes(kb.PID())
	if err != nil {
		return err
	}
	if s.hwmKiB, err = kb.PeakRSSKiB(); err != nil {
		return err
	}
	s.kbridgeCPU, s.selfCPU, s.hostBusy = cpu1.Kbridge, cpu1.Self-cpu0.Self, cpu1.HostBusySince(cpu0)
	return nil
}
