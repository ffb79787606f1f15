package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChaos is the reliability run; KBRIDGE_CHAOS picks short, long or
// soak (see settings_test.go and RELIABILITY.md).
func TestChaos(t *testing.T) {
	if os.Getenv(envMode) == "" {
		t.Skipf("set %s=short, long or soak to run the reliability suite", envMode)
	}
	k := setupKafka(t)
	s, err := loadSettings(os.LookupEnv, k.proc != nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newRun(t, s, k)
	r.report("kbridge chaos run: %v\nbroker: %v\nlogs: %s\n", s, k, r.logDir)
	if s.mode == "soak" {
		r.soak()
		return
	}
	r.chaos()
}

// run is one reliability run: the broker and topics, the ledger, the
// webhook, the readers, the checker and the kbridge instances.
type run struct {
	t      *testing.T
	s      settings
	kafka  *kafka
	topic  string
	dlq    string
	group  string
	logDir string
	began  time.Time

	ledger    *ledger
	hook      *webhook
	fleet     *fleet
	logReader *reader
	dlqReader *reader
	dlqs      *dlqRecords
	readers   problemLog // records the readers could not make sense of
	checker   *checker

	// work is cancelled when the checker finds a violation: publishing and
	// disturbing stop at once.
	work     context.Context
	stopWork context.CancelFunc
	failMu   sync.Mutex
	failures []string
}

func newRun(t *testing.T, s settings, k *kafka) *run {
	r := &run{t: t, s: s, kafka: k, began: time.Now(), dlqs: &dlqRecords{}}
	var err error
	if r.logDir, err = os.MkdirTemp("", "kbridge-chaos-*"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(envKeepLogs) != "" {
			t.Logf("kbridge logs kept in %s", r.logDir)
			return
		}
		_ = os.RemoveAll(r.logDir)
	})
	r.topic, r.dlq = k.cluster.Topic(t, s.partitions), k.cluster.Topic(t, 3)
	// kbridge refuses to start if its DLQ topic is missing, and a real
	// broker may serve a new topic's metadata a moment after creating it.
	if err := k.waitServing(context.Background(), 30*time.Second, r.topic, r.dlq); err != nil {
		t.Fatal(err)
	}
	r.group = "chaos-" + r.topic
	r.ledger = newLedger(s.partitions)
	r.hook = newWebhook(r.topic, r.group, r.ledger, s)
	t.Cleanup(r.hook.Close)

	ctx, cancel := context.WithCancel(context.Background())
	r.work, r.stopWork = context.WithCancel(ctx)
	r.startReaders(ctx)
	t.Cleanup(func() { // after the fleet is gone (cleanups run last first)
		cancel()
		for _, rd := range []*reader{r.logReader, r.dlqReader} {
			if rd != nil {
				rd.close()
			}
		}
	})
	r.checker = &checker{kafka: k, group: r.group, topic: r.topic, dlq: r.dlq, ledger: r.ledger,
		dlqReader: r.dlqReader, failRun: r.fail, last: map[int32]int64{}}

	bin := buildKbridge(t, r.logDir)
	config, err := writeConfig(r.logDir, k.cluster.Brokers, r.topic, r.dlq, r.group, r.hook.URL, s.batch)
	if err != nil {
		t.Fatal(err)
	}
	r.fleet = &fleet{bin: bin, config: config, logDir: r.logDir, unexpected: r.fail}
	t.Cleanup(r.fleet.killAll)
	for range s.instances {
		if _, err := r.fleet.start(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *run) startReaders(ctx context.Context) {
	var err error
	r.logReader, err = startReader(ctx, r.kafka.cluster.Brokers, r.topic, logRecord(r.ledger, &r.readers))
	if err != nil {
		r.t.Fatal(err)
	}
	r.dlqReader, err = startReader(ctx, r.kafka.cluster.Brokers, r.dlq, r.dlqs.handle(r.ledger, &r.readers))
	if err != nil {
		r.t.Fatal(err)
	}
}

// fail records a violation and stops the run's work; it is safe from any
// goroutine. The test reports the failures once the work has stopped.
func (r *run) fail(msg string) {
	r.failMu.Lock()
	r.failures = append(r.failures, msg)
	r.failMu.Unlock()
	r.stopWork()
}

// failed reports the violations recorded so far; true if there were any.
func (r *run) failed() bool {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	for _, f := range r.failures {
		r.t.Error(f)
	}
	return len(r.failures) > 0
}

// startChecker runs the checker until the returned stop, which waits for
// it and may be called more than once.
func (r *run) startChecker() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.checker.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// chaos publishes the records while the disturbances happen, then lets
// the group drain, stops it gracefully and checks everything.
func (r *run) chaos() {
	stopChecker := r.startChecker()
	defer stopChecker()

	deadline := 3*r.s.publishWindow() + 5*time.Minute
	work, cancel := context.WithTimeout(r.work, deadline)
	defer cancel()
	pub := newPublisher(r.topic, r.fleet, r.s, r.began, r.t.Logf)
	dist := &disturber{s: r.s, rng: rand.New(rand.NewPCG(r.s.seed, 3)), fleet: r.fleet, kafka: r.kafka, ledger: r.ledger,
		group: r.group, topic: r.topic, began: r.began, logf: r.t.Logf}
	var distErr error
	var wg sync.WaitGroup
	wg.Go(func() { pub.run(work, r.s.records, r.s.rate) })
	wg.Go(func() { distErr = dist.run(work) })
	wg.Wait()
	r.t.Logf("%6.1fs publishing and disturbances done: %d records acknowledged", time.Since(r.began).Seconds(), len(pub.acknowledged()))
	if r.failed() {
		return
	}
	if distErr != nil {
		r.t.Fatalf("disturbance: %v", distErr)
	}
	if len(pub.acknowledged()) < r.s.records {
		r.t.Fatalf("only %d of %d records were acknowledged within %v; failed calls: %v", len(pub.acknowledged()), r.s.records, deadline, pub.errors)
	}
	end := r.drain()
	shutdownErrs := r.fleet.stopAll(shutdownTimeout + time.Second)
	stopChecker()
	r.checker.sample(context.Background()) // the last word, after the group stopped
	if r.failed() {
		return
	}
	committed, err := r.kafka.committed(context.Background(), r.group, r.topic)
	if err != nil {
		r.t.Fatalf("committed offsets after the stop: %v", err)
	}
	sum := r.verify(pub, end, committed)
	sum.tally = dist.tally
	for _, err := range shutdownErrs {
		if err != nil {
			sum.tally.shutdownFailures = append(sum.tally.shutdownFailures, "final stop: "+err.Error())
		}
	}
	r.report("%s", sum.format())
	sum.assert(r.t)
}

// drainTimeout bounds waiting for the group to deliver and commit all.
const drainTimeout = 5 * time.Minute

// drain waits until the group's committed offsets reach the log end of
// every partition and the readers have read everything, and returns the
// end offsets.
func (r *run) drain() map[int32]int64 {
	deadline := time.Now().Add(drainTimeout)
	var committed, end, dlqEnd map[int32]int64
	for {
		var err error
		committed, err = r.kafka.committed(r.work, r.group, r.topic)
		if err == nil {
			end, err = r.kafka.endOffsets(r.work, r.topic)
		}
		if err == nil {
			dlqEnd, err = r.kafka.endOffsets(r.work, r.dlq)
		}
		if err == nil && equalOffsets(committed, end) && r.logReader.reached(end) && r.dlqReader.reached(dlqEnd) {
			r.t.Logf("%6.1fs drained: committed offsets = log end offsets %v", time.Since(r.began).Seconds(), end)
			return end
		}
		if time.Now().After(deadline) || r.work.Err() != nil {
			r.failed()
			r.t.Fatalf("not drained within %v: committed %v, log end %v (error %v)", drainTimeout, committed, end, err)
		}
		poll := time.NewTimer(200 * time.Millisecond)
		<-poll.C
	}
}

// equalOffsets reports whether every partition of end has exactly its end
// offset committed (a partition never written may have no commit).
func equalOffsets(committed, end map[int32]int64) bool {
	for p, e := range end {
		if c, ok := committed[p]; c != e && (ok || e != 0) {
			return false
		}
	}
	return true
}

// report logs and, with -v, also prints to stdout.
func (r *run) report(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.t.Log(msg)
	if testing.Verbose() {
		fmt.Print(msg)
	}
}

// buildKbridge builds the binary once per run, or uses KBRIDGE_CHAOS_BIN.
func buildKbridge(t *testing.T, dir string) string {
	if bin := os.Getenv(envBinary); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "kbridge")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kbridge")
	cmd.Dir = "../.." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeConfig writes the YAML file every instance runs with; batch > 0
// turns batch delivery on with that max_records.
func writeConfig(dir string, brokers []string, topic, dlq, group, webhook string, batch int) (string, error) {
	yaml := fmt.Sprintf(`brokers: [%s]
session_timeout: %v
rebalance_timeout: %v
commit_interval: %v
shutdown_timeout: %v
publish_timeout: %v
subscriptions:
  - name: chaos
    topics: [%s]
    webhook_url: %s
    group_id: %s
    dead_letter_topic: %s
    attempt_timeout: %v
    retry:
      initial_backoff: 50ms
      max_backoff: 1s
      max_attempts: 10
`, strings.Join(brokers, ", "), sessionTimeout, rebalanceTimeout, commitInterval, shutdownTimeout, publishTimeout,
		topic, webhook, group, dlq, attemptTimeout)
	if batch > 0 {
		yaml += fmt.Sprintf(`    batch:
      max_records: %d
      max_wait: %v
`, batch, batchMaxWait)
	}
	path := filepath.Join(dir, "kbridge.yaml")
	return path, os.WriteFile(path, []byte(yaml), 0o644)
}
