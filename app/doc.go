// Package app composes kbridge from its parts: it loads the configuration,
// binds every listener, builds the producer, servers and monitors, runs them
// as one run group, and shuts them down in order within the shutdown budget.
// cmd/kbridge's main and the end-to-end tests both call Run.
package app
