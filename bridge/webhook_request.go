package bridge

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of WebhookRequestSettings, applied when a field is empty.
const (
	DefaultCloudEventType     = "kbridge.record"
	DefaultWebhookContentType = "application/octet-stream"
)

// WebhookRequestSettings are the parts of a subscription that shape its
// webhook requests. The zero value of every field but Group is usable.
type WebhookRequestSettings struct {
	// Group is the subscription's consumer group. It scopes Idempotency-Key,
	// so that two subscriptions of one topic never share keys; required.
	Group string
	// CloudEventType is ce-type for records that are not CloudEvents
	// themselves; empty means DefaultCloudEventType.
	CloudEventType string
	// DefaultContentType is Content-Type for records without a usable
	// content-type header; empty means DefaultWebhookContentType.
	DefaultContentType string
	// ExtraHeaders are static headers sent with every request (such as
	// Authorization), verbatim. They may not name a header of the webhook
	// contract or of HTTP framing; see Validate.
	ExtraHeaders http.Header
}

// Header names of the webhook contract. The ce-* and trace context names are
// written in lower case, as the CloudEvents HTTP binding and W3C Trace
// Context spell them; the others are spelled as Go canonicalizes them, so
// Header.Get finds those (but not ce-*, traceparent or tracestate: read
// those from the map directly).
const (
	headerKafkaPrefix = "Kafka-Header-"
	headerCEPrefix    = "ce-"
	recordCEPrefix    = "ce_"

	recordContentType = "content-type"
	traceParent       = "traceparent"
	traceState        = "tracestate"
)

// Validate reports every problem of s at once. NewWebhookRequest calls it
// too, but a subscription's config should call it at start, so that a bad
// setting stops kbridge instead of failing every delivery.
func (s WebhookRequestSettings) Validate() error {
	var errs []error
	if s.Group == "" {
		errs = append(errs, errors.New("group: required (it scopes Idempotency-Key)"))
	}
	if ct := s.DefaultContentType; ct != "" && !usableAsIs([]byte(ct)) {
		errs = append(errs, fmt.Errorf("default content type %q: only printable ASCII is allowed", ct))
	}
	for name, values := range s.ExtraHeaders {
		if err := validateExtraHeader(name, values); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func validateExtraHeader(name string, values []string) error {
	lower := strings.ToLower(name)
	switch {
	case !isToken(name):
		return fmt.Errorf("extra header %q: not a valid header name (RFC 9110 token characters only)", name)
	case reservedHeaders[lower] || strings.HasPrefix(lower, "kafka-") || strings.HasPrefix(lower, headerCEPrefix):
		return fmt.Errorf("extra header %s: kbridge sets it (Kafka-*, ce-*, %s are reserved)", name, reservedList)
	}
	for _, v := range values {
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7F {
				return fmt.Errorf("extra header %s: control byte 0x%02X in the value", name, c)
			}
		}
	}
	return nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return s != ""
}

// reservedHeaders, in lower case, are the names an extra header may not
// take: the contract's own and those of HTTP framing, which Go's client
// ignores or which would corrupt the request.
var reservedHeaders = map[string]bool{
	"content-type": true, "idempotency-key": true, "delivery-attempt": true,
	traceParent: true, traceState: true,
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
}

const reservedList = "Content-Type, Idempotency-Key, Delivery-Attempt, traceparent, tracestate, Host, Content-Length, Transfer-Encoding, Connection"

// NewWebhookRequest builds the POST that delivers rec to url, as DESIGN.md's
// webhook contract says. Any record yields a valid request: names and
// values are percent-encoded as EncodeHeaderName and EncodeHeaderValue say.
// It fails only for invalid settings, a nil record, an attempt below 1 or a
// bad url.
//
// The body is rec.Value byte for byte; a null or empty value is http.NoBody
// with Content-Length 0. GetBody is nil on purpose: Go's Transport silently
// replays a request carrying Idempotency-Key on a stale keep-alive
// connection when it can rewind the body, and every attempt must be one
// counted attempt. It cannot rewind this body, so a request with a value is
// never replayed. An empty body (http.NoBody) still could be; WebhookClient
// prevents that (see noReplayTransport), so send these requests with it.
//
// Record headers are mapped thus:
//   - content-type, traceparent, tracestate: the last occurrence of each (as
//     Java's Headers.lastHeader reads them) is sent verbatim (surrounding
//     spaces trimmed, as HTTP would) in its HTTP role when it is printable
//     ASCII and not blank: a content type such as
//     "application/cloudevents+json" must not be percent-encoded.
//     Any other occurrence, and an unusable last one, travels as
//     Kafka-Header-<name> instead, so nothing is dropped.
//   - A record carrying ce_id, ce_source, ce_type and ce_specversion is a
//     CloudEvent: each of its ce_<attr> headers (attr non-empty) is sent as
//     ce-<attr>, the value percent-encoded as the CloudEvents HTTP binding
//     requires (space and '"' too). kbridge adds no ce-* of its own then.
//   - Otherwise kbridge sets ce-specversion, ce-id, ce-source, ce-type and
//     ce-time, and the record's own ce_* headers are ordinary headers: they
//     go as Kafka-Header-ce_<attr>, and cannot be mistaken for attributes.
//   - Every other header goes as Kafka-Header-<name>, an empty name as
//     "Kafka-Header-". The name keeps its case on the wire (the map key is
//     not canonicalized), but HTTP names are case-insensitive and receivers
//     fold them (Go canonicalizes, Rack upper-cases, HTTP/2 lower-cases), so
//     an app cannot rely on it. Repeated names repeat the header in order;
//     the order between different names is not kept.
func NewWebhookRequest(ctx context.Context, url string, rec *kgo.Record, attempt int, s WebhookRequestSettings) (*http.Request, error) {
	if rec == nil {
		return nil, errors.New("webhook request: nil record")
	}
	if attempt < 1 {
		return nil, fmt.Errorf("webhook request: attempt %d, want 1 or more", attempt)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("webhook request settings: %w", err)
	}
	var body io.Reader = http.NoBody
	if len(rec.Value) > 0 {
		body = bytes.NewReader(rec.Value)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return nil, fmt.Errorf("webhook request: %w", err)
	}
	req.GetBody = nil // see above: no replays by the Transport
	req.ContentLength = int64(len(rec.Value))
	req.Header = webhookHeader(rec, attempt, s)
	return req, nil
}

// webhookHeader builds the request headers. Keys are assigned to the map
// directly so that Go does not canonicalize them.
func webhookHeader(rec *kgo.Record, attempt int, s WebhookRequestSettings) http.Header {
	h := make(http.Header, 16+len(rec.Headers)+len(s.ExtraHeaders))
	for name, values := range s.ExtraHeaders {
		h[name] = append([]string(nil), values...)
	}
	partition := strconv.FormatInt(int64(rec.Partition), 10)
	offset := strconv.FormatInt(rec.Offset, 10)
	h["Idempotency-Key"] = []string{EncodeHeaderValue([]byte(s.Group + "/" + rec.Topic + "/" + partition + "/" + offset))}
	h["Kafka-Topic"] = []string{EncodeHeaderValue([]byte(rec.Topic))}
	h["Kafka-Partition"] = []string{partition}
	h["Kafka-Offset"] = []string{offset}
	h["Kafka-Timestamp"] = []string{strconv.FormatInt(rec.Timestamp.UnixMilli(), 10)}
	// TimestampType is -1 only for pre-0.10 message sets, which have no
	// timestamp: say nothing rather than something false.
	switch rec.Attrs.TimestampType() {
	case 0:
		h["Kafka-Timestamp-Type"] = []string{"create"}
	case 1:
		h["Kafka-Timestamp-Type"] = []string{"log-append"}
	}
	if rec.Key != nil { // a null key has no header; an empty key an empty one
		h["Kafka-Key"] = []string{EncodeHeaderValue(rec.Key)}
	}
	h["Delivery-Attempt"] = []string{strconv.Itoa(attempt)}

	cloudEvent := isCloudEvent(rec.Headers)
	addRecordHeaders(h, rec.Headers, cloudEvent)
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = []string{cmp.Or(s.DefaultContentType, DefaultWebhookContentType)}
	}
	if !cloudEvent {
		h["ce-specversion"] = []string{"1.0"}
		h["ce-id"] = []string{encodeCloudEventValue([]byte(rec.Topic + "/" + partition + "/" + offset))}
		h["ce-source"] = []string{encodeCloudEventValue([]byte("kafka:" + rec.Topic))}
		h["ce-type"] = []string{encodeCloudEventValue([]byte(cmp.Or(s.CloudEventType, DefaultCloudEventType)))}
		// Kafka's "no timestamp" is -1; ce-time is optional, so a record
		// without one gets none rather than 1969.
		if rec.Timestamp.UnixMilli() >= 0 {
			h["ce-time"] = []string{rec.Timestamp.UTC().Format(time.RFC3339Nano)}
		}
	}
	return h
}

// addRecordHeaders adds each record header in its role: verbatim as
// Content-Type or trace context, as ce-<attr> of a CloudEvent, or else as
// Kafka-Header-<name>. Appending keeps repeated names in record order.
func addRecordHeaders(h http.Header, headers []kgo.RecordHeader, cloudEvent bool) {
	roles := headerRoles(headers)
	for i, rh := range headers {
		switch {
		case roles[i] != "":
			// HTTP trims surrounding spaces; trim them here so that the map
			// holds what the app receives.
			h[roles[i]] = []string{strings.Trim(string(rh.Value), " ")}
		case cloudEvent && len(rh.Key) > len(recordCEPrefix) && strings.HasPrefix(rh.Key, recordCEPrefix):
			name := headerCEPrefix + EncodeHeaderName(rh.Key[len(recordCEPrefix):])
			h[name] = append(h[name], encodeCloudEventValue(rh.Value))
		default:
			name := headerKafkaPrefix + EncodeHeaderName(rh.Key)
			h[name] = append(h[name], EncodeHeaderValue(rh.Value))
		}
	}
}

// isCloudEvent reports whether the headers carry the CloudEvents Kafka
// binding's required attributes. Kafka header names are case-sensitive and
// the binding spells them in lower case, so only that spelling counts.
func isCloudEvent(headers []kgo.RecordHeader) bool {
	var seen [4]bool
	for _, rh := range headers {
		switch rh.Key {
		case "ce_id":
			seen[0] = true
		case "ce_source":
			seen[1] = true
		case "ce_type":
			seen[2] = true
		case "ce_specversion":
			seen[3] = true
		}
	}
	return seen == [4]bool{true, true, true, true}
}

// headerRoles returns, for each record header, the HTTP header it is sent
// as verbatim, or "": the last content-type, traceparent and tracestate,
// when usable as they are.
func headerRoles(headers []kgo.RecordHeader) []string {
	roles := make([]string, len(headers))
	seen := map[string]bool{}
	for i := len(headers) - 1; i >= 0; i-- {
		role, ok := verbatimRoles[headers[i].Key]
		if !ok || seen[role] {
			continue
		}
		seen[role] = true
		if usableAsIs(headers[i].Value) {
			roles[i] = role
		}
	}
	return roles
}

// verbatimRoles maps the record headers that have an HTTP meaning to the
// header they become. Kafka header names are case-sensitive; these are the
// spellings kbridge's publish API, the CloudEvents Kafka binding and W3C
// Trace Context use.
var verbatimRoles = map[string]string{
	recordContentType: "Content-Type",
	traceParent:       traceParent,
	traceState:        traceState,
}

// usableAsIs reports whether v can be sent unencoded in its HTTP role:
// printable ASCII only, and not blank (HTTP trims surrounding spaces, and
// a blank media type or trace header means nothing).
func usableAsIs(v []byte) bool {
	for _, c := range v {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return len(bytes.TrimSpace(v)) > 0
}

// Byte classes of the encodings: the bytes written literally.
var (
	// tokenByte holds RFC 9110's tchar.
	tokenByte = byteSet(func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
	})
	// nameLiteral leaves out '%' (or "a%41" would decode to "aA") and '+'
	// (which form decoding, a common mistake, turns into a space).
	nameLiteral = byteSet(func(c byte) bool { return tokenByte[c] && c != '%' && c != '+' })
	// valueLiteral is DESIGN.md's rule for values.
	valueLiteral = byteSet(func(c byte) bool { return 0x20 <= c && c <= 0x7E && c != '%' && c != '+' })
	// cloudEventLiteral adds the CloudEvents HTTP binding's rule (3.1.3.2):
	// space and '"' are encoded too.
	cloudEventLiteral = byteSet(func(c byte) bool { return valueLiteral[c] && c != ' ' && c != '"' })
)

func byteSet(keep func(byte) bool) *[256]bool {
	var set [256]bool
	for c := range 256 {
		set[c] = keep(byte(c))
	}
	return &set
}

// EncodeHeaderName writes a Kafka header name for use in an HTTP header
// name: RFC 9110 token characters stay literal, except '%' and '+'; every
// other byte becomes %XX (upper-case hex). url.PathUnescape reverses it.
// The empty name stays empty.
func EncodeHeaderName(name string) string { return percentEncode(name, nameLiteral) }

// EncodeHeaderValue writes bytes as an HTTP header value: every byte
// outside 0x20-0x7E, and '%' and '+', becomes %XX (upper-case hex), as
// DESIGN.md says. One addition: a space that is the first or last byte also
// becomes %20, because HTTP strips leading and trailing spaces from header
// values and the space would be lost. url.PathUnescape reverses it.
func EncodeHeaderValue(v []byte) string { return percentEncode(v, valueLiteral) }

// encodeCloudEventValue encodes a ce-* value as the CloudEvents HTTP
// binding requires; plain percent-decoding reverses it too.
func encodeCloudEventValue(v []byte) string { return percentEncode(v, cloudEventLiteral) }

func percentEncode[T string | []byte](s T, literal *[256]bool) string {
	const hex = "0123456789ABCDEF"
	keep := func(i int) bool {
		return literal[s[i]] && !(s[i] == ' ' && (i == 0 || i == len(s)-1))
	}
	escapes := 0
	for i := range len(s) {
		if !keep(i) {
			escapes++
		}
	}
	if escapes == 0 {
		return string(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 2*escapes)
	for i := range len(s) {
		if keep(i) {
			b.WriteByte(s[i])
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0x0F])
		}
	}
	return b.String()
}
