package app_test

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbridge/kbridge/bridge/bridgetest"
)

// buildKbridge builds the real binary into a directory of the test.
func buildKbridge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kbridge")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kbridge")
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is the kbridge binary running as a child process.
type process struct {
	cmd   *exec.Cmd
	logs  *syncBuffer
	admin string
	exit  chan error // Wait's result, once
}

var listeningLine = regexp.MustCompile(`msg=listening grpc=(\S+) http=(\S+) admin=(\S+)`)

// startProcess runs bin with env as its whole environment on 127.0.0.1:0
// ports and waits until it is ready. The process is killed at the end of
// the test if it still runs.
func startProcess(t *testing.T, bin string, env map[string]string) *process {
	t.Helper()
	p := &process{logs: &syncBuffer{}, exit: make(chan error, 1)}
	p.cmd = exec.Command(bin, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0")
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	listening := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = io.WriteString(p.logs, line+"\n")
			if m := listeningLine.FindStringSubmatch(line); m != nil {
				select {
				case listening <- m[3]:
				default:
				}
			}
		}
	}()
	go func() {
		<-copied // Wait closes the pipe: read it all first
		p.exit <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		p.wait(t)
		if t.Failed() {
			t.Logf("kbridge (pid %d) logs:\n%s", p.cmd.Process.Pid, p.logs)
		}
	})
	select {
	case p.admin = <-listening:
	case err := <-p.exit:
		p.exit <- err
		t.Fatalf("kbridge exited before listening: %v\n%s", err, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("kbridge did not log its addresses within 30s:\n%s", p.logs)
	}
	eventually(t, 30*time.Second, "kbridge to be ready", func() bool {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// wait waits for the process to exit and returns its exit error.
func (p *process) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exit:
		p.exit <- err // later calls see the same
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("kbridge (pid %d) did not exit within 60s", p.cmd.Process.Pid)
		return nil
	}
}

// TestKillAndRestart: the real binary is SIGKILLed in the middle of a
// backlog and started again in the same group. Nothing is lost: every
// record is acknowledged at least once; the records delivered again are
// only those after the committed offset, and carry the Idempotency-Key of
// their first delivery; the group's offsets finally reach the end.
//
// kfake runs in the test process, so it survives the kill.
func TestKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the kbridge binary")
	}
	const partitions, records = 3, 2000
	bin := buildKbridge(t)
	cluster := bridgetest.NewCluster(t)
	topic := cluster.Topic(t, partitions)
	recs := make([]*kgo.Record, records)
	for i := range recs {
		recs[i] = &kgo.Record{Partition: int32(i % partitions), Key: []byte(strconv.Itoa(i)), Value: []byte("record " + strconv.Itoa(i))}
	}
	cluster.Produce(t, topic, recs...)

	// One webhook per run, so that what each run delivered is known
	// exactly, whatever the first run's last requests did as it died.
	slow := func(bridgetest.Delivery) bridgetest.Reply { return bridgetest.Reply{Delay: 2 * time.Millisecond} }
	first, second := bridgetest.NewWebhook(t, slow), bridgetest.NewWebhook(t, slow)
	env, group := subscriptionEnv(t, cluster, topic, first.URL,
		// The killed member sends no LeaveGroup. The restarted one joins
		// with a new member id, and the group gives it the dead member's
		// partitions only once that member's session has timed out: the
		// default 45 s would make the test wait that long.
		"KBRIDGE_SESSION_TIMEOUT", "6s",
		"KBRIDGE_SHUTDOWN_TIMEOUT", "10s",
	)

	began := time.Now()
	p1 := startProcess(t, bin, env)
	first.WaitAcked(t, records/2, 60*time.Second)
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := p1.wait(t); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("first kbridge ended with %v, want killed", err)
	}
	killedAt := time.Now()
	// The dead member commits nothing more: this is where the group resumes.
	atKill := cluster.Committed(t, group, topic)
	ackedAtKill := first.AckedPrefix(topic, nil)
	for p, off := range atKill {
		if off > ackedAtKill[p] {
			t.Errorf("partition %d: committed %d before the kill, past the acknowledged prefix %d", p, off, ackedAtKill[p])
		}
	}
	t.Logf("killed after %d acks (%v); committed %v, acknowledged prefix %v", len(first.Acked()), killedAt.Sub(began), atKill, ackedAtKill)

	env["KBRIDGE_WEBHOOK_URL"] = second.URL
	p2 := startProcess(t, bin, env)
	second.WaitFor(t, 60*time.Second, "the restarted kbridge's first delivery", func(ds []bridgetest.Delivery) bool { return len(ds) > 0 })
	resumed := time.Now()
	eventually(t, 60*time.Second, "every record acknowledged", func() bool {
		return len(acknowledged(first, second)) == records
	})
	end := map[int32]int64{}
	for i := range int32(partitions) {
		end[i] = records / partitions
		if i < records%partitions {
			end[i]++
		}
	}
	waitCommitted(t, cluster, group, topic, end)
	t.Logf("restarted kbridge delivered its first record %v after the kill, the last %v after", resumed.Sub(killedAt), time.Since(killedAt))

	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.wait(t); err != nil {
		t.Errorf("restarted kbridge exited with %v after SIGTERM, want 0", err)
	}

	// Every delivery of a record carries the same Idempotency-Key, and the
	// restarted kbridge delivered nothing below the committed offsets.
	keys := map[bridgetest.Coordinate]string{}
	for run, hook := range []*bridgetest.Webhook{first, second} {
		for _, d := range hook.Deliveries() {
			c := bridgetest.Coordinate{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}
			key := d.Header.Get("Idempotency-Key")
			if want := group + "/" + topic + "/" + strconv.Itoa(int(c.Partition)) + "/" + strconv.FormatInt(c.Offset, 10); key != want {
				t.Errorf("run %d: %v: Idempotency-Key %q, want %q", run+1, c, key, want)
			}
			if k, seen := keys[c]; seen && k != key {
				t.Errorf("%v delivered again with Idempotency-Key %q, first %q", c, key, k)
			}
			keys[c] = key
			if run == 1 && c.Offset < atKill[c.Partition] {
				t.Errorf("%v delivered again although offset %d was committed before the kill", c, atKill[c.Partition])
			}
		}
	}
	duplicates := 0
	for _, n := range acknowledged(first, second) {
		duplicates += n - 1
	}
	t.Logf("%d records, %d acknowledged twice or more (redelivered after the kill)", records, duplicates)
}

// acknowledged returns how often each record was acknowledged by any of the
// hooks.
func acknowledged(hooks ...*bridgetest.Webhook) map[bridgetest.Coordinate]int {
	out := map[bridgetest.Coordinate]int{}
	for _, h := range hooks {
		for c, n := range h.Acked() {
			out[c] += n
		}
	}
	return out
}
