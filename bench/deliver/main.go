// Command deliver measures kbridge's webhook delivery against a plain Go
// HTTP client: it produces a backlog of records to a topic with franz-go,
// starts the built kbridge binary with one subscription to a webhook server
// in this process, and times kbridge from its process start until the
// webhook has acknowledged every record. In the same round, a Go
// http.Client with one request in flight per partition POSTs the same
// bodies to the same server. It prints a markdown table of records/s, the
// ratio, time to first delivery, kbridge's CPU per 100,000 records and peak
// RSS. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

func main() { benchkit.Main("deliver", realMain) }

// options are the benchmark's flags.
type options struct {
	benchkit.Common
	records    int
	batchBytes int
	topic      string // an existing backlog to deliver; "" to make one
	timeout    time.Duration
}

func parseOptions(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("deliver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.Register(fs, lookupEnv, 12)
	fs.IntVar(&o.records, "records", 100_000, "records in the backlog, delivered in every round by kbridge and by the baseline")
	fs.IntVar(&o.batchBytes, "batch-bytes", 1_000_000, "largest record batch of the backlog's producer (franz-go ProducerBatchMaxBytes); batches are filled to it, so it sets how the backlog lies in the log")
	fs.StringVar(&o.topic, "topic", "", "deliver this existing backlog (left by an earlier run with -keep-topics and the same -records and -partitions) instead of producing one; it is never deleted")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "longest one side of a round may take to have every record acknowledged")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.validate()
}

func (o options) validate() error {
	errs := o.Common.Validate()
	errs = append(errs, benchkit.AtLeastOne(map[string]int{"records": o.records, "batch-bytes": o.batchBytes})...)
	if o.timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	return errors.Join(errs...)
}

// realMain prints the table whenever there is one, also after a failure.
func realMain(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	o, err := parseOptions(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	rep, err := run(ctx, o, stderr)
	if rep == nil {
		return err
	}
	rep.write(stdout)
	return errors.Join(err, rep.failed())
}
