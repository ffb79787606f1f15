package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

const rawPublishPattern = "/v1/topics/{topic}"

// rawPublisher serves POST /v1/topics/{topic}: the request body is the record
// value byte for byte, whatever its Content-Type, so that an app publishes a
// JSON document with one plain HTTP POST and no base64. It calls Publish
// through the gateway's gRPC connection, so it shares the interceptors, the
// error mapping and the JSON error shape of the generated routes.
//
//   - ?key=K sets a text key, ?partition=N an explicit partition; other query
//     parameters are refused so that typos surface.
//   - Content-Type is kept as the record header "content-type".
//   - Kafka-Header-<name>: <value> becomes the record header <name>. HTTP
//     header names are case-insensitive, so <name> arrives lower-cased.
//     Name and value are percent-decoded (%XX), the inverse of the webhook's
//     encoding, so any byte can be sent; a literal '%' is written %25.
//   - ce-<attr>: <value> becomes the CloudEvents Kafka binding header
//     ce_<attr> (percent-decoded as the CloudEvents HTTP binding says).
//   - traceparent and tracestate become record headers (through metadata).
type rawPublisher struct {
	mux    *runtime.ServeMux
	client kbridgev1.ProducerServiceClient
	// maxRequestBytes is also the gRPC server's message limit. The message
	// built from a body within the limit can exceed it (topic, headers), and
	// gRPC would refuse it with ResourceExhausted, which the gateway answers
	// 429, a status clients retry; so it is checked here first.
	maxRequestBytes int
}

func (p *rawPublisher) serve(w http.ResponseWriter, r *http.Request, params map[string]string) {
	_, outbound := runtime.MarshalerForRequest(p.mux, r)
	req, err := rawRequest(r, params["topic"])
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
				fmt.Sprintf("request body exceeds the limit of %d bytes", tooLarge.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	if n := proto.Size(req); n > p.maxRequestBytes {
		writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
			fmt.Sprintf("request is %d bytes with its headers; the limit is %d", n, p.maxRequestBytes))
		return
	}
	// AnnotateContext applies the same header forwarding and Grpc-Timeout
	// handling as the generated routes.
	ctx, err := runtime.AnnotateContext(r.Context(), p.mux, r, kbridgev1.ProducerService_Publish_FullMethodName,
		runtime.WithHTTPPathPattern(rawPublishPattern))
	if err != nil {
		runtime.HTTPError(r.Context(), p.mux, outbound, w, r, err)
		return
	}
	resp, err := p.client.Publish(ctx, req)
	if err != nil {
		runtime.HTTPError(ctx, p.mux, outbound, w, r, err)
		return
	}
	runtime.ForwardResponseMessage(ctx, p.mux, outbound, w, r, resp)
}

// rawRequest builds the publish request from the HTTP request. Its errors
// are for the caller (400), except *http.MaxBytesError (413).
func rawRequest(r *http.Request, topic string) (*kbridgev1.PublishRequest, error) {
	rec := &kbridgev1.Record{}
	// r.URL.Query would drop a malformed parameter silently, and a key
	// written "a%zz" would become a null key.
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %w (only key and partition are accepted, percent-encoded)", err)
	}
	for name, values := range query {
		if len(values) > 1 && (name == "key" || name == "partition") {
			return nil, fmt.Errorf("query parameter %s is given %d times; give it once", name, len(values))
		}
		switch name {
		case "key":
			rec.Key = &values[0]
		case "partition":
			p, err := strconv.ParseInt(values[0], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("query parameter partition: %q is not a partition number", values[0])
			}
			p32 := int32(p)
			rec.Partition = &p32
		default:
			return nil, fmt.Errorf("unknown query parameter %q: only key and partition are accepted", name)
		}
	}
	headers, err := rawHeaders(r.Header)
	if err != nil {
		return nil, err
	}
	rec.Headers = headers
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	rec.ValueBytes = nonNil(body)
	return &kbridgev1.PublishRequest{Topic: topic, Records: []*kbridgev1.Record{rec}}, nil
}

const kafkaHeaderPrefix = "kafka-header-"

// rawHeaders maps HTTP request headers to record headers: content-type,
// Kafka-Header-*, and ce-* (CloudEvents binary mode). Names are sorted so
// that the record's headers do not depend on map order; repeated HTTP
// headers keep their order.
func rawHeaders(h http.Header) ([]*kbridgev1.Header, error) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []*kbridgev1.Header
	if ct := h.Get("Content-Type"); ct != "" {
		out = append(out, &kbridgev1.Header{Key: "content-type", Value: []byte(ct)})
	}
	for _, name := range names {
		lower := strings.ToLower(name)
		var key string
		switch {
		case lower == kafkaHeaderPrefix:
			return nil, fmt.Errorf("header %s names no record header: write Kafka-Header-<name>", name)
		case strings.HasPrefix(lower, kafkaHeaderPrefix):
			k, err := url.PathUnescape(lower[len(kafkaHeaderPrefix):])
			if err != nil {
				return nil, fmt.Errorf("header %s: invalid percent-encoding in the name", name)
			}
			key = k
		case strings.HasPrefix(lower, "ce-") && len(lower) > len("ce-"):
			key = "ce_" + lower[len("ce-"):]
		default:
			continue
		}
		for _, v := range h[name] {
			dv, err := url.PathUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("header %s: invalid percent-encoding in the value (write a literal %% as %%25)", name)
			}
			out = append(out, &kbridgev1.Header{Key: key, Value: []byte(dv)})
		}
	}
	return out, nil
}
