// Package bridge is kbridge's Kafka side: the shared producer behind the
// publish API, the Kafka client settings, the health monitor that decides
// readiness, and the building blocks of webhook delivery (the commit
// tracker, the webhook request). It knows nothing of gRPC or HTTP; the server package turns its
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
//
// The delivery guarantee (Tracker, the first building block of webhook
// delivery): the offset offered for commit never passes a record that was
// fetched but has not finished (answered 2xx by the app, or durably written
// to the dead-letter topic), and it never moves backwards. It is the offset
// of the first unfinished record in fetch order, not "last done + 1":
// offsets have gaps (compaction, transaction markers, aborted records), and
// a tracker waiting for N+1 after N would stall at the first gap.
package bridge
