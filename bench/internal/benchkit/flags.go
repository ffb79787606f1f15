package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Common are the flags every benchmark here takes.
type Common struct {
	Brokers     []string
	KbridgeBin  string
	KbridgeLog  string
	KbridgeArgs []string // extra flags for kbridge, after the benchmark's own
	Rounds      int
	ValueSize   int
	Partitions  int
	Compression string
	KeepTopics  bool
	MetricsPath string // -metrics: where to write the run's key figures, "" for nowhere
}

// Register defines the common flags on fs. The brokers default to
// $KAFKA_BROKERS; partitions is the default of -partitions.
func (c *Common) Register(fs *flag.FlagSet, lookupEnv func(string) (string, bool), partitions int) {
	if v, _ := lookupEnv("KAFKA_BROKERS"); v != "" {
		c.Brokers = strings.Split(v, ",")
	}
	fs.Func("brokers", "Kafka bootstrap brokers, comma-separated (default $KAFKA_BROKERS)", func(v string) error {
		c.Brokers = strings.Split(v, ",")
		return nil
	})
	fs.StringVar(&c.KbridgeBin, "kbridge", "bin/kbridge", "the kbridge binary to run (scripts/build.sh bin/kbridge)")
	fs.Func("kbridge-flag", "an extra flag for kbridge, such as -kbridge-flag=--max-record-bytes=934464 (repeatable)", func(v string) error {
		c.KbridgeArgs = append(c.KbridgeArgs, v)
		return nil
	})
	fs.StringVar(&c.KbridgeLog, "kbridge-log", "", "file for kbridge's log (default: a temporary file, printed on failure)")
	fs.IntVar(&c.Rounds, "rounds", 3, "rounds; each row is the median over them")
	fs.IntVar(&c.ValueSize, "value-size", 1024, "bytes of each record value")
	fs.IntVar(&c.Partitions, "partitions", partitions, "partitions of each topic")
	fs.StringVar(&c.Compression, "compression", "snappy", "batch compression of the producers (kbridge's and the benchmark's): none, gzip, snappy, lz4 or zstd")
	fs.BoolVar(&c.KeepTopics, "keep-topics", false, "keep the benchmark's topics (and consumer groups) instead of deleting them at the end")
	fs.StringVar(&c.MetricsPath, "metrics", "", "also write the run's key figures to this file, one \"name value\" line each (for bench/results.sh)")
}

// Validate reports every bad common flag.
func (c *Common) Validate() []error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: none given: set KAFKA_BROKERS or -brokers"))
	}
	errs = append(errs, AtLeastOne(map[string]int{"rounds": c.Rounds, "value-size": c.ValueSize, "partitions": c.Partitions})...)
	if _, err := Codec(c.Compression); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// AtLeastOne reports each named value below 1, in name order.
func AtLeastOne(values map[string]int) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if n := values[name]; n < 1 {
			errs = append(errs, fmt.Errorf("%s: must be at least 1, got %d", name, n))
		}
	}
	return errs
}

// Kbridge is the configuration of the measured kbridge: the binary, log,
// brokers and -kbridge-flag flags of c, after args, with env.
func (c *Common) Kbridge(args, env []string) KbridgeConfig {
	return KbridgeConfig{Bin: c.KbridgeBin, LogPath: c.KbridgeLog, Brokers: c.Brokers,
		Args: append(args[:len(args):len(args)], c.KbridgeArgs...), Env: env}
}

// Producer is the settings of a producer for c's brokers and compression.
func (c *Common) Producer(linger time.Duration, maxBuffered int) ProducerSettings {
	return ProducerSettings{Brokers: c.Brokers, Compression: c.Compression, Linger: linger, MaxBuffered: maxBuffered}
}

// ExtraFlags describes the -kbridge-flag flags for a report's header.
func (c *Common) ExtraFlags() string {
	if len(c.KbridgeArgs) == 0 {
		return ", default settings but for the above"
	}
	return " " + strings.Join(c.KbridgeArgs, " ")
}

// RealMain is a benchmark's whole run, testable: it parses args, runs, and
// writes the table to stdout and progress to stderr.
type RealMain func(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error

// Main runs realMain with a context that Ctrl-C and SIGTERM cancel (the
// run still stops kbridge and deletes its topics), and exits 1 if it fails.
func Main(name string, realMain RealMain) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/%s: %v\n", name, err)
		os.Exit(1)
	}
}
