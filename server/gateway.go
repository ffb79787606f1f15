package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kbridge/kbridge/bridge"
	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// NewGateway returns the REST API: the grpc-gateway routes generated from the
// .proto annotations plus the raw publish endpoint, all calling the gRPC
// server through conn so that one interceptor chain serves gRPC and REST.
//
// Request bodies are limited to maxRequestBytes: a larger declared body is
// answered 413 before it is read, a larger chunked body 400 once the limit is
// reached; never 429, which clients would retry.
func NewGateway(ctx context.Context, conn *grpc.ClientConn, maxRequestBytes int) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: strictJSON{&runtime.JSONPb{
				MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
				// Unknown fields are refused so that a typo ("vaule") is a
				// 400, not a record without a value.
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
			}},
		}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithErrorHandler(deadlineAwareError),
		// With X-HTTP-Method-Override on a form-encoded POST, the mux parses
		// (and so consumes) the body before routing; the raw endpoint would
		// then publish an empty value. Every route is a POST: nothing to
		// override.
		runtime.WithDisableHTTPMethodOverride(),
	)
	if err := kbridgev1.RegisterProducerServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}
	raw := &rawPublisher{mux: mux, client: kbridgev1.NewProducerServiceClient(conn), maxRequestBytes: maxRequestBytes}
	if err := mux.HandlePath(http.MethodPost, rawPublishPattern, raw.serve); err != nil {
		return nil, fmt.Errorf("register raw publish: %w", err)
	}
	return limitBody(mux, int64(maxRequestBytes)), nil
}

// incomingHeader forwards W3C trace context to gRPC metadata, where the
// service turns it into record headers, plus grpc-gateway's defaults.
func incomingHeader(key string) (string, bool) {
	switch k := strings.ToLower(key); k {
	case "traceparent", "tracestate":
		return k, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// routingError answers requests that match no route: 404 for an unknown
// path, 405 for a known path with another method (grpc-gateway's default
// would say 501).
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusNotFound:
		writeError(w, http.StatusNotFound, codes.NotFound, fmt.Sprintf("no such endpoint: %s %s (see /openapi.json on the admin port)", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, fmt.Sprintf("method %s is not allowed on %s: use POST", r.Method, r.URL.Path))
	default:
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
	}
}

// deadlineAwareError answers a call whose Grpc-Timeout has run out 504
// DEADLINE_EXCEEDED with a message that says so. Which side of the gateway's
// gRPC hop notices the deadline first is a race: when it is the server,
// grpc-go resets the stream and the error reads "stream terminated by
// RST_STREAM with error code: CANCEL", which tells a REST caller nothing.
func deadlineAwareError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		if st := status.Convert(err); st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "deadline") {
			err = statusFor(bridge.ErrDeadline, "").Err()
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

func limitBody(next http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
				fmt.Sprintf("request body is %d bytes; the limit is %d", r.ContentLength, limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// writeError writes an error in the gateway's JSON shape (google.rpc.Status)
// for answers the gateway itself cannot give.
func writeError(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int32  `json:"code"`
		Message string `json:"message"`
		Details []any  `json:"details"`
	}{int32(code), msg, []any{}})
}
