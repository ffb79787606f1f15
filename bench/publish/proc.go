package main

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

// cpuSnapshot is the CPU time used so far by kbridge, by this process, and
// by the whole machine (busy and in total, over all CPUs).
type cpuSnapshot struct {
	kbridge, self         time.Duration
	hostBusy, hostElapsed int64 // ticks of /proc/stat
}

func cpuTimes(kbridgePID int) (cpuSnapshot, error) {
	var s cpuSnapshot
	var err error
	if s.kbridge, err = cpuTime(strconv.Itoa(kbridgePID)); err != nil {
		return s, err
	}
	if s.self, err = cpuTime("self"); err != nil {
		return s, err
	}
	s.hostBusy, s.hostElapsed, err = hostTicks()
	return s, err
}

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

// statusKiB reads a "Name:   123 kB" line of /proc/<pid>/status, such as
// VmRSS or VmHWM.
func statusKiB(pid int, name string) (int64, error) {
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

// watchRSS samples pid's VmRSS every interval until the returned stop is
// called; stop returns the largest sample in KiB.
func watchRSS(pid int, every time.Duration) (stop func() int64) {
	quit := make(chan struct{})
	peak := make(chan int64)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var largest int64
		for {
			if kib, err := statusKiB(pid, "VmRSS"); err == nil {
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
