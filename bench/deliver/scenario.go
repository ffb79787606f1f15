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
)

// side is what one half of a round measures: the baseline, or what is
// compared with it.
type side struct {
	short   string   // progress lines, column heads, group names
	label   string   // the summary table's row
	kbridge bool     // kbridge as a subprocess; otherwise the plain-client baseline
	env     []string // kbridge's subscription settings besides topic, webhook and group
	setting string   // kbridge's settings in words, for the report's header
}

// sides are the baseline and the measured side of o's scenario.
func (o options) sides() (base, measured side) {
	if o.scenario == scenarioOrdering {
		n := strconv.Itoa(o.maxInFlight)
		return side{
				short: "partition", kbridge: true,
				label:   fmt.Sprintf("kbridge ordering partition: %d partition(s), 1 in flight each", o.Partitions),
				env:     []string{"KBRIDGE_ORDERING=partition"},
				setting: "ordering partition (max_in_flight 1)",
			}, side{
				short: "key", kbridge: true,
				label:   fmt.Sprintf("kbridge ordering key: %d partition(s), max_in_flight %d each", o.Partitions, o.maxInFlight),
				env:     []string{"KBRIDGE_ORDERING=key", "KBRIDGE_MAX_IN_FLIGHT=" + n, "KBRIDGE_MAX_CONCURRENCY=" + n},
				setting: fmt.Sprintf("ordering key, max_in_flight %d, max_concurrency %d", o.maxInFlight, o.maxInFlight),
			}
	}
	return side{short: "baseline", label: fmt.Sprintf("baseline: Go http.Client, %d requests in flight", o.Partitions)},
		side{short: "kbridge", kbridge: true, label: fmt.Sprintf("kbridge: backlog of %d partitions, 1 in flight each", o.Partitions),
			setting: "ordering partition, 1 in flight per partition"}
}

// key is record i's key, nil without -keys.
func (o options) key(i int) []byte {
	if o.keys == 0 {
		return nil
	}
	return strconv.AppendInt(nil, int64(i%o.keys), 10)
}
