// Package config defines kbridge's configuration tree and loads it from
// command-line flags, KBRIDGE_* environment variables, an optional YAML file
// and defaults, in that order of precedence.
//
// Every option is declared once, in options.go, with its flag, environment
// variable, YAML key, default and help text; the loader, --help and the
// README's configuration table are all derived from that one list. Loading is
// a pure function of its inputs (arguments, an environment lookup and a file
// reader) so that it can be tested without touching the process.
//
// Webhook subscriptions are the one structured setting: several of them, each
// with its own retry policy and headers, come from the file's subscriptions
// list; the common case of one comes from flat options (subscribe-topics,
// webhook-url, group-id, …) instead. Using both is an error.
package config
