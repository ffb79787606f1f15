// Command kbridge is the Kafka sidecar: see the README for what it does and
// kbridge --help for its configuration.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kbridge/kbridge/app"
)

func main() {
	// SIGTERM (Kubernetes) and SIGINT only signal: app.Run shuts down in
	// order within the configured budget and returns the exit code.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	// After the first signal, restore the default handling: a second Ctrl-C
	// kills at once instead of waiting out the shutdown budget.
	context.AfterFunc(ctx, stop)
	code := app.Run(ctx, os.Args[1:], os.LookupEnv, os.Stderr, app.Hooks{})
	stop()
	os.Exit(code)
}
