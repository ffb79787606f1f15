// Command kbridgeprof is kbridge with a Go CPU profile: it runs the same
// app.Run as cmd/kbridge, with the same flags and environment, and writes
// the profile of its whole life to $KBRIDGEPROF_CPUPROFILE (default
// kbridge.cpu.pprof) when it stops. kbridge has no pprof endpoint; this lets
// bench/publish profile it in its own process:
//
//	go build -o /tmp/kbridgeprof ./bench/kbridgeprof
//	KBRIDGEPROF_CPUPROFILE=/tmp/unary.pprof go run ./bench/publish -kbridge /tmp/kbridgeprof -scenarios unary
//	go tool pprof -top /tmp/kbridgeprof /tmp/unary.pprof
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

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
	code := app.Run(ctx, os.Args[1:], os.LookupEnv, os.Stderr, app.Hooks{})
	stop()
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "kbridgeprof:", err)
		return cmp.Or(code, app.ExitError)
	}
	return code
}
