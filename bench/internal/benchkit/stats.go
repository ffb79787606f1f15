package benchkit

import (
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Percentile returns the q-quantile of sorted by rank q·n rounded to the
// nearest integer (nearest-rank, without ceil's float surprises), 0 if empty.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// Median returns the median of xs (the mean of the middle two for an even
// count), 0 if empty. xs is not modified.
func Median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Spread is (max-min)/median of xs, 0 if the median is not positive.
func Spread(xs []float64) float64 {
	m := Median(xs)
	if m <= 0 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / m
}

// Per100k is cpu per 100,000 records, in seconds; 0 without records.
func Per100k(cpu time.Duration, records int64) float64 {
	if records == 0 {
		return 0
	}
	return cpu.Seconds() / float64(records) * 100_000
}

// FmtKiB writes kib in whole MiB.
func FmtKiB(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// FmtDur writes d in s, ms or µs, whichever reads best.
func FmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

// Machine describes this machine and Go for a report's header.
func Machine() string {
	return fmt.Sprintf("nproc %d, %s %s/%s", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
