package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// kafka is the run's broker: kfake in this process, the real broker named
// by KAFKA_BROKERS, or the real broker on KBRIDGE_CHAOS_KAFKA_PORT, which
// the run may also stop and start again (proc is then set).
type kafka struct {
	cluster *bridgetest.Cluster
	adm     *kadm.Client
	proc    *brokerProcess
}

func setupKafka(t *testing.T) *kafka {
	k := &kafka{}
	if port := os.Getenv(envKafkaPort); port != "" {
		brokers := startScriptBroker(t, port)
		if env := os.Getenv(bridgetest.BrokersEnv); env != "" && env != brokers {
			t.Fatalf("%s=%s but %s=%s names %s", bridgetest.BrokersEnv, env, envKafkaPort, port, brokers)
		}
		t.Setenv(bridgetest.BrokersEnv, brokers)
		k.proc = &brokerProcess{workDir: brokerWorkDir(port)}
	}
	k.cluster = bridgetest.NewCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.cluster.Brokers...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	k.adm = kadm.NewClient(cl)
	return k
}

func (k *kafka) String() string {
	switch {
	case k.cluster.Fake != nil:
		return "kfake (in process)"
	case k.proc != nil:
		return "Apache Kafka at " + strings.Join(k.cluster.Brokers, ",") + " (restartable, work dir " + k.proc.workDir + ")"
	}
	return "Apache Kafka at " + strings.Join(k.cluster.Brokers, ",")
}

// startScriptBroker runs test/kafka/start.sh for port, which starts the
// broker or confirms that it runs, and returns its bootstrap address.
func startScriptBroker(t *testing.T, port string) string {
	cmd := exec.Command("test/kafka/start.sh")
	cmd.Dir = "../.." // the module root
	cmd.Env = append(os.Environ(), "KAFKA_PORT="+port)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("test/kafka/start.sh (KAFKA_PORT=%s): %v\n%s", port, err, stderr.String())
	}
	brokers, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "KAFKA_BROKERS=")
	if !ok {
		t.Fatalf("test/kafka/start.sh printed %q", out)
	}
	return brokers
}

// brokerWorkDir is where test/kafka/lib.sh keeps the broker of port.
func brokerWorkDir(port string) string {
	if dir := os.Getenv("KAFKA_WORK_DIR"); dir != "" {
		return dir
	}
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, "kbridge-kafka-"+port)
}

// brokerProcess stops and starts the JVM of a test/kafka/start.sh broker
// while keeping its data. start.sh itself cannot restart it: it wipes a
// work dir without a live broker. So the first stop records the JVM's
// command line, environment and directory from /proc, and start runs the
// same command again, writing its pid where stop.sh looks for it.
type brokerProcess struct {
	workDir string
	argv    []string
	env     []string
	dir     string
	reaped  chan struct{} // of the JVM this test started, nil before
}

func (b *brokerProcess) pid() (int, error) {
	raw, err := os.ReadFile(filepath.Join(b.workDir, "kafka.pid"))
	if err != nil {
		return 0, fmt.Errorf("broker pid: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(raw)))
}

// stop sends SIGTERM (a clean broker shutdown) and waits until the JVM is
// gone, killing it after a minute.
func (b *brokerProcess) stop() error {
	pid, err := b.pid()
	if err != nil {
		return err
	}
	if b.argv == nil {
		if err := b.capture(pid); err != nil {
			return err
		}
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop broker %d: %w", pid, err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if b.gone(pid) {
				return nil
			}
			poll := time.NewTimer(100 * time.Millisecond)
			<-poll.C
		}
		if sig == syscall.SIGTERM {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return fmt.Errorf("broker %d survived SIGKILL", pid)
}

// gone reports whether the JVM has exited (and, if it is this test's
// child, was reaped).
func (b *brokerProcess) gone(pid int) bool {
	if b.reaped != nil {
		select {
		case <-b.reaped:
			return true
		default:
			return false
		}
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func (b *brokerProcess) capture(pid int) error {
	proc := fmt.Sprintf("/proc/%d/", pid)
	cmdline, err1 := os.ReadFile(proc + "cmdline")
	environ, err2 := os.ReadFile(proc + "environ")
	dir, err3 := os.Readlink(proc + "cwd")
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("read the broker's command line: %w", err)
	}
	b.argv = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	b.env = strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")
	b.dir = dir
	if !strings.Contains(string(cmdline), "kafka.Kafka") {
		return fmt.Errorf("pid %d is not a Kafka broker: %q", pid, b.argv)
	}
	return nil
}

// start runs the broker again on the same data, in a session of its own
// so that it outlives the test like one start.sh started; stop.sh stops it.
func (b *brokerProcess) start() error {
	logFile, err := os.OpenFile(filepath.Join(b.workDir, "broker.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("broker log: %w", err)
	}
	defer logFile.Close() // the JVM has its own descriptor
	cmd := exec.Command(b.argv[0], b.argv[1:]...)
	cmd.Dir, cmd.Env = b.dir, b.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	reaped := make(chan struct{})
	go func() { // ends when the broker does, or with the test binary
		_ = cmd.Wait()
		close(reaped)
	}()
	b.reaped = reaped
	return os.WriteFile(filepath.Join(b.workDir, "kafka.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
}

// waitServing polls until the broker answers metadata with a leader for
// every partition of the topics, or the deadline passes.
func (k *kafka) waitServing(ctx context.Context, timeout time.Duration, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		details, err := k.adm.ListTopics(ctx, topics...)
		if err == nil && details.Error() == nil && len(details) == len(topics) {
			leaders := true
			details.EachPartition(func(p kadm.PartitionDetail) { leaders = leaders && p.Err == nil && p.Leader >= 0 })
			if leaders {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker not serving %v after %v (last error: %v)", topics, timeout, err)
		case <-tick.C:
		}
	}
}

// committed reads the group's committed offsets of topic.
func (k *kafka) committed(ctx context.Context, group, topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := k.adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// endOffsets reads the end offset of each partition of topic.
func (k *kafka) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	listed, err := k.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := listed.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}
