//! The observed world, as the backends report it. The engine trusts nothing else.
//!
//! A *member* is a place a Redis node runs (a Pod, a local process), named by its ordinal.
//! Its `redis` field is `None` when the node could not be reached this time.

use crate::slots::SlotRange;
pub use crate::view::{View, ViewInterner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Ordinal of a member: pod `NAME-<ordinal>`, local node on `basePort + ordinal`.
pub type Ordinal = u32;

/// Everything the engine knows about the world at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Milliseconds since the Unix epoch; the engine's only clock.
    pub now_ms: u64,
    /// Members that exist (created, possibly not running), by ordinal.
    pub members: BTreeMap<Ordinal, Member>,
    /// What the shell remembers of earlier passes (failing effects, data lost).
    #[serde(default, skip_serializing_if = "crate::history::History::is_empty")]
    pub history: crate::history::History,
}

impl Observation {
    /// Puts the members' views on shared bases where they list the same nodes alike (see
    /// [`View`]): what an observer does as it builds them, for observations that were read from
    /// a trace or edited. The views read exactly as before.
    pub fn share_views(&mut self) {
        let mut interner = ViewInterner::default();
        for state in self.members.values_mut().filter_map(|m| m.redis.as_mut()) {
            state.nodes = interner.share(std::mem::take(&mut state.nodes));
        }
    }
}

/// One place where a Redis node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub ordinal: Ordinal,
    /// Where clients reach it; `None` before it is scheduled. The bus port is `port + 10000`.
    pub addr: Option<Addr>,
    /// The process or container is running (a crashed one exists but is not running).
    pub running: bool,
    /// The host it runs on, used to keep replicas away from their master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The configuration the member runs with, as the backend fingerprints it (image,
    /// resources, settings that need a restart); `None` when the backend does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// What the Redis node itself says; `None` when it did not answer.
    pub redis: Option<NodeState>,
}

/// What a backend (local processes, Pods) reports about a member without asking Redis: the
/// one description every member provider returns and the observer turns into a [`Member`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub ordinal: Ordinal,
    pub addr: Option<Addr>,
    pub running: bool,
    /// Host or failure domain (node name, zone).
    pub host: Option<String>,
    /// Fingerprint of the configuration the member runs with.
    pub fingerprint: Option<String>,
}

impl MemberInfo {
    pub fn new(ordinal: Ordinal, addr: Option<Addr>, running: bool) -> Self {
        Self {
            ordinal,
            addr,
            running,
            host: None,
            fingerprint: None,
        }
    }

    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// The member as observed, with what its Redis node said (`None`: it did not answer).
    pub fn observed(self, redis: Option<NodeState>) -> Member {
        Member {
            ordinal: self.ordinal,
            addr: self.addr,
            running: self.running,
            host: self.host,
            fingerprint: self.fingerprint,
            redis,
        }
    }
}

/// A network address of a Redis node (client port).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Addr {
    pub ip: String,
    pub port: u16,
}

impl Addr {
    pub fn new(ip: impl Into<String>, port: u16) -> Self {
        Self {
            ip: ip.into(),
            port,
        }
    }

    /// Cluster bus port, always client port + 10000 here.
    pub fn bus_port(&self) -> u32 {
        u32::from(self.port) + 10000
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// The state a reachable Redis node reports about itself and the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// This node's cluster node id (40 hex chars).
    pub id: String,
    /// Its parsed `CLUSTER NODES`, `myself` included: a list that shares what it has in
    /// common with the other nodes' views (see [`View`]); it serializes as the plain list.
    pub nodes: View,
    /// `cluster_state:ok` in `CLUSTER INFO`.
    pub cluster_ok: bool,
    /// `cluster_current_epoch` in `CLUSTER INFO`.
    #[serde(default)]
    pub current_epoch: u64,
    /// Replication offset (`master_repl_offset` / `slave_repl_offset`).
    #[serde(default)]
    pub repl_offset: u64,
    /// For a replica: `master_link_status:up`.
    #[serde(default)]
    pub master_link_up: bool,
    /// Keys held by this node (`DBSIZE`).
    pub keys: u64,
    /// `COUNTKEYSINSLOT` for each slot this node has open (migrating or importing), and, when
    /// not zero, for each slot open on any other node: the keys of an interrupted move can sit
    /// on a node with no marker (the replica of a target that died holds what had moved).
    #[serde(default, deserialize_with = "crate::slots::checked_slot_map")]
    pub open_slot_keys: BTreeMap<u16, u64>,
    /// For a replica: its replication link was up at least once since it last was a master or
    /// started (Redis reports `master_link_down_since_seconds:-1` until then). One that never
    /// linked holds only what it had as a master, whatever its offset says: nothing, or, for a
    /// demoted master, its own older copy. A replica moved to another master keeps `true`
    /// (Redis counts from the old link's loss). Traces written before this field read as `true`.
    #[serde(default = "linked_by_default")]
    pub ever_linked: bool,
    /// Redis' replication id (`master_replid`): the stream this node's dataset follows. Two
    /// nodes with the same id hold (a prefix of) the same history. Absent in older traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replid: Option<String>,
    /// The live-settable settings ([`crate::desired::LIVE_SETTINGS`]) and
    /// [`crate::desired::PERSISTENCE_SETTING`] as `CONFIG GET` prints them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Replicas may sync from this node: its replication gate is open (see
    /// [`crate::replication_gate`]). Every process starts with it closed. Traces written
    /// before the gate existed read as open.
    #[serde(default = "linked_by_default")]
    pub serves_replicas: bool,
    /// For a replica: the address its replication link connects to (`master_host` and
    /// `master_port` in `INFO replication`). Redis follows this address, not the node id its
    /// cluster view names, so a new process there is what the replica would copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicates_from: Option<Addr>,
    /// The server may end a slot's move by telling the source the new owner before the
    /// target (Valkey 8 and later, Redis 7.4 and later: a node that takes a slot forgets that
    /// its previous owner stopped claiming it). There a move of many slots puts nothing more
    /// at risk than a move of one, so the planner gives each donor few receivers; elsewhere
    /// (Redis 7.0-7.2, and traces written before this field) it keeps moves small.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hands_over_source_first: bool,
}

fn linked_by_default() -> bool {
    true
}

impl NodeState {
    /// This node's own entry in its `CLUSTER NODES` output.
    pub fn myself(&self) -> Option<&ClusterNode> {
        self.nodes.myself()
    }

    /// The entry for `id` as this node sees it.
    pub fn view_of(&self, id: &str) -> Option<&ClusterNode> {
        self.nodes.view_of(id)
    }
}

/// Flags of a `CLUSTER NODES` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFlags {
    pub myself: bool,
    pub master: bool,
    pub replica: bool,
    pub pfail: bool,
    pub fail: bool,
    pub handshake: bool,
    pub noaddr: bool,
    pub nofailover: bool,
}

/// Whether the cluster bus link to a node is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkState {
    Connected,
    Disconnected,
}

/// A slot that is being moved, as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpenSlot {
    /// `[slot->-target]`: this node is sending the slot's keys to `target`.
    Migrating {
        #[serde(deserialize_with = "crate::slots::checked_slot")]
        slot: u16,
        target: String,
    },
    /// `[slot-<-source]`: this node is receiving the slot's keys from `source`.
    Importing {
        #[serde(deserialize_with = "crate::slots::checked_slot")]
        slot: u16,
        source: String,
    },
}

impl OpenSlot {
    pub fn slot(&self) -> u16 {
        match self {
            OpenSlot::Migrating { slot, .. } | OpenSlot::Importing { slot, .. } => *slot,
        }
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub id: String,
    /// `None` for a node with no known address (`:0`, `noaddr`).
    pub addr: Option<Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub flags: NodeFlags,
    /// Master id for a replica; `None` for a master.
    pub master_id: Option<String>,
    #[serde(default)]
    pub ping_sent_ms: u64,
    #[serde(default)]
    pub pong_recv_ms: u64,
    pub config_epoch: u64,
    pub link: LinkState,
    /// Slots this node serves, as the observer believes.
    pub slots: Vec<SlotRange>,
    /// Open slots, only ever shown on the `myself` line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_slots: Vec<OpenSlot>,
}

impl ClusterNode {
    /// The one definition of a master: a node that names no master and whose flags do not
    /// say replica (a replica whose master is unknown still has the flag).
    pub fn is_master(&self) -> bool {
        self.master_id.is_none() && !self.flags.replica
    }

    pub fn is_failed(&self) -> bool {
        self.flags.fail
    }

    pub fn slot_count(&self) -> u32 {
        crate::slots::count(&self.slots)
    }
}
