// Command kbridgeprof is kbridge with a Go CPU profile: it runs the same
// app.Run as cmd/kbridge, with the same flags and environment, and writes
// the profile of its whole life to $KBRIDGEPROF_CPUPROFILE (default
// kbridge.cpu.pprof) when it stops. kbridge has no pprof endpoint; this lets
// bench/publish profile it in its own process:
//
//	go build -o /tmp/kbridgeprof ./bench/kbridgeprof
//	KBRIDGEPROF_CPUPROFILE=/tmp/unary.pprof go run ./bench/publish -kbridge /tmp/kbridgeprof -scenarios unary
//	go tool pprof -top /tmp/kbridgeprof /tmp/unary.pprof
//
// With $KBRIDGEPROF_HEAPPROFILE set it also writes a heap profile there
// every 100 ms (each overwriting the last) while the heap is the largest
// seen yet: the profile of kbridge's peak, for memory questions.
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/kbridge/kbridge/app"
)

func main() { os.Exit(realMain()) }

func realMain() int {
	path := cmp.Or(os.Getenv("KBRIDGEPROF_CPUPROFILE"), "kbridge.cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kbridgeprof:", err)
		return app.ExitError
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "kbridgeprof:", err)
		return app.ExitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	var wg sync.WaitGroup
	if heap := os.Getenv("KBRIDGEPROF_HEAPPROFILE"); heap != "" {
		wg.Go(func() { heapPeaks(ctx, heap) })
	}
	code := app.Run(ctx, os.Args[1:], os.LookupEnv, os.Stderr, app.Hooks{})
	stop()
	wg.Wait()
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "kbridgeprof:", err)
		return cmp.Or(code, app.ExitError)
	}
	return code
}

// heapPeaks writes a heap profile to path whenever the heap in use has
// grown past the largest seen, checking every 100 ms until ctx ends.
func heapPeaks(ctx context.Context, path string) {
	runtime.MemProfileRate = 64 << 10 // finer than the default 512 KiB
	var peak uint64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse <= peak {
			continue
		}
		peak = ms.HeapInuse
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kbridgeprof:", err)
			return
		}
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		_ = f.Close()
	}
}
