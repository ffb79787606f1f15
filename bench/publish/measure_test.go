package main

import (
	"slices"
	"testing"

	"github.com/kbridge/kbridge/bench/internal/benchkit"
)

func TestScenarioSlugs(t *testing.T) {
	r := &rig{o: options{concurrency: 1, inFlight: 1, streams: 1}, values: benchkit.NewValuePool(32), kb: &benchkit.Kbridge{}}
	var got []string
	for _, sc := range r.scenarios() {
		got = append(got, sc.slug)
	}
	if !slices.Equal(got, scenarioSlugs) {
		t.Errorf("scenarios %q, scenarioSlugs %q", got, scenarioSlugs)
	}
}
