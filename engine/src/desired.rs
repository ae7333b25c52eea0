//! What the user asked for, reduced to what the engine needs. The operator shell builds it from
//! a validated `RedisCluster` spec; the engine does not depend on Kubernetes types.

use serde::{Deserialize, Serialize};

/// Default rebalance threshold, in percent of a master's share (redis-cli uses 2%).
pub const DEFAULT_THRESHOLD_PCT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desired {
    pub masters: u32,
    /// Replicas per master.
    pub replicas: u32,
    /// A master may deviate this many percent from its share before slots move.
    #[serde(default = "default_threshold")]
    pub rebalance_threshold_pct: u32,
    /// Cluster node timeout in ms (Redis' `cluster-node-timeout`); the engine waits a multiple
    /// of it for Redis' own failover before it steps in.
    #[serde(default = "default_node_timeout")]
    pub node_timeout_ms: u64,
    /// Nodes keep their dataset across a restart (append-only file on a volume). Without it a
    /// crashed node always comes back empty, which decides who must keep a slot's data.
    #[serde(default)]
    pub persistent: bool,
    /// The resource is being deleted.
    #[serde(default)]
    pub deleting: bool,
    /// Validation problems of the spec; when not empty the engine only reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Redis settings applied to running nodes with `CONFIG SET`, no restart (see
    /// [`LIVE_SETTINGS`]), by name, with values as `CONFIG GET` prints them (`maxmemory` in
    /// bytes).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub live_config: std::collections::BTreeMap<String, String>,
    /// The fingerprint of the configuration a member started now would run with (image,
    /// settings that need a restart), as the backend computes it. A running member whose
    /// reported fingerprint differs is replaced, one member at a time. `None`: never replace
    /// a member for its configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// Settings Redis 7 applies at once with `CONFIG SET`: a change of one of them is made on the
/// running nodes; the observer reads exactly these with `CONFIG GET`. Only settings whose
/// value `CONFIG GET` prints back as given (numbers, enums, yes/no; sizes in bytes) are here,
/// so a desired value and an observed one compare as text.
pub const LIVE_SETTINGS: &[&str] = &[
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "timeout",
    "tcp-keepalive",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "hz",
    "lazyfree-lazy-eviction",
    "lazyfree-lazy-expire",
    "lazyfree-lazy-user-del",
    "active-expire-effort",
];

/// The setting that says whether a node persists its dataset now (`CONFIG GET appendonly`),
/// observed beside [`LIVE_SETTINGS`] but never changed live: a master is restarted in place
/// only when it already persists. Redis started with `appendonly yes` over a directory with no
/// append-only file starts empty, even with an RDB snapshot there (Redis 7.0, checked), so
/// turning persistence on by a restart would empty it.
pub const PERSISTENCE_SETTING: &str = "appendonly";

fn default_threshold() -> u32 {
    DEFAULT_THRESHOLD_PCT
}

fn default_node_timeout() -> u64 {
    5000
}

impl Desired {
    /// No valid spec asks for more nodes: each needs a client port and a bus port 10000 above
    /// it, both below 65536. A trace that does is refused where it is read.
    pub const MAX_NODES: u32 = 65_535 - 10_000;

    pub fn new(masters: u32, replicas: u32) -> Self {
        Self {
            masters,
            replicas,
            rebalance_threshold_pct: DEFAULT_THRESHOLD_PCT,
            node_timeout_ms: default_node_timeout(),
            persistent: false,
            deleting: false,
            problems: Vec::new(),
            live_config: std::collections::BTreeMap::new(),
            fingerprint: None,
        }
    }

    /// Members the cluster should have: ordinals `0..total`.
    pub fn total_nodes(&self) -> u32 {
        self.masters.saturating_mul(self.replicas.saturating_add(1))
    }
}
