package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// instance is one kbridge process. Its listen addresses are ports the
// kernel picked (:0), read from its "listening" log line.
type instance struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	grpc    string
	http    string
	admin   string
	conn    *grpc.ClientConn // the publisher's connection to it

	exited   chan struct{} // closed once the process was reaped
	exitErr  error         // valid once exited is closed
	stopping atomic.Bool   // set before the test signals it: any other exit is a failure
}

var listeningLine = regexp.MustCompile(`msg=listening grpc=(\S+) http=(\S+) admin=(\S+)`)

// addrWatch passes kbridge's log through and hands over the addresses of
// its "listening" line (slog writes each line with one Write).
type addrWatch struct {
	once  sync.Once
	addrs chan []string
}

func (w *addrWatch) Write(p []byte) (int, error) {
	if m := listeningLine.FindSubmatch(p); m != nil {
		w.once.Do(func() { w.addrs <- []string{string(m[1]), string(m[2]), string(m[3])} })
	}
	return len(p), nil
}

// startInstance runs bin with the YAML config, logging to logDir/name.log,
// and returns once it listens. Only the config configures it: the test's
// own KBRIDGE_* variables are not passed on.
func startInstance(bin, config, logDir, name string) (*instance, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	watch := &addrWatch{addrs: make(chan []string, 1)}
	inst := &instance{name: name, logPath: logPath, exited: make(chan struct{})}
	inst.cmd = exec.Command(bin, "--config="+config, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0")
	inst.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	inst.cmd.Stdout, inst.cmd.Stderr = logFile, io.MultiWriter(logFile, watch)
	if err := inst.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// The reaper: Wait also waits for the copy of stderr, which writes to
	// logFile from this process, so the file is closed after it.
	go func() {
		inst.exitErr = inst.cmd.Wait()
		_ = logFile.Close()
		close(inst.exited)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case a := <-watch.addrs:
		inst.grpc, inst.http, inst.admin = a[0], a[1], a[2]
	case <-inst.exited:
		return nil, fmt.Errorf("%s exited at start: %v\n%s", name, inst.exitErr, tail(logPath, 20))
	case <-timer.C:
		_ = inst.cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not log its addresses within 30s\n%s", name, tail(logPath, 20))
	}
	inst.conn, err = grpc.NewClient(inst.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = inst.cmd.Process.Kill()
		return nil, fmt.Errorf("grpc client for %s: %w", name, err)
	}
	return inst, nil
}

func (i *instance) pid() int { return i.cmd.Process.Pid }

// kill sends SIGKILL and waits until the process is gone.
func (i *instance) kill() error {
	i.stopping.Store(true)
	if err := i.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", i.name, err)
	}
	<-i.exited // SIGKILL cannot be ignored
	_ = i.conn.Close()
	return nil
}

// terminate sends SIGTERM and waits up to limit for the exit. It returns
// how long the shutdown took; an error if it did not exit 0 in time (the
// process is then killed).
func (i *instance) terminate(limit time.Duration) (time.Duration, error) {
	began := time.Now()
	i.stopping.Store(true)
	if err := i.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("SIGTERM %s: %w", i.name, err)
	}
	defer i.conn.Close() // after the exit: a stopping kbridge may still answer publishes
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-i.exited:
	case <-timer.C:
		_ = i.kill()
		return time.Since(began), fmt.Errorf("%s did not exit within %v of SIGTERM; killed", i.name, limit)
	}
	took := time.Since(began)
	if i.exitErr != nil {
		return took, fmt.Errorf("%s after SIGTERM: %v (want exit 0)\n%s", i.name, i.exitErr, tail(i.logPath, 20))
	}
	return took, nil
}

// rssKiB is the process's resident memory (VmRSS).
func (i *instance) rssKiB() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", i.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// goroutines scrapes go_goroutines from the admin /metrics.
func (i *instance) goroutines(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+i.admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", i.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("scrape %s: no go_goroutines (%v)", i.name, sc.Err())
}

// tail is the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "---- " + path + " (last lines) ----\n" + strings.Join(lines, "\n")
}
