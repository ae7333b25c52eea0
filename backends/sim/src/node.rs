//! One Redis node as the simulator holds it: its identity, its own view of the cluster (what
//! `nodes.conf` would persist), and its in-memory dataset (what a restart loses).
//!
//! Node ids are interned as `NodeKey`s by the cluster; strings appear only at the edges.

use engine::SlotRange;
use std::collections::{BTreeMap, BTreeSet};

/// Interned node id (index into the cluster's id table).
pub type NodeKey = u32;
/// "No owner" in a slot table.
pub const NONE: NodeKey = u32::MAX;
pub const SLOTS: usize = engine::SLOT_COUNT as usize;

/// What one node believes about another.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: String,
    pub port: u16,
    /// `None`: a master.
    pub master: Option<NodeKey>,
    pub config_epoch: u64,
    pub last_pong_ms: u64,
    pub pfail: bool,
    pub fail: bool,
    pub fail_since_ms: u64,
    /// Masters that reported this node as failing, with the time of the report.
    pub failure_reports: BTreeMap<NodeKey, u64>,
}

#[derive(Debug, Clone)]
pub struct RedisNode {
    pub key: NodeKey,
    /// `None` while a master; the master's key while a replica.
    pub master: Option<NodeKey>,
    pub config_epoch: u64,
    pub current_epoch: u64,
    /// Highest epoch this master voted in (one vote per epoch, as in Redis).
    pub last_vote_epoch: u64,
    /// When this master last voted for a replica of each master (Redis' `voted_time`, kept
    /// in memory only): it votes for another replica of that master only 2 x node timeout
    /// later, so two replicas of one master are never both elected.
    pub voted_for_master: BTreeMap<NodeKey, u64>,
    pub peers: BTreeMap<NodeKey, Peer>,
    /// The slot table: owner of each slot in this node's view.
    pub owners: Vec<NodeKey>,
    pub migrating: BTreeMap<u16, NodeKey>,
    pub importing: BTreeMap<u16, NodeKey>,
    /// The dataset: key ids per slot. Lost on restart.
    pub keys: BTreeMap<u16, BTreeSet<u64>>,
    pub repl_offset: u64,
    /// A replica whose link to its master is up and whose dataset mirrors it.
    pub synced: bool,
    /// Last time the replication link was up (`None`: never since start), for the data-age
    /// check that stops a stale replica from failing over on its own.
    pub last_sync_ms: Option<u64>,
    /// Redis' `repl_down_since != 0`: the replication link was up at least once since this
    /// node last was a master or started. Moving to another master does not clear it.
    pub linked_since_master: bool,
    /// Redis' replication id: the stream this node's dataset follows. A master starts a new
    /// one when it starts or is promoted; a replica takes its master's with every sync.
    pub replid: u64,
    /// When this replica will start an election for its failed master.
    pub failover_at: Option<u64>,
    /// When this replica last started an election, forced or its own (Redis'
    /// `failover_auth_time`): it starts no other within its retry time of that one.
    pub election_ms: Option<u64>,
    /// Bumped whenever anything a peer learns from this node's header changes.
    pub version: u64,
    /// Version of each peer's header last merged, to skip unchanged headers.
    pub seen: BTreeMap<NodeKey, u64>,
    /// Forgotten ids gossip may not re-add before the given time (`CLUSTER FORGET`'s 60 s).
    pub blacklist: BTreeMap<NodeKey, u64>,
    /// The live-settable settings (`CONFIG GET`), from [`start_config`] at every start: `CONFIG
    /// SET` does not survive a restart.
    pub config: BTreeMap<String, String>,
    /// The replication gate (`engine::replication_gate`): replicas may sync from this process.
    /// Shut at every start; only `AllowReplicas` opens it.
    pub serves_replicas: bool,
    /// For a replica: the IP its replication link connects to. Redis follows the address
    /// gossip last gave its master, not the id: a new process there is what it copies.
    pub master_ip: Option<String>,
    /// Redis' `owner_not_claiming_slot`: slots whose owner in this node's table stopped
    /// claiming them in its own header. Such a slot counts as unclaimed: any claim wins it,
    /// whatever its epoch. In memory only.
    pub not_claiming: BTreeSet<u16>,
    /// Redis 7.0-7.2 ([`crate::ServerModel::Redis70`]): a change of a slot's owner by a
    /// command (`SETSLOT NODE`) keeps its mark, so a slot a node just took still counts as
    /// unclaimed there. Redis 7.4+ and Valkey 8 drop the mark with every change of owner.
    pub keeps_stale_marks: bool,
    claims_cache: Option<BTreeMap<NodeKey, Vec<SlotRange>>>,
}

/// The value every live setting has when a simulated node starts.
pub fn start_config() -> BTreeMap<String, String> {
    engine::desired::LIVE_SETTINGS
        .iter()
        .map(|name| ((*name).to_string(), "default".to_string()))
        .collect()
}

impl RedisNode {
    pub fn new(key: NodeKey) -> Self {
        Self {
            key,
            master: None,
            config_epoch: 0,
            current_epoch: 0,
            last_vote_epoch: 0,
            voted_for_master: BTreeMap::new(),
            peers: BTreeMap::new(),
            owners: vec![NONE; SLOTS],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            keys: BTreeMap::new(),
            repl_offset: 0,
            synced: false,
            last_sync_ms: None,
            linked_since_master: false,
            replid: u64::from(key) << 32,
            failover_at: None,
            election_ms: None,
            version: 1,
            seen: BTreeMap::new(),
            blacklist: BTreeMap::new(),
            config: start_config(),
            serves_replicas: false,
            master_ip: None,
            not_claiming: BTreeSet::new(),
            keeps_stale_marks: false,
            claims_cache: None,
        }
    }

    pub fn is_master(&self) -> bool {
        self.master.is_none()
    }

    /// Marks the header (role, epochs, known nodes) as changed, so peers merge it again.
    pub fn touch(&mut self) {
        self.version += 1;
    }

    /// Importing markers changed: a claim skipped because its slot was being imported must be
    /// weighed again with the next header (Redis compares every header with its table).
    pub fn markers_changed(&mut self) {
        self.version += 1;
        self.seen.clear();
    }

    /// The slot table changed: cached ranges are stale, and every peer's next header must be
    /// merged again (Redis merges the full slot bitmap of every ping; we skip unchanged ones).
    fn table_changed(&mut self) {
        self.version += 1;
        self.claims_cache = None;
        self.seen.clear();
    }

    pub fn owner(&self, slot: u16) -> NodeKey {
        self.owners.get(usize::from(slot)).copied().unwrap_or(NONE)
    }

    pub fn set_owner(&mut self, slot: u16, owner: NodeKey) {
        if let Some(o) = self.owners.get_mut(usize::from(slot))
            && *o != owner
        {
            *o = owner;
            if !self.keeps_stale_marks {
                self.not_claiming.remove(&slot);
            }
            self.table_changed();
        }
    }

    /// Redis' `isSlotUnclaimed`: no owner, or an owner that stopped claiming it.
    pub fn unclaimed(&self, slot: u16) -> bool {
        self.owner(slot) == NONE || self.not_claiming.contains(&slot)
    }

    /// Config epoch of `key` as this node believes it.
    pub fn epoch_of(&self, key: NodeKey) -> u64 {
        if key == self.key {
            self.config_epoch
        } else {
            self.peers.get(&key).map_or(0, |p| p.config_epoch)
        }
    }

    /// Whether `key` is a master in this node's view.
    pub fn sees_master(&self, key: NodeKey) -> bool {
        if key == self.key {
            self.is_master()
        } else {
            self.peers.get(&key).is_some_and(|p| p.master.is_none())
        }
    }

    /// Slot ranges per owner, in this node's table (cached; the table changes rarely).
    pub fn claims(&mut self) -> &BTreeMap<NodeKey, Vec<SlotRange>> {
        self.claims_cache.get_or_insert_with(|| {
            // Run-length scan: one map lookup per run of equal owners, not per slot.
            let mut out: BTreeMap<NodeKey, Vec<SlotRange>> = BTreeMap::new();
            let mut start = 0usize;
            while start < self.owners.len() {
                let owner = self.owners[start];
                let len = self.owners[start..]
                    .iter()
                    .take_while(|o| **o == owner)
                    .count();
                if owner != NONE {
                    out.entry(owner)
                        .or_default()
                        .push(SlotRange::new(start as u16, (start + len - 1) as u16));
                }
                start += len;
            }
            out
        })
    }

    pub fn slots_of(&mut self, key: NodeKey) -> Vec<SlotRange> {
        self.claims().get(&key).cloned().unwrap_or_default()
    }

    pub fn slot_count_of(&mut self, key: NodeKey) -> u32 {
        self.claims()
            .get(&key)
            .map_or(0, |r| engine::slots::count(r))
    }

    pub fn keys_in(&self, slot: u16) -> usize {
        self.keys.get(&slot).map_or(0, BTreeSet::len)
    }

    pub fn key_count(&self) -> u64 {
        self.keys.values().map(|s| s.len() as u64).sum()
    }

    pub fn holds(&self, slot: u16, key: u64) -> bool {
        self.keys.get(&slot).is_some_and(|s| s.contains(&key))
    }

    /// Masters that serve at least one slot, in this node's view (Redis' `cluster->size`).
    pub fn serving_masters(&mut self) -> Vec<NodeKey> {
        let me = self.key;
        let mine = self.is_master();
        let peers: Vec<(NodeKey, bool)> = self
            .peers
            .iter()
            .map(|(k, p)| (*k, p.master.is_none()))
            .collect();
        let claims = self.claims();
        let mut out: Vec<NodeKey> = peers
            .into_iter()
            .filter(|(k, m)| *m && claims.contains_key(k))
            .map(|(k, _)| k)
            .collect();
        if mine && claims.contains_key(&me) {
            out.push(me);
        }
        out.sort_unstable();
        out
    }

    /// Drops the dataset (restart without persistence, full resync, reset).
    /// A new replication id (promotion, restart), unique across the run: the node's key
    /// in the high bits, a counter in the low ones.
    pub fn new_replid(&mut self) {
        self.replid = (self.replid & !0xffff_ffff) | ((self.replid + 1) & 0xffff_ffff);
    }

    pub fn flush(&mut self) {
        self.keys.clear();
    }
}

/// A place a node runs: a Pod, a process.
#[derive(Debug, Clone)]
pub struct Member {
    pub ordinal: engine::Ordinal,
    pub running: bool,
    /// Bumped when the member moves to a new IP.
    pub address_generation: u32,
    /// The volume with `nodes.conf` survived; a restart keeps the node id and its view.
    pub has_nodes_conf: bool,
    /// The configuration fingerprint the process was started with (`Cluster::fingerprint`
    /// at its last start).
    pub fingerprint: Option<String>,
    pub node: RedisNode,
    /// SIGSTOP: the process exists, with its memory, but answers nobody (neither the operator
    /// nor its peers) and runs no cron. `running` is false meanwhile, so nothing reaches it;
    /// the observer still reports the member running (its process is there) and unanswering.
    pub paused: Option<Pause>,
}

/// A pause in progress (see `Member::paused`).
#[derive(Debug, Clone, Copy)]
pub struct Pause {
    pub since_ms: u64,
    pub until_step: u32,
}

impl Member {
    pub fn ip(&self) -> String {
        ip_for(self.ordinal, self.address_generation)
    }
}

/// Stable fake addresses, never connected to: `10.<generation>.<ordinal / 256>.<ordinal % 256>`.
pub fn ip_for(ordinal: engine::Ordinal, generation: u32) -> String {
    format!(
        "10.{}.{}.{}",
        generation % 256,
        (ordinal / 256) % 256,
        ordinal % 256
    )
}

/// Every simulated node listens on the default port (the IP tells them apart).
pub const PORT: u16 = 6379;
