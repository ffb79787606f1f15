package benchkit

import (
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WriteMetrics writes m to path as "name value" lines sorted by name, for
// scripts (bench/results.sh) to read without parsing the tables. Values
// that are not finite are left out.
func WriteMetrics(path string, m map[string]float64) error {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v := m[name]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		fmt.Fprintf(&b, "%s %s\n", name, strconv.FormatFloat(v, 'f', -1, 64))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// MiB is kib in MiB.
func MiB(kib int64) float64 { return float64(kib) / 1024 }

// Millis is d in milliseconds.
func Millis(d time.Duration) float64 { return d.Seconds() * 1000 }
