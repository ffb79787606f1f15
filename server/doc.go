// Package server turns network calls into bridge calls: the gRPC
// ProducerService, the REST gateway in front of it, the admin HTTP server
// (health, metrics, OpenAPI), the interceptors every call passes through, and
// the mapping from bridge errors to gRPC status codes (and so to HTTP
// statuses). It knows nothing of partitions' internals or offsets.
//
// The REST gateway talks to the gRPC server through an in-memory connection,
// so gRPC and REST calls go through one interceptor chain (recovery, logging,
// metrics) and one error mapping.
package server
