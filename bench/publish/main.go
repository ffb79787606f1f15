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
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	// Ctrl-C only cancels: the run still stops kbridge and deletes its topics.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/publish:", err)
		os.Exit(1)
	}
}

// options are the benchmark's flags.
type options struct {
	brokers     []string
	kbridgeBin  string
	kbridgeLog  string
	kbridgeArgs []string // extra flags for kbridge, after the benchmark's own
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	concurrency int
	inFlight    int
	streams     int
	valueSize   int
	partitions  int
	compression string
	linger      time.Duration
	keepTopics  bool
	only        []string // slugs of the scenarios to run; empty for all
}

// streamInFlight is the records one PublishStream keeps in flight: the
// streams together hold as many as baseline B does.
func (o options) streamInFlight() int { return max(o.inFlight/o.streams, 1) }

func parseOptions(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (options, error) {
	var o options
	brokers, _ := lookupEnv("KAFKA_BROKERS")
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&brokers, "brokers", brokers, "Kafka bootstrap brokers, comma-separated (default $KAFKA_BROKERS)")
	fs.StringVar(&o.kbridgeBin, "kbridge", "bin/kbridge", "the kbridge binary to run (scripts/build.sh bin/kbridge)")
	fs.Func("kbridge-flag", "an extra flag for kbridge, such as -kbridge-flag=--max-record-bytes=934464 (repeatable)", func(v string) error {
		o.kbridgeArgs = append(o.kbridgeArgs, v)
		return nil
	})
	fs.StringVar(&o.kbridgeLog, "kbridge-log", "", "file for kbridge's log (default: a temporary file, printed on failure)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each scenario in each round")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each row is the median over them")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent callers of the synchronous scenarios")
	fs.IntVar(&o.inFlight, "in-flight", 10_000, "records in flight in the asynchronous scenarios (baseline B; split over the streams)")
	fs.IntVar(&o.streams, "streams", 4, "concurrent PublishStream streams")
	fs.IntVar(&o.valueSize, "value-size", 1024, "bytes of each record value")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of each scenario's topic")
	fs.StringVar(&o.compression, "compression", "snappy", "batch compression of kbridge and of the baselines: none, gzip, snappy, lz4 or zstd")
	fs.DurationVar(&o.linger, "linger", 0, "producer linger of kbridge and of the baselines")
	fs.BoolVar(&o.keepTopics, "keep-topics", false, "keep the benchmark's topics instead of deleting them at the end")
	fs.Func("scenarios", "comma-separated subset of "+strings.Join(scenarioSlugs, ",")+" (default all); a ratio needs its baseline in the run", func(v string) error {
		o.only = strings.Split(v, ",")
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if brokers != "" {
		o.brokers = strings.Split(brokers, ",")
	}
	return o, o.validate()
}

func (o options) validate() error {
	var errs []error
	if len(o.brokers) == 0 {
		errs = append(errs, errors.New("brokers: none given: set KAFKA_BROKERS or -brokers"))
	}
	if o.duration <= 0 || o.warmup < 0 {
		errs = append(errs, errors.New("duration must be positive and warmup not negative"))
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"rounds", o.rounds}, {"concurrency", o.concurrency}, {"in-flight", o.inFlight}, {"streams", o.streams}, {"value-size", o.valueSize}, {"partitions", o.partitions}} {
		if v.n < 1 {
			errs = append(errs, fmt.Errorf("%s: must be at least 1, got %d", v.name, v.n))
		}
	}
	if _, err := codec(o.compression); err != nil {
		errs = append(errs, err)
	}
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
	}
	if err != nil {
		return err
	}
	if errs, rounds := rep.failures(); errs > 0 || rounds > 0 {
		return fmt.Errorf("%d records or calls and %d rounds failed during measurement (see the errors column)", errs, rounds)
	}
	return nil
}
