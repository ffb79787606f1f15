package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrHelp is returned by Load when the arguments asked for --help.
var ErrHelp = flag.ErrHelp

const configOption = "config"

// Load builds the configuration from defaults, then the YAML file named by
// --config or KBRIDGE_CONFIG, then KBRIDGE_* variables from lookupEnv, then
// the flags in args; a later source wins. Subscriptions come only from the
// file's subscriptions list or from the one-subscription options. It reports
// every problem at once, each naming its option, and validates the result.
func Load(args []string, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error)) (Config, error) {
	opts := Options()
	byName := make(map[string]Option, len(opts))
	for _, o := range opts {
		byName[o.Name] = o
	}
	configPath, _ := lookupEnv("KBRIDGE_CONFIG")
	flagValues, configPath, err := parseFlags(args, opts, configPath)
	if err != nil {
		return Config{}, err
	}

	cfg := Default()
	var errs []error
	apply := func(source string, o Option, v string) {
		if err := o.set(&cfg, strings.TrimSpace(v)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s (from %s)", o.Name, err, source))
		}
	}

	// A file that cannot be read or parsed contributes nothing, so validating
	// the rest would report problems (no brokers, say) that the file may fix.
	validate := true
	if configPath != "" {
		values, subs, err := readYAML(configPath, readFile, byName)
		if err != nil {
			errs = append(errs, err)
			validate = values != nil
		}
		for _, kv := range values {
			apply(configPath, byName[kv.name], kv.value)
		}
		cfg.Subscriptions = subs
	}
	for _, o := range opts {
		// An empty variable counts as unset: Kubernetes manifests often
		// carry `value: ""` for options they mean to leave alone.
		if v, ok := lookupEnv(o.Env()); ok && strings.TrimSpace(v) != "" {
			apply(o.Env(), o, v)
		}
	}
	for _, s := range flagValues {
		apply("--"+s.name, byName[s.name], s.value)
	}
	if validate {
		if err := cfg.resolveShorthand(); err != nil {
			errs = append(errs, err)
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, nil
}

type setting struct{ name, value string }

// parseFlags returns the options args set, in order, and the configuration
// file's path: configPath unless --config overrides it.
func parseFlags(args []string, opts []Option, configPath string) ([]setting, string, error) {
	var values []setting
	fs := flag.NewFlagSet("kbridge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func(configOption, "", func(v string) error { configPath = v; return nil })
	for _, o := range opts {
		record := func(v string) error { values = append(values, setting{o.Name, v}); return nil }
		if o.bool {
			fs.BoolFunc(o.Name, o.Help, record)
		} else {
			fs.Func(o.Name, o.Help, record)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", ErrHelp
		}
		return nil, "", fmt.Errorf("%w (see kbridge --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("unexpected argument %q (see kbridge --help)", fs.Arg(0))
	}
	return values, configPath, nil
}

type keyValue struct{ name, value string }

// readYAML reads a flat YAML mapping of option keys, plus the subscriptions
// list. A list value (brokers) is joined with commas; unknown keys are errors
// so that typos surface. The values are nil only when the file cannot be
// read or parsed.
func readYAML(path string, readFile func(string) ([]byte, error), byName map[string]Option) ([]keyValue, []Subscription, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("config: parse %s: %w", path, err)
	}
	var doc map[string]yaml.Node
	if top := documentRoot(&root); top != nil {
		// Checked here, because yaml's own error names Go types
		// ("cannot unmarshal !!seq into map[string]yaml.Node").
		if top.Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("config: %s: the file must be a mapping of option keys such as \"brokers: [kafka:9092]\", not %s (line %d)", path, yamlKind(top), top.Line)
		}
		if err := top.Decode(&doc); err != nil {
			return nil, nil, fmt.Errorf("config: parse %s: %w", path, err)
		}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("config: parse %s: only one YAML document is allowed", path)
	}
	subsNode, hasSubs := doc[subscriptionsKey]
	delete(doc, subscriptionsKey)
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	out := make([]keyValue, 0, len(keys))
	var errs []error
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		if _, ok := byName[name]; !ok || strings.Contains(k, "-") {
			errs = append(errs, fmt.Errorf("config: %s: unknown key %q (keys are the flag names with underscores, such as grpc_addr)", path, k))
			continue
		}
		node := doc[k]
		switch node.Kind {
		case yaml.ScalarNode:
			out = append(out, keyValue{name, node.Value})
		case yaml.SequenceNode:
			items := make([]string, 0, len(node.Content))
			for _, item := range node.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("config: %s: %s: list items must be plain values (line %d)", path, k, item.Line))
					continue
				}
				items = append(items, item.Value)
			}
			out = append(out, keyValue{name, strings.Join(items, ",")})
		default:
			errs = append(errs, fmt.Errorf("config: %s: %s: expected a value or a list (line %d)", path, k, node.Line))
		}
	}
	var subs []Subscription
	if hasSubs {
		subs, err = decodeSubscriptions(path, &subsNode)
		errs = append(errs, err)
	}
	return out, subs, errors.Join(errs...)
}

// documentRoot returns the top node of a decoded document, nil for an
// empty file.
func documentRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil // an empty or null document sets nothing
	}
	return n
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a mapping"
}

// Usage is the text of kbridge --help.
func Usage() string {
	var b strings.Builder
	b.WriteString(`kbridge: a Kafka sidecar. Publish over gRPC or REST; kbridge produces to Kafka.
Subscribe, and kbridge POSTs each record of your topics to your webhook.

Usage: kbridge [flags]

Every flag can also be set with its environment variable or as a key of the
YAML file named by --config / KBRIDGE_CONFIG. Precedence: flags > environment
> file > defaults. Several subscriptions, and per-subscription settings such
as retries and headers, go in the file's subscriptions list instead of the
one-subscription options (--subscribe-topics and the options after it).

  --config PATH
        YAML configuration file (env KBRIDGE_CONFIG)
`)
	for _, o := range Options() {
		arg := " VALUE"
		if o.bool {
			arg = ""
		}
		fmt.Fprintf(&b, "  --%s%s\n        %s (env %s", o.Name, arg, o.Help, o.Env())
		if o.Default != "" {
			fmt.Fprintf(&b, ", default %s", o.Default)
		}
		b.WriteString(")\n")
	}
	return b.String()
}
