// Package chaos is kbridge's reliability run: the real kbridge binary, as
// several subprocesses in one consumer group, publishes and delivers
// records while instances are killed, stopped, added and removed and (with
// the real broker) the broker itself restarts, and a checker proves that no
// acknowledged publish is lost and no committed offset ever runs ahead of
// what the webhook acknowledged or what was dead-lettered.
//
// Everything is in the tests; TestChaos is skipped unless KBRIDGE_CHAOS is
// set (short, long or soak). RELIABILITY.md at the repository root says how
// to run it and what the last runs printed.
package chaos
