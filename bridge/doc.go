// Package bridge is kbridge's Kafka side: the shared producer behind the
// publish API, the Kafka client settings, the health monitor that decides
// readiness, and webhook delivery (Consumer: a group member per
// subscription, a worker per assigned partition and its lanes, the commit
// Tracker, the webhook client and request, the batcher and its CloudEvents
// events, the retry policy and the DeadLetterWriter).
// It knows nothing of gRPC; the server package turns its typed errors into
// status codes.
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
//   - A record Kafka rejects fails alone: Kafka refuses a whole batch for
//     one bad record, so its batch-mates are sent again (isolate.go) rather
//     than failed with it.
//   - Every record has a bounded life: the client fails it after the publish
//     timeout instead of buffering it forever while Kafka is unreachable.
//
// The delivery guarantees, in plain words:
//   - An offset is committed only when the app answered 2xx for that record
//     and for every record fetched before it in its partition, or the record
//     was written to the dead-letter topic and Kafka acknowledged the write.
//     The Tracker holds this: the offset it offers never passes a fetched
//     record that has not finished, and never moves backwards. It is the
//     offset of the first unfinished record in fetch order, not the last
//     done offset plus one: offsets have gaps (compaction, transaction
//     markers, aborted records), and a tracker waiting for N+1 after N
//     would stall.
//   - Only the Tracker's point is committed (franz-go's marks never rewind),
//     and only for partitions this member owns at that moment: commits and
//     the revoke and lost paths share one lock. A lost partition commits
//     nothing.
//   - No record is skipped: a record whose attempts are exhausted goes to
//     the dead-letter topic or blocks its partition; a record cut short by
//     a rebalance or shutdown stays unfinished and is delivered again by the
//     partition's next owner, with the same Idempotency-Key.
//   - Order holds in every mode: records of one lane (a partition with
//     ordering partition, a key with ordering key) are delivered one run
//     after another, and with batch delivery a failed event fails the
//     later events of its lane in the batch, which go again behind it.
//   - A batch never blames a bystander: a failure of a whole batch request
//     counts against no record, and the records go alone until the one at
//     fault is found; only a record's own failures exhaust it.
//   - Memory is bounded: a partition's fetches pause while its worker has a
//     full queue.
package bridge
