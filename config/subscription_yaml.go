package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// subscriptionsKey is the one key of the configuration file that is not a
// flat option: a list of subscriptions, which env and flags cannot express.
const subscriptionsKey = "subscriptions"

// yamlDecoder decodes the file's subscriptions list by walking its nodes
// rather than with yaml's struct decoding, so that every problem is
// reported at once and names the entry and key (subscriptions[1]: unknown
// key "webhok_url"), and durations read like the flat options' ("200ms").
// The walk has a fixed depth, so an alias cycle cannot make it loop.
type yamlDecoder struct {
	path string
	errs []error
}

func (d *yamlDecoder) fail(where string, n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("config: %s: %s: %s (line %d)", d.path, where, fmt.Sprintf(format, args...), n.Line))
}

// decodeSubscriptions decodes the subscriptions list n (nil when absent). A
// key without a value keeps its default, so a templated file may leave one
// empty. An entry with problems is still returned, so that validation can
// report the problems of its other fields too.
func decodeSubscriptions(path string, n *yaml.Node) ([]Subscription, error) {
	if n == nil {
		return nil, nil
	}
	d := &yamlDecoder{path: path}
	n = resolve(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(subscriptionsKey, n, "expected a list of subscriptions")
		return nil, errors.Join(d.errs...)
	}
	subs := make([]Subscription, 0, len(n.Content))
	for i, item := range n.Content {
		subs = append(subs, d.subscription(fmt.Sprintf("%s[%d]", subscriptionsKey, i), item))
	}
	return subs, errors.Join(d.errs...)
}

func (d *yamlDecoder) subscription(where string, n *yaml.Node) Subscription {
	s := DefaultSubscription()
	given := map[string]bool{}
	d.mapping(where, n, func(key string, v *yaml.Node) bool {
		decode, ok := subscriptionKeys[key]
		if ok && !isNull(resolve(v)) {
			decode(d, where+"."+key, v, &s)
			given[key] = true
		}
		return ok
	})
	// Defaults that follow from other fields, as the shorthand's do.
	if !given["on_exhausted"] && s.DeadLetterTopic != "" {
		s.OnExhausted = OnExhaustedDeadLetter
	}
	if !given["max_in_flight"] && s.Ordering != OrderingPartition {
		s.MaxInFlight = defaultMaxInFlight
	}
	if s.Name == "" {
		s.Name = s.GroupID
	}
	return s
}

// subscriptionKeys decodes each key of a subscription entry.
var subscriptionKeys = map[string]func(d *yamlDecoder, where string, n *yaml.Node, s *Subscription){
	"name":                 func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.Name = d.str(w, n) },
	"topics":               func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.Topics = d.strList(w, n) },
	"topic_regex":          func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.TopicRegex = d.str(w, n) },
	"webhook_url":          func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.WebhookURL = d.str(w, n) },
	"group_id":             func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.GroupID = d.str(w, n) },
	"start_offset":         func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.StartOffset = d.str(w, n) },
	"attempt_timeout":      func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { d.duration(w, n, &s.AttemptTimeout) },
	"retry":                func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { d.retry(w, n, &s.Retry) },
	"permanent_statuses":   func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.PermanentStatuses = d.intList(w, n) },
	"on_exhausted":         func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.OnExhausted = d.str(w, n) },
	"dead_letter_topic":    func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.DeadLetterTopic = d.str(w, n) },
	"cloudevent_type":      func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.CloudEventType = d.str(w, n) },
	"default_content_type": func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.ContentType = d.str(w, n) },
	"headers":              func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.Headers = d.stringMap(w, n) },
	"ordering":             func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.Ordering = d.str(w, n) },
	"max_in_flight":        func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { d.integer(w, n, &s.MaxInFlight) },
	"max_concurrency":      func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { d.integer(w, n, &s.MaxConcurrency) },
	"batch":                func(d *yamlDecoder, w string, n *yaml.Node, s *Subscription) { s.Batch = d.batch(w, n) },
}

// retryKeys decodes each key of a subscription's retry mapping.
var retryKeys = map[string]func(d *yamlDecoder, where string, n *yaml.Node, r *Retry){
	"initial_backoff": func(d *yamlDecoder, w string, n *yaml.Node, r *Retry) { d.duration(w, n, &r.InitialBackoff) },
	"max_backoff":     func(d *yamlDecoder, w string, n *yaml.Node, r *Retry) { d.duration(w, n, &r.MaxBackoff) },
	"multiplier":      func(d *yamlDecoder, w string, n *yaml.Node, r *Retry) { d.float(w, n, &r.Multiplier) },
	"jitter":          func(d *yamlDecoder, w string, n *yaml.Node, r *Retry) { d.float(w, n, &r.Jitter) },
	"max_attempts":    func(d *yamlDecoder, w string, n *yaml.Node, r *Retry) { d.integer(w, n, &r.MaxAttempts) },
	"max_elapsed":     func(d *yamlDecoder, w string, n *yaml.Node, r *Retry) { d.duration(w, n, &r.MaxElapsed) },
}

func (d *yamlDecoder) retry(where string, n *yaml.Node, r *Retry) {
	d.mapping(where, n, func(key string, v *yaml.Node) bool {
		decode, ok := retryKeys[key]
		if ok && !isNull(resolve(v)) {
			decode(d, where+"."+key, v, r)
		}
		return ok
	})
}

// batchKeys decodes each key of a subscription's batch mapping.
var batchKeys = map[string]func(d *yamlDecoder, where string, n *yaml.Node, b *Batch){
	"max_records": func(d *yamlDecoder, w string, n *yaml.Node, b *Batch) { d.integer(w, n, &b.MaxRecords) },
	"max_bytes":   func(d *yamlDecoder, w string, n *yaml.Node, b *Batch) { d.integer(w, n, &b.MaxBytes) },
	"max_wait":    func(d *yamlDecoder, w string, n *yaml.Node, b *Batch) { d.duration(w, n, &b.MaxWait) },
}

// batch decodes a subscription's batch mapping. Only max_records turns
// batching on, so max_bytes or max_wait without it would be ignored: that
// is reported instead. A key whose value does not parse is reported once,
// not again by validation: it takes its default, and a max_records that
// does not parse leaves batching off.
func (d *yamlDecoder) batch(where string, n *yaml.Node) Batch {
	var b Batch
	given := map[string]*yaml.Node{} // the keys given and parsed
	records := false                 // max_records given, parsed or not
	d.mapping(where, n, func(key string, v *yaml.Node) bool {
		decode, ok := batchKeys[key]
		if ok && !isNull(resolve(v)) {
			before := len(d.errs)
			decode(d, where+"."+key, v, &b)
			if len(d.errs) == before {
				given[key] = v
			}
			records = records || key == "max_records"
		}
		return ok
	})
	switch {
	case given["max_records"] != nil:
	case records:
		return Batch{}
	default:
		for _, key := range []string{"max_bytes", "max_wait"} {
			if v := given[key]; v != nil {
				d.fail(where+"."+key, v, "needs batch.max_records, which turns batching on; without it records go one per request")
			}
		}
		return Batch{}
	}
	if given["max_bytes"] == nil {
		b.MaxBytes = DefaultBatchMaxBytes
	}
	if given["max_wait"] == nil {
		b.MaxWait = DefaultBatchMaxWait
	}
	return b
}

// mapping calls each for every key of the mapping n in document order;
// each reports whether it knows the key.
func (d *yamlDecoder) mapping(where string, n *yaml.Node, each func(key string, v *yaml.Node) bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.fail(where, n, "expected a mapping of keys to values")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		switch {
		case k.Kind != yaml.ScalarNode:
			d.fail(where, k, "keys must be plain values")
		case k.ShortTag() == "!!merge":
			d.fail(where, k, "merge keys (<<) are not supported; write the keys out")
		case seen[k.Value]:
			d.fail(where, k, "key %q given twice", k.Value)
		case !each(k.Value, n.Content[i+1]):
			d.fail(where, k, "unknown key %q", k.Value)
		}
		seen[k.Value] = true
	}
}

// scalar returns the trimmed text of the plain value n, reporting false
// after a problem.
func (d *yamlDecoder) scalar(where string, n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.fail(where, n, "expected a plain value")
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return strings.TrimSpace(n.Value), true
}

func (d *yamlDecoder) str(where string, n *yaml.Node) string {
	v, _ := d.scalar(where, n)
	return v
}

func (d *yamlDecoder) duration(where string, n *yaml.Node, dst *time.Duration) {
	if v, ok := d.scalar(where, n); ok {
		if err := parseDuration(dst, v); err != nil {
			d.fail(where, n, "%v", err)
		}
	}
}

func (d *yamlDecoder) integer(where string, n *yaml.Node, dst *int) {
	if v, ok := d.scalar(where, n); ok {
		if err := parseInt(dst, v); err != nil {
			d.fail(where, n, "%v", err)
		}
	}
}

func (d *yamlDecoder) float(where string, n *yaml.Node, dst *float64) {
	if v, ok := d.scalar(where, n); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			d.fail(where, n, "%q is not a number", v)
			return
		}
		*dst = f
	}
}

// strList returns the values of a list, given as a YAML list or, like the
// flat options' lists, as one comma-separated value.
func (d *yamlDecoder) strList(where string, n *yaml.Node) []string {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		return splitList(n.Value)
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(where, n, "expected a list")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		if v, ok := d.scalar(where, item); ok {
			out = append(out, v)
		}
	}
	return out
}

// intList returns a non-nil list: an explicit empty list means none.
func (d *yamlDecoder) intList(where string, n *yaml.Node) []int {
	out := []int{}
	for _, v := range d.strList(where, n) {
		var i int
		if err := parseInt(&i, v); err != nil {
			d.fail(where, n, "%v", err)
			continue
		}
		out = append(out, i)
	}
	return out
}

func (d *yamlDecoder) stringMap(where string, n *yaml.Node) map[string]string {
	out := map[string]string{}
	d.mapping(where, n, func(key string, v *yaml.Node) bool {
		// The value is not quoted in problems: it may be a credential.
		if val, ok := d.scalar(where+"."+key, v); ok {
			out[strings.TrimSpace(key)] = val
		}
		return true
	})
	return out
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }
