package benchkit

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which
// is 100 on every Linux architecture Go supports.
const userHZ = 100

// CPUSnapshot is the CPU time used so far by kbridge, by this process, and
// by the whole machine (busy and in total, over all CPUs).
type CPUSnapshot struct {
	Kbridge, Self         time.Duration
	HostBusy, HostElapsed int64 // ticks of /proc/stat
}

// CPUTimes takes a snapshot; kbridgePID 0 leaves Kbridge zero.
func CPUTimes(kbridgePID int) (CPUSnapshot, error) {
	var s CPUSnapshot
	var err error
	if kbridgePID != 0 {
		if s.Kbridge, err = PIDCPUTime(kbridgePID); err != nil {
			return s, err
		}
	}
	if s.Self, err = cpuTime("self"); err != nil {
		return s, err
	}
	s.HostBusy, s.HostElapsed, err = hostTicks()
	return s, err
}

// HostBusySince is the share of all CPUs' time that was busy between
// earlier and s.
func (s CPUSnapshot) HostBusySince(earlier CPUSnapshot) float64 {
	return float64(s.HostBusy-earlier.HostBusy) / float64(max(s.HostElapsed-earlier.HostElapsed, 1))
}

// PIDCPUTime is the CPU time of process pid so far, user and kernel.
func PIDCPUTime(pid int) (time.Duration, error) { return cpuTime(strconv.Itoa(pid)) }

// hostTicks sums the "cpu" line of /proc/stat: all ticks, and those not
// idle or waiting for I/O. Their deltas give how busy the machine was, so a
// row limited by CPU (the broker's, kbridge's and the clients' together)
// shows as such.
func hostTicks() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read host cpu: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("parse /proc/stat: %q", line)
	}
	// user nice system idle iowait irq softirq steal ...
	for i, f := range fields[1:] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		if i >= 8 { // guest times are already in user and nice
			break
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total, nil
}

// cpuTime is utime+stime of /proc/<pid>/stat: the CPU time of every thread
// of the process, user and kernel.
func cpuTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields to count start after its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%s/stat: no ')'", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc/%s/stat: %d fields", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%s/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// StatusKiB reads a "Name:   123 kB" line of /proc/<pid>/status, such as
// VmRSS or VmHWM.
func StatusKiB(pid int, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", name, err)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	return 0, fmt.Errorf("%s: not in /proc/%d/status", name, pid)
}

// WatchRSS samples pid's VmRSS every interval until the returned stop is
// called; stop returns the largest sample in KiB.
func WatchRSS(pid int, every time.Duration) (stop func() int64) {
	quit := make(chan struct{})
	peak := make(chan int64)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var largest int64
		for {
			if kib, err := StatusKiB(pid, "VmRSS"); err == nil {
				largest = max(largest, kib)
			}
			select {
			case <-quit:
				peak <- largest
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(quit)
		return <-peak
	}
}
