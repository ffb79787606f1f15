package main

import (
	"fmt"
	"strconv"
)

// The scenarios of -scenario: what a round compares.
const (
	// scenarioDelivery is scenario 4 of DESIGN issue 5: kbridge (ordering
	// partition) against a plain Go http.Client.
	scenarioDelivery = "delivery"
	// scenarioOrdering is scenario 5: kbridge with ordering key against
	// kbridge with ordering partition, keyed records, a slow webhook.
	scenarioOrdering = "ordering"
	// scenarioBatch is scenarios 6 and 7: the plain client, kbridge
	// delivering one record per request, and kbridge delivering batches,
	// each draining the same backlog.
	scenarioBatch = "batch"
	// scenarioLagging is one partition of four with a backlog, the others
	// empty: kbridge against the plain client delivering that partition.
	scenarioLagging = "lagging"
	// scenarioIdle is kbridge subscribed to a caught-up topic: its RSS and
	// CPU when there is nothing to deliver (scenario 8). It has no sides.
	scenarioIdle = "idle"
)

var scenarioNames = []string{scenarioDelivery, scenarioOrdering, scenarioBatch, scenarioLagging, scenarioIdle}

// scenarioDefaults are the defaults a scenario gives the flags not set on
// the command line.
var scenarioDefaults = map[string]map[string]string{
	// Scenario 5 of DESIGN issue 5: one partition, 1,000 keys, a webhook
	// taking 5 ms. 2,000 records keep a round short: ordering partition
	// delivers one record per 5 ms, so its side takes about 10 s.
	scenarioOrdering: {"partitions": "1", "records": "2000", "keys": "1000", "webhook-delay": "5ms"},
	// The case of the fetch-wait finding (bench/README.md): 10,000
	// records in partition 0 of 4.
	scenarioLagging: {"partitions": "4", "backlog-partitions": "1", "records": "10000"},
}

// side is what one part of a round measures: the baseline, or what is
// compared with it.
type side struct {
	short   string   // progress lines, column heads, group names, metric names
	label   string   // the summary table's row
	kbridge bool     // kbridge as a subprocess; otherwise the plain-client baseline
	env     []string // kbridge's subscription settings besides topic, webhook and group
	setting string   // kbridge's settings in words, for the report's header
}

// comparison is the ratio of side num's records/s over side den's, taken
// in each round (indexes into sides).
type comparison struct{ num, den int }

// sides are what each round of o's scenario measures, in order; the first
// is the baseline of the summary table's ratio column.
func (o options) sides() []side {
	plain := side{short: "baseline", label: fmt.Sprintf("baseline: Go http.Client, %d requests in flight", o.loaded())}
	single := side{short: "kbridge", kbridge: true, label: fmt.Sprintf("kbridge: backlog of %d partitions, 1 in flight each", o.Partitions),
		setting: "ordering partition, 1 in flight per partition"}
	switch o.scenario {
	case scenarioOrdering:
		n := strconv.Itoa(o.maxInFlight)
		return []side{{
			short: "partition", kbridge: true,
			label:   fmt.Sprintf("kbridge ordering partition: %d partition(s), 1 in flight each", o.Partitions),
			env:     []string{"KBRIDGE_ORDERING=partition"},
			setting: "ordering partition (max_in_flight 1)",
		}, {
			short: "key", kbridge: true,
			label:   fmt.Sprintf("kbridge ordering key: %d partition(s), max_in_flight %d each", o.Partitions, o.maxInFlight),
			env:     []string{"KBRIDGE_ORDERING=key", "KBRIDGE_MAX_IN_FLIGHT=" + n, "KBRIDGE_MAX_CONCURRENCY=" + n},
			setting: fmt.Sprintf("ordering key, max_in_flight %d, max_concurrency %d", o.maxInFlight, o.maxInFlight),
		}}
	case scenarioBatch:
		single.short = "single"
		single.label = fmt.Sprintf("kbridge single: backlog of %d partitions, 1 record per request, 1 in flight each", o.Partitions)
		single.setting = "one record per request, ordering partition, 1 in flight per partition"
		env := []string{"KBRIDGE_BATCH_MAX_RECORDS=" + strconv.Itoa(o.batchMaxRecords)}
		wait := "default max_wait"
		if o.batchMaxWait != "" {
			env = append(env, "KBRIDGE_BATCH_MAX_WAIT="+o.batchMaxWait)
			wait = "max_wait " + o.batchMaxWait
		}
		batched := side{short: "batched", kbridge: true,
			label:   fmt.Sprintf("kbridge batched: backlog of %d partitions, batches of up to %d records, 1 in flight each", o.Partitions, o.batchMaxRecords),
			env:     env,
			setting: fmt.Sprintf("batch max_records %d (default max_bytes, %s), ordering partition, 1 batch in flight per partition", o.batchMaxRecords, wait)}
		return []side{plain, single, batched}
	case scenarioLagging:
		plain.label = fmt.Sprintf("baseline: Go http.Client, %d request(s) in flight", o.loaded())
		single.label = fmt.Sprintf("kbridge: backlog in %d of %d partitions, 1 in flight each", o.loaded(), o.Partitions)
	}
	return []side{plain, single}
}

// comparisons are the ratios each round reports: every side against the
// first, and with batching, batched against single.
func (o options) comparisons() []comparison {
	if o.scenario == scenarioBatch {
		return []comparison{{1, 0}, {2, 0}, {2, 1}}
	}
	return []comparison{{1, 0}}
}

// loaded is how many partitions hold the backlog: the first
// -backlog-partitions, or all of them.
func (o options) loaded() int {
	if o.backlogPartitions == 0 {
		return o.Partitions
	}
	return o.backlogPartitions
}

// key is record i's key, nil without -keys.
func (o options) key(i int) []byte {
	if o.keys == 0 {
		return nil
	}
	return strconv.AppendInt(nil, int64(i%o.keys), 10)
}
