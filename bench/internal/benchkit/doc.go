// Package benchkit is what the benchmarks under bench/ share: kbridge run as
// a subprocess on free ports, CPU and memory read from /proc, topics and
// franz-go producers set up as kbridge's, the pool of record values, the
// common flags, and medians and formatting for the markdown tables.
package benchkit
