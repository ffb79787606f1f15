// Command deliver measures kbridge's webhook delivery: it produces a
// backlog of records to a topic with franz-go, starts the built kbridge
// binary with one subscription to a webhook server in this process, and
// times kbridge from its process start until the webhook has acknowledged
// every record. In the same round it measures a baseline the same way: by
// default (-scenario delivery) a Go http.Client with one request in flight
// per partition POSTing the same bodies to the same server; with -scenario
// ordering, kbridge with ordering partition, against which kbridge with
// ordering key is measured, keyed records and a slow webhook; with
// -scenario batch, the plain client, kbridge delivering one record per
// request and kbridge delivering batches; with -scenario lagging, one
// partition of four holding the backlog. It prints a markdown table of
// records/s, the ratios, time to first delivery, kbridge's CPU per 100,000
// records and peak RSS. -scenario idle measures instead kbridge's RSS and
// CPU on a caught-up topic. See bench/README.md.
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

func main() { benchkit.Main("deliver", realMain) }

// options are the benchmark's flags.
type options struct {
	benchkit.Common
	scenario          string // one of scenarioNames
	records           int
	backlogPartitions int // record i goes to partition i%backlogPartitions; 0 for all partitions
	keys              int // record i has key i%keys; 0 for no key
	webhookDelay      time.Duration
	maxInFlight       int    // of kbridge with ordering key (-scenario ordering)
	batchMaxRecords   int    // of kbridge batched (-scenario batch)
	batchMaxWait      string // of kbridge batched; "" for kbridge's default
	idleFor           time.Duration
	batchBytes        int
	topic             string // an existing backlog to deliver; "" to make one
	timeout           time.Duration
	validateBatches   bool // the webhook checks each batch body with json.Valid too
}

func parseOptions(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("deliver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.Register(fs, lookupEnv, 12)
	fs.StringVar(&o.scenario, "scenario", scenarioDelivery, "delivery: kbridge against a plain Go http.Client (scenario 4 of DESIGN issue 5); "+
		"ordering: kbridge with ordering key against kbridge with ordering partition (scenario 5), which makes the defaults of flags not given "+
		"-partitions 1 -records 2000 -keys 1000 -webhook-delay 5ms; "+
		"batch: the plain client, kbridge single and kbridge batched (-batch-max-records) on the same backlog (scenarios 4, 6 and 7); "+
		"lagging: one partition of four with a backlog (defaults -partitions 4 -backlog-partitions 1 -records 10000), kbridge against the plain client; "+
		"idle: kbridge's RSS and CPU on a caught-up topic for -idle-for (scenario 8)")
	fs.IntVar(&o.records, "records", 100_000, "records in the backlog, delivered in every round by kbridge and by the baseline")
	fs.IntVar(&o.backlogPartitions, "backlog-partitions", 0, "partitions holding the backlog: record i goes to partition i%N, the others stay empty (0: all -partitions)")
	fs.IntVar(&o.keys, "keys", 0, "distinct keys in the backlog: record i has key i%keys (decimal text); 0 for keyless records")
	fs.DurationVar(&o.webhookDelay, "webhook-delay", 0, "how long the webhook sleeps before it answers each request")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 100, "-scenario ordering: kbridge's max_in_flight with ordering key, and its max_concurrency, so that max_in_flight is the bound")
	fs.IntVar(&o.batchMaxRecords, "batch-max-records", 100, "-scenario batch: the batched kbridge's KBRIDGE_BATCH_MAX_RECORDS (1-10000)")
	fs.StringVar(&o.batchMaxWait, "batch-max-wait", "", "-scenario batch: the batched kbridge's KBRIDGE_BATCH_MAX_WAIT, such as 5ms (default: kbridge's)")
	fs.BoolVar(&o.validateBatches, "webhook-validate", false, "the webhook also checks every batch body with json.Valid (about 4 µs per event, 12 times what its scanner costs; see bench/README.md)")
	fs.DurationVar(&o.idleFor, "idle-for", 5*time.Second, "-scenario idle: how long VmRSS is sampled once kbridge has caught up")
	fs.IntVar(&o.batchBytes, "batch-bytes", 1_000_000, "largest record batch of the backlog's producer (franz-go ProducerBatchMaxBytes); batches are filled to it, so it sets how the backlog lies in the log")
	fs.StringVar(&o.topic, "topic", "", "deliver this existing backlog (left by an earlier run with -keep-topics and the same -records and -partitions) instead of producing one; it is never deleted")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "longest one side of a round may take to have every record acknowledged")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, v := range scenarioDefaults[o.scenario] {
		if !given[name] {
			if err := fs.Set(name, v); err != nil {
				return o, err
			}
		}
	}
	return o, o.validate()
}

func (o options) validate() error {
	errs := o.Common.Validate()
	errs = append(errs, benchkit.AtLeastOne(map[string]int{"records": o.records, "batch-bytes": o.batchBytes, "max-in-flight": o.maxInFlight})...)
	if !slices.Contains(scenarioNames, o.scenario) {
		errs = append(errs, fmt.Errorf("scenario: must be one of %s, got %q", strings.Join(scenarioNames, ", "), o.scenario))
	}
	if o.backlogPartitions < 0 || o.backlogPartitions > o.Partitions {
		errs = append(errs, fmt.Errorf("backlog-partitions: must be from 0 to -partitions (%d), got %d", o.Partitions, o.backlogPartitions))
	}
	if o.batchMaxRecords < 1 || o.batchMaxRecords > 10_000 {
		errs = append(errs, fmt.Errorf("batch-max-records: must be from 1 to 10000, got %d", o.batchMaxRecords))
	}
	if o.batchMaxWait != "" {
		if _, err := time.ParseDuration(o.batchMaxWait); err != nil {
			errs = append(errs, fmt.Errorf("batch-max-wait: %w", err))
		}
	}
	if o.idleFor <= 0 {
		errs = append(errs, errors.New("idle-for must be positive"))
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
	rep, err := runScenario(ctx, o, stderr)
	if rep == nil {
		return err
	}
	rep.write(stdout)
	if o.MetricsPath != "" {
		err = errors.Join(err, benchkit.WriteMetrics(o.MetricsPath, rep.metrics()))
	}
	return errors.Join(err, rep.failed())
}

// reporter is a run's report: a scenario of rounds (report) or the idle
// scenario (idleReport).
type reporter interface {
	write(io.Writer)
	failed() error
	metrics() map[string]float64
}

// runScenario runs o's scenario; the report is nil when there is none.
func runScenario(ctx context.Context, o options, progress io.Writer) (reporter, error) {
	if o.scenario == scenarioIdle {
		rep, err := runIdle(ctx, o, progress)
		if rep == nil {
			return nil, err
		}
		return rep, err
	}
	rep, err := run(ctx, o, progress)
	if rep == nil {
		return nil, err
	}
	return rep, err
}
