package bridge

import (
	"cmp"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BatchContentType is the Content-Type of a batch request: the CloudEvents
// JSON batch format.
const BatchContentType = "application/cloudevents-batch+json"

// The extension attributes kbridge adds to every event of a batch: what the
// single-record request says in its Idempotency-Key, Kafka-* and
// Delivery-Attempt headers. CloudEvents integers are 32-bit, so offsets and
// timestamps are strings.
const (
	extIdempotencyKey = "idempotencykey"
	extTopic          = "kafkatopic"
	extPartition      = "kafkapartition"
	extOffset         = "kafkaoffset"
	extTimestamp      = "kafkatimestamp"
	extTimestampType  = "kafkatimestamptype"
	extKey            = "kafkakey"
	extHeaders        = "kafkaheaders"
	extAttempt        = "deliveryattempt"
)

// reservedMembers are the event members kbridge writes itself; a
// CloudEvent record's own attribute of the same name is not copied.
var reservedMembers = map[string]bool{
	"data": true, "data_base64": true, "datacontenttype": true,
	extIdempotencyKey: true, extTopic: true, extPartition: true, extOffset: true, extTimestamp: true,
	extTimestampType: true, extKey: true, extHeaders: true, extAttempt: true,
	traceParent: true, traceState: true,
}

// AppendBatchEvent appends rec as one event of a CloudEvents JSON batch and
// returns the event's id, which the app names in a reply's failed list.
// It carries what the single-record request carries, in the JSON format:
//
//   - The context attributes: a CloudEvent record's own (its ce_*
//     headers, as strings), else specversion, id <topic>/<partition>/<offset>,
//     source kafka:<topic>, the subscription's type and the record's time.
//   - datacontenttype: the record's content-type, else the subscription's
//     default. A value whose content type is JSON (application/json or any
//     +json) and which is valid JSON (in UTF-8) travels as data, verbatim;
//     any other value as data_base64. An empty value has neither.
//   - Extensions: idempotencykey, kafkatopic, kafkapartition (an integer),
//     kafkaoffset, kafkatimestamp (milliseconds) and kafkatimestamptype,
//     kafkakey (percent-encoded as in the Kafka-Key header; absent for a
//     null key), deliveryattempt (an integer), traceparent and tracestate,
//     and kafkaheaders: the other record headers, in order, as
//     name=value pairs joined by '&', every byte but letters, digits and
//     "-._~" percent-encoded (so application/x-www-form-urlencoded
//     decoders read it back exactly).
//
// Strings are JSON strings: bytes that are not UTF-8 in an attribute (not in
// data, which base64 keeps exact) become U+FFFD.
func AppendBatchEvent(dst []byte, rec *kgo.Record, attempt int, s WebhookRequestSettings) ([]byte, string) {
	partition := strconv.FormatInt(int64(rec.Partition), 10)
	offset := strconv.FormatInt(rec.Offset, 10)
	roles := headerRoles(rec.Headers)
	cloudEvent := isCloudEvent(rec.Headers)

	dst = append(dst, '{')
	var id string
	if cloudEvent {
		dst, id = appendOwnAttributes(dst, rec.Headers)
	} else {
		id = rec.Topic + "/" + partition + "/" + offset
		dst = appendMember(dst, "specversion", "1.0")
		dst = appendMember(dst, "id", id)
		dst = appendMember(dst, "source", "kafka:"+rec.Topic)
		dst = appendMember(dst, "type", cmp.Or(s.CloudEventType, DefaultCloudEventType))
		if rec.Timestamp.UnixMilli() >= 0 {
			dst = appendMember(dst, "time", rec.Timestamp.UTC().Format(time.RFC3339Nano))
		}
	}

	contentType := cmp.Or(s.DefaultContentType, DefaultWebhookContentType)
	var form strings.Builder
	for i, h := range rec.Headers {
		switch {
		case roles[i] == "Content-Type":
			contentType = strings.Trim(string(h.Value), " ")
		case roles[i] != "":
			dst = appendMember(dst, roles[i], strings.Trim(string(h.Value), " "))
		case cloudEvent && strings.HasPrefix(h.Key, recordCEPrefix) && len(h.Key) > len(recordCEPrefix):
			// An attribute, written above.
		default:
			if form.Len() > 0 {
				form.WriteByte('&')
			}
			formEncode(&form, h.Key)
			form.WriteByte('=')
			formEncode(&form, string(h.Value))
		}
	}
	dst = appendMember(dst, "datacontenttype", contentType)
	dst = appendMember(dst, extIdempotencyKey, EncodeHeaderValue([]byte(s.Group+"/"+rec.Topic+"/"+partition+"/"+offset)))
	dst = appendMember(dst, extTopic, rec.Topic)
	dst = appendRawMember(dst, extPartition, partition)
	dst = appendMember(dst, extOffset, offset)
	dst = appendMember(dst, extTimestamp, strconv.FormatInt(rec.Timestamp.UnixMilli(), 10))
	switch rec.Attrs.TimestampType() {
	case 0:
		dst = appendMember(dst, extTimestampType, "create")
	case 1:
		dst = appendMember(dst, extTimestampType, "log-append")
	}
	if rec.Key != nil {
		dst = appendMember(dst, extKey, EncodeHeaderValue(rec.Key))
	}
	if form.Len() > 0 {
		dst = appendMember(dst, extHeaders, form.String())
	}
	dst = appendRawMember(dst, extAttempt, strconv.Itoa(attempt))
	switch {
	case len(rec.Value) == 0:
	case isJSONMediaType(contentType) && validJSON(rec.Value):
		dst = append(dst, `,"data":`...)
		dst = append(dst, rec.Value...)
	default:
		dst = append(dst, `,"data_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, rec.Value)
		dst = append(dst, '"')
	}
	return append(dst, '}'), id
}

// appendOwnAttributes writes a CloudEvent record's ce_* headers as its
// attributes (the last of a repeated name wins: JSON members must be
// unique) and returns its id as the app reads it.
func appendOwnAttributes(dst []byte, headers []kgo.RecordHeader) ([]byte, string) {
	var id string
	for i, h := range headers {
		name, ok := strings.CutPrefix(h.Key, recordCEPrefix)
		if !ok || name == "" || reservedMembers[name] || repeatedLater(headers, i) {
			continue
		}
		if name == "id" {
			id = strings.ToValidUTF8(string(h.Value), "\uFFFD")
		}
		dst = appendMember(dst, name, string(h.Value))
	}
	return dst, id
}

func repeatedLater(headers []kgo.RecordHeader, i int) bool {
	for _, h := range headers[i+1:] {
		if h.Key == headers[i].Key {
			return true
		}
	}
	return false
}

// appendMember appends "name":"value", after a comma unless it is the
// object's first member (dst ends in '{').
func appendMember(dst []byte, name, value string) []byte {
	dst = appendName(dst, name)
	return appendJSONString(dst, value)
}

// appendRawMember appends "name":value for a value that is already JSON.
func appendRawMember(dst []byte, name, value string) []byte {
	return append(appendName(dst, name), value...)
}

func appendName(dst []byte, name string) []byte {
	if dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = appendJSONString(dst, name)
	return append(dst, ':')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; bytes that are not UTF-8
// become U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// formEncode writes s with every byte outside RFC 3986's unreserved set
// percent-encoded: '+' and ' ' included, so that both plain percent-decoding
// and form decoding read it back.
func formEncode(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&0xF])
	}
}

// isJSONMediaType reports whether a Content-Type names JSON:
// application/json or a +json structured syntax suffix, parameters aside.
func isJSONMediaType(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}
