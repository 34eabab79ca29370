// Package events owns the collector's NATS JetStream side: the SAAS stream and its subjects,
// the CloudEvents 1.0 envelope with deterministic ids (used as Nats-Msg-Id so the server drops
// replays), a bounded asynchronous publisher that reports what was not acknowledged, the payload
// shapes of the contract, the durable state kept in JetStream KV (connections with sealed
// secrets, checkpoints, alert state, leases), and an embedded NATS server for single-node runs.
package events
