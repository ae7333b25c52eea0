//! Tunables of the adapter. Defaults suit a cluster on a LAN; tests shrink the timeouts.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Time allowed to open a TCP connection (and AUTH) to a node.
    pub connect_timeout: Duration,
    /// Time allowed for any one reply (a pipeline counts as one).
    pub response_timeout: Duration,
    /// `requirepass` of the nodes; sent as AUTH on connect and inside `MIGRATE`.
    pub password: Option<String>,
    /// Keys fetched with `GETKEYSINSLOT` and moved by one `MIGRATE ... KEYS`.
    pub migrate_batch: usize,
    /// Slots handled together in one *round*: their `SETSLOT IMPORTING`, `MIGRATING` and
    /// `NODE` commands each travel in one pipeline, and their keys move in pipelined
    /// `MIGRATE`s. Redis persists `nodes.conf` (with fsync) once per event-loop turn, so
    /// pipelining SETSLOTs saves one fsync per slot: the main cost when slots hold few keys.
    pub slots_per_round: usize,
    /// Rounds of one (source, target) pair in flight at the same time.
    pub slot_concurrency: usize,
    /// (source, target) pairs one node takes part in at the same time, as either end.
    pub pairs_per_node: usize,
    /// Keys moved by one pipelined round trip of `MIGRATE`s (across the slots of a round);
    /// bounds how long the source is busy with one request.
    pub keys_per_round_trip: usize,
    /// The `timeout` argument of `MIGRATE` (how long the source waits on the target).
    pub migrate_timeout: Duration,
    /// `GETKEYSINSLOT`/`MIGRATE` rounds allowed per slot without progress before giving up.
    pub max_idle_rounds: u32,
    /// How often migration progress is logged.
    pub progress_log_interval: Duration,
    /// How long a hand-over waits for its target to hear of the source's config epoch before
    /// the slots are left open for the next pass (see `RedisAdapter::wait_target_outranks`).
    pub epoch_wait: Duration,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            password: None,
            migrate_batch: 1000,
            slots_per_round: 64,
            slot_concurrency: 4,
            pairs_per_node: 8,
            keys_per_round_trip: 10_000,
            migrate_timeout: Duration::from_secs(4),
            max_idle_rounds: 20,
            progress_log_interval: Duration::from_secs(5),
            // Gossip carries an epoch within a second or two, even at 100 masters; longer
            // means the pair cannot talk.
            epoch_wait: Duration::from_secs(10),
        }
    }
}
