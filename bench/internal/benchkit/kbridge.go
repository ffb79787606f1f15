package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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

// KbridgeConfig says how to run kbridge.
type KbridgeConfig struct {
	Bin     string   // the binary
	LogPath string   // its stdout and stderr; "" for a temporary file
	Brokers []string // KBRIDGE_BROKERS
	Args    []string // flags after the listen addresses, which are always set
	Env     []string // further KEY=value; other KBRIDGE_* variables are dropped
}

// Kbridge is kbridge running as a subprocess on free loopback ports.
type Kbridge struct {
	GRPCAddr, HTTPAddr, AdminAddr string
	// Started is taken just before the process started; ReadyAfter is how
	// long after that /readyz first answered 200.
	Started    time.Time
	ReadyAfter time.Duration

	cmd                  *exec.Cmd
	log                  *os.File
	exited               chan struct{} // closed once the process was waited for
	waitErr              error         // set before exited is closed
	removeLogWhenStopped bool
}

// StartKbridge starts the binary and waits until /readyz answers 200.
func StartKbridge(ctx context.Context, c KbridgeConfig) (*Kbridge, error) {
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	log, remove, err := openLog(c.LogPath)
	if err != nil {
		return nil, err
	}
	k := &Kbridge{GRPCAddr: addrs[0], HTTPAddr: addrs[1], AdminAddr: addrs[2], log: log, exited: make(chan struct{}), removeLogWhenStopped: remove}
	k.cmd = exec.Command(c.Bin, "--grpc-addr", k.GRPCAddr, "--http-addr", k.HTTPAddr, "--admin-addr", k.AdminAddr)
	k.cmd.Args = append(k.cmd.Args, c.Args...)
	k.cmd.Env = append(withoutKbridgeEnv(os.Environ()), "KBRIDGE_BROKERS="+strings.Join(c.Brokers, ","))
	k.cmd.Env = append(k.cmd.Env, c.Env...)
	k.cmd.Stdout, k.cmd.Stderr = log, log
	k.Started = time.Now()
	if err := k.cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start kbridge: %w", err)
	}
	// The waiter is stopped by the process ending; Stop makes sure it does.
	go func() {
		k.waitErr = k.cmd.Wait()
		close(k.exited)
	}()
	if err := k.waitReady(ctx); err != nil {
		_, stopErr := k.Stop(true)
		return nil, errors.Join(fmt.Errorf("kbridge not ready: %w (log: %s)", err, k.log.Name()), stopErr)
	}
	k.ReadyAfter = time.Since(k.Started)
	return k, nil
}

// PID is the process id.
func (k *Kbridge) PID() int { return k.cmd.Process.Pid }

// LogName is the path of kbridge's log.
func (k *Kbridge) LogName() string { return k.log.Name() }

// Exited is closed when the process has ended.
func (k *Kbridge) Exited() <-chan struct{} { return k.exited }

// ExitErr is why the process ended; valid once Exited is closed.
func (k *Kbridge) ExitErr() error { return k.waitErr }

// withoutKbridgeEnv drops KBRIDGE_* variables, so that only the flags and
// variables given here configure the measured kbridge.
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
func (k *Kbridge) waitReady(ctx context.Context) error {
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

func (k *Kbridge) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+k.AdminAddr+"/readyz", nil)
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

// PeakRSSKiB is the process's VmHWM: its largest RSS since it started.
func (k *Kbridge) PeakRSSKiB() (int64, error) { return StatusKiB(k.PID(), "VmHWM") }

// CPU is the process's CPU time so far, user and kernel.
func (k *Kbridge) CPU() (time.Duration, error) { return PIDCPUTime(k.PID()) }

// Stop sends SIGTERM and waits for the exit; anything but exit code 0
// within stopTimeout is an error, which quotes the end of the log. Past the
// timeout the process is killed. A temporary log is removed unless keepLog
// or an error; it reports whether the log is still there.
func (k *Kbridge) Stop(keepLog bool) (kept bool, err error) {
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

// StopReporting is Stop that keeps the log if failed and then names it on
// progress.
func (k *Kbridge) StopReporting(failed bool, progress io.Writer) error {
	kept, err := k.Stop(failed)
	if kept {
		fmt.Fprintf(progress, "kbridge log: %s\n", k.log.Name())
	}
	return err
}

func (k *Kbridge) terminate() error {
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
func (k *Kbridge) logTail() string {
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
