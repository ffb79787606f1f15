// Command publish measures what kbridge costs over using franz-go directly:
// it runs the built kbridge binary as a subprocess against a Kafka broker,
// drives the same 1 KiB records through franz-go and through kbridge's gRPC
// and REST APIs, and prints a markdown table of records/s, latency, CPU per
// 100,000 records and peak RSS. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

func main() { benchkit.Main("publish", realMain) }

// options are the benchmark's flags.
type options struct {
	benchkit.Common
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	inFlight    int
	streams     int
	linger      time.Duration
	only        []string // slugs of the scenarios to run; empty for all
}

// streamInFlight is the records one PublishStream keeps in flight: the
// streams together hold as many as baseline B does.
func (o options) streamInFlight() int { return max(o.inFlight/o.streams, 1) }

func parseOptions(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.Register(fs, lookupEnv, 6)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each scenario in each round")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent callers of the synchronous scenarios")
	fs.IntVar(&o.inFlight, "in-flight", 10_000, "records in flight in the asynchronous scenarios (baseline B; split over the streams)")
	fs.IntVar(&o.streams, "streams", 4, "concurrent PublishStream streams")
	fs.DurationVar(&o.linger, "linger", 0, "producer linger of kbridge and of the baselines")
	fs.Func("scenarios", "comma-separated subset of "+strings.Join(scenarioSlugs, ",")+" (default all); a ratio needs its baseline in the run", func(v string) error {
		o.only = strings.Split(v, ",")
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.validate()
}

func (o options) validate() error {
	errs := o.Common.Validate()
	if o.duration <= 0 || o.warmup < 0 {
		errs = append(errs, errors.New("duration must be positive and warmup not negative"))
	}
	errs = append(errs, benchkit.AtLeastOne(map[string]int{"concurrency": o.concurrency, "in-flight": o.inFlight, "streams": o.streams})...)
	for _, slug := range o.only {
		if !slices.Contains(scenarioSlugs, slug) {
			errs = append(errs, fmt.Errorf("scenarios: %q is not one of %s", slug, strings.Join(scenarioSlugs, ",")))
		}
	}
	return errors.Join(errs...)
}

func realMain(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	o, err := parseOptions(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	rep, err := run(ctx, o, stderr)
	if rep != nil {
		rep.write(stdout)
		if o.MetricsPath != "" {
			err = errors.Join(err, benchkit.WriteMetrics(o.MetricsPath, rep.metrics()))
		}
	}
	if err != nil {
		return err
	}
	if errs, rounds := rep.failures(); errs > 0 || rounds > 0 {
		return fmt.Errorf("%d records or calls and %d rounds failed during measurement (see the errors column)", errs, rounds)
	}
	return nil
}
