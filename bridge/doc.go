// Package bridge is kbridge's Kafka side: the shared producer behind the
// publish API, the Kafka client settings, and the health monitor that decides
// readiness. It knows nothing of gRPC or HTTP; the server package turns its
// typed errors into status codes.
//
// The publish guarantees, in plain words:
//   - A record is reported written only when Kafka acknowledged it (acks=all
//     by default, with an idempotent producer, so retries inside the client
//     never duplicate it).
//   - A request that fails validation writes nothing: every check that can be
//     made before producing (topic name, record sizes, explicit partitions
//     against the topic's partition count, topic existence) is made for all
//     records before the first one is handed to the client.
//   - The produce runs detached from the caller's context. A caller that gives
//     up gets ErrDeadline ("outcome unknown") while its records go on, so one
//     impatient caller can never fail records that share a batch with others.
//   - Every record has a bounded life: the client fails it after the publish
//     timeout instead of buffering it forever while Kafka is unreachable.
package bridge
