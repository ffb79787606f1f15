package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readyTimeout bounds kbridge's start-up; stopTimeout its shutdown, which
// kbridge itself bounds by its 25 s default budget.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 35 * time.Second
)

// kbridgeProc is kbridge running as a subprocess on free loopback ports.
type kbridgeProc struct {
	cmd                  *exec.Cmd
	grpcAddr, httpAddr   string
	adminAddr            string
	log                  *os.File
	readyAfter           time.Duration
	exited               chan struct{} // closed once the process was waited for
	waitErr              error         // set before exited is closed
	removeLogWhenStopped bool
}

// startKbridge starts the binary and waits until /readyz answers 200.
func startKbridge(ctx context.Context, o options) (*kbridgeProc, error) {
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	log, remove, err := openLog(o.kbridgeLog)
	if err != nil {
		return nil, err
	}
	k := &kbridgeProc{grpcAddr: addrs[0], httpAddr: addrs[1], adminAddr: addrs[2], log: log, exited: make(chan struct{}), removeLogWhenStopped: remove}
	k.cmd = exec.Command(o.kbridgeBin,
		"--grpc-addr", k.grpcAddr, "--http-addr", k.httpAddr, "--admin-addr", k.adminAddr,
		"--compression", o.compression, "--linger", o.linger.String(),
		"--stream-max-in-flight", strconv.Itoa(o.streamInFlight()),
	)
	k.cmd.Args = append(k.cmd.Args, o.kbridgeArgs...)
	k.cmd.Env = append(withoutKbridgeEnv(os.Environ()), "KBRIDGE_BROKERS="+strings.Join(o.brokers, ","))
	k.cmd.Stdout, k.cmd.Stderr = log, log
	start := time.Now()
	if err := k.cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start kbridge: %w", err)
	}
	// The waiter is stopped by the process ending; stop() makes sure it does.
	go func() {
		k.waitErr = k.cmd.Wait()
		close(k.exited)
	}()
	if err := k.waitReady(ctx); err != nil {
		_, stopErr := k.stop(true)
		return nil, errors.Join(fmt.Errorf("kbridge not ready: %w (log: %s)", err, k.log.Name()), stopErr)
	}
	k.readyAfter = time.Since(start)
	return k, nil
}

func (k *kbridgeProc) pid() int { return k.cmd.Process.Pid }

// withoutKbridgeEnv drops KBRIDGE_* variables, so that only the flags and
// brokers given here configure the measured kbridge.
func withoutKbridgeEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "KBRIDGE_") {
			out = append(out, kv)
		}
	}
	return out
}

// freeAddrs binds n loopback listeners on port 0 at once, so the ports
// differ, and releases them for kbridge. Another process could take one in
// between; kbridge would then fail to start, loudly.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

func openLog(path string) (f *os.File, remove bool, err error) {
	if path == "" {
		f, err = os.CreateTemp("", "kbridge-bench-*.log")
		remove = true
	} else {
		f, err = os.Create(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("kbridge log: %w", err)
	}
	return f, remove, nil
}

// waitReady polls /readyz until it answers 200, the process exits, or
// readyTimeout passes.
func (k *kbridgeProc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if k.ready(ctx, client) {
			return nil
		}
		select {
		case <-k.exited:
			return fmt.Errorf("kbridge exited during start-up: %w", k.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("/readyz: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (k *kbridgeProc) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+k.adminAddr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// peakRSSKiB is the process's VmHWM: its largest RSS since it started.
func (k *kbridgeProc) peakRSSKiB() (int64, error) { return statusKiB(k.pid(), "VmHWM") }

// stop sends SIGTERM and waits for the exit; anything but exit code 0
// within stopTimeout is an error, which quotes the end of the log. Past the
// timeout the process is killed. A temporary log is removed unless keepLog
// or an error; it reports whether the log is still there.
func (k *kbridgeProc) stop(keepLog bool) (kept bool, err error) {
	err = k.terminate()
	_ = k.log.Close()
	if err != nil {
		return true, fmt.Errorf("%w\n%s", err, k.logTail())
	}
	if k.removeLogWhenStopped && !keepLog {
		_ = os.Remove(k.log.Name())
		return false, nil
	}
	return true, nil
}

func (k *kbridgeProc) terminate() error {
	select {
	case <-k.exited:
		return fmt.Errorf("kbridge exited before it was stopped: %w", k.waitErr)
	default:
	}
	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop kbridge: %w", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-k.exited:
	case <-timer.C:
		_ = k.cmd.Process.Kill()
		<-k.exited
		return fmt.Errorf("kbridge did not exit within %s of SIGTERM; killed", stopTimeout)
	}
	if k.waitErr != nil {
		return fmt.Errorf("kbridge after SIGTERM: %w", k.waitErr) // *exec.ExitError: "exit status N"
	}
	return nil
}

// logTail is the end of kbridge's log, for error messages.
func (k *kbridgeProc) logTail() string {
	b, err := os.ReadFile(k.log.Name())
	if err != nil {
		return ""
	}
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return "---- end of kbridge log " + k.log.Name() + " ----\n" + string(b)
}
