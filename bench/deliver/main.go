// Command deliver measures kbridge's webhook delivery: it produces a
// backlog of records to a topic with franz-go, starts the built kbridge
// binary with one subscription to a webhook server in this process, and
// times kbridge from its process start until the webhook has acknowledged
// every record. In the same round it measures a baseline the same way: by
// default (-scenario delivery) a Go http.Client with one request in flight
// per partition POSTing the same bodies to the same server; with -scenario
// ordering, kbridge with ordering partition, against which kbridge with
// ordering key is measured, keyed records and a slow webhook. It prints a
// markdown table of records/s, the ratio, time to first delivery, kbridge's
// CPU per 100,000 records and peak RSS. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

func main() { benchkit.Main("deliver", realMain) }

// options are the benchmark's flags.
type options struct {
	benchkit.Common
	scenario     string // scenarioDelivery or scenarioOrdering
	records      int
	keys         int // record i has key i%keys; 0 for no key
	webhookDelay time.Duration
	maxInFlight  int // of kbridge with ordering key (-scenario ordering)
	batchBytes   int
	topic        string // an existing backlog to deliver; "" to make one
	timeout      time.Duration
}

// orderingDefaults are the defaults -scenario ordering gives the flags not
// set: scenario 5 of DESIGN issue 5 (one partition, 1,000 keys, a webhook
// taking 5 ms). 2,000 records keep a round short: ordering partition
// delivers one record per 5 ms, so its side takes about 10 s.
var orderingDefaults = map[string]string{"partitions": "1", "records": "2000", "keys": "1000", "webhook-delay": "5ms"}

func parseOptions(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("deliver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.Register(fs, lookupEnv, 12)
	fs.StringVar(&o.scenario, "scenario", scenarioDelivery, "delivery: kbridge against a plain Go http.Client (scenario 4 of DESIGN issue 5); "+
		"ordering: kbridge with ordering key against kbridge with ordering partition (scenario 5), which makes the defaults of flags not given "+
		"-partitions 1 -records 2000 -keys 1000 -webhook-delay 5ms")
	fs.IntVar(&o.records, "records", 100_000, "records in the backlog, delivered in every round by kbridge and by the baseline")
	fs.IntVar(&o.keys, "keys", 0, "distinct keys in the backlog: record i has key i%keys (decimal text); 0 for keyless records")
	fs.DurationVar(&o.webhookDelay, "webhook-delay", 0, "how long the webhook sleeps before it answers each request")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 100, "-scenario ordering: kbridge's max_in_flight with ordering key, and its max_concurrency, so that max_in_flight is the bound")
	fs.IntVar(&o.batchBytes, "batch-bytes", 1_000_000, "largest record batch of the backlog's producer (franz-go ProducerBatchMaxBytes); batches are filled to it, so it sets how the backlog lies in the log")
	fs.StringVar(&o.topic, "topic", "", "deliver this existing backlog (left by an earlier run with -keep-topics and the same -records and -partitions) instead of producing one; it is never deleted")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "longest one side of a round may take to have every record acknowledged")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.scenario == scenarioOrdering {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, v := range orderingDefaults {
			if !given[name] {
				if err := fs.Set(name, v); err != nil {
					return o, err
				}
			}
		}
	}
	return o, o.validate()
}

func (o options) validate() error {
	errs := o.Common.Validate()
	errs = append(errs, benchkit.AtLeastOne(map[string]int{"records": o.records, "batch-bytes": o.batchBytes, "max-in-flight": o.maxInFlight})...)
	if !slices.Contains([]string{scenarioDelivery, scenarioOrdering}, o.scenario) {
		errs = append(errs, fmt.Errorf("scenario: must be %s or %s, got %q", scenarioDelivery, scenarioOrdering, o.scenario))
	}
	if o.keys < 0 {
		errs = append(errs, fmt.Errorf("keys: must not be negative, got %d", o.keys))
	}
	if o.timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if o.webhookDelay < 0 {
		errs = append(errs, errors.New("webhook-delay must not be negative"))
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
