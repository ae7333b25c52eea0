//! The simulated world: members, the network between them, the clock, and what an observer
//! would report about it.

use crate::node::{Member, NodeKey, PORT, RedisNode};
use crate::rng::Rng;
use engine::{
    Addr, ClusterNode, LinkState, Member as ObservedMember, NodeFlags, NodeState, Observation,
    OpenSlot, Ordinal, View, ViewInterner,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub struct Cluster {
    pub now_ms: u64,
    pub node_timeout_ms: u64,
    pub members: BTreeMap<Ordinal, Member>,
    /// Interned node ids; a `NodeKey` indexes this table. Ids are never reused.
    ids: Vec<String>,
    /// Members cut off from everyone else (they still talk among themselves). The operator
    /// is outside the partition and reaches everybody.
    pub isolated: BTreeSet<Ordinal>,
    /// The simulated client sits on the side of the partition that holds the majority of the
    /// masters. Otherwise acknowledged writes are lost by Redis itself (the minority master
    /// accepts writes until `cluster-node-timeout`), which no operator can prevent.
    pub client_with_isolated: bool,
    pub rng: Rng,
    /// Nodes that imported a slot during the effect being applied: they broadcast their new
    /// config once it finishes (Redis does per slot, within milliseconds; no fault can fall
    /// between the slots of one effect, so once per effect is the same and far cheaper).
    pub(crate) pending_pongs: BTreeSet<Ordinal>,
    /// Keys an elected replica did not have while its old master, still running (cut off),
    /// did: Redis' asynchronous replication loses them when that master rejoins as a replica.
    /// The runner counts them as lost to the faults, not to the operator.
    pub promotion_gaps: BTreeSet<u64>,
    /// Migration sources replaced by their replica while stalled, since the runner last took
    /// the count (`Victim::StalledSource`).
    pub(crate) stalled_sources: u64,
    /// The spec asks for persistence: a killed node keeps its dataset on its volume and
    /// loads it again when restarted (unless the volume is lost with `nodes.conf`).
    pub persistent: bool,
    /// Replication as Redis does it: every process starts with its replication gate shut
    /// (the engine opens it), and a replica whose master's process is gone follows the
    /// address it had and copies whatever runs there once that process's gate is open. Off
    /// (the sweeps' default): gates start open, and a replica follows its master's id and
    /// links to nothing while that process is down.
    pub replicate_by_address: bool,
    /// Keys moved per `MIGRATE … KEYS` batch (smaller batches widen the window in which a
    /// migration can be caught half-way).
    pub migrate_batch: usize,
    /// The spec asks for at least one replica per master: keys the operator migrates to a
    /// master with no synced replica are then exposed by the operator (see `exposed`).
    pub exposure_wanted: bool,
    /// Keys that arrived by migration (`MIGRATE`, `MoveStrayKeys`) on a master that had no
    /// synced replica while the spec asked for replicas, by the node holding them. A key
    /// leaves this ledger once a replica of that node holds it, or once it is no longer on
    /// that node. Losing such a key is the operator's doing, not the fault's: it chose to
    /// put the only copy on a node nothing backed up.
    pub exposed: BTreeMap<u64, NodeKey>,
    /// The configuration fingerprint a member started now runs with (the spec's, as a
    /// backend would compute it); each member keeps the one it was started with.
    pub fingerprint: Option<String>,
    /// Which server's rules the nodes follow where Redis versions differ.
    pub server: ServerModel,
}

/// The server rules the model follows where versions differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerModel {
    /// Valkey 8 and Redis 7.4+: a change of a slot's owner drops the slot's "owner stopped
    /// claiming it" mark, so the executor tells the source of a move first (see
    /// `docs/reliability.md`).
    #[default]
    Valkey8,
    /// Redis 7.0-7.2: the mark survives `SETSLOT NODE`, so a slot a node just took still
    /// counts as unclaimed there and any later claim wins it; the executor tells the target
    /// first, once the target's epoch will land above its source's (the epoch gate).
    Redis70,
}

impl Cluster {
    pub fn new(seed: u64, node_timeout_ms: u64) -> Self {
        Self {
            // A plausible epoch-ms start, so traces look like real ones.
            now_ms: 1_700_000_000_000,
            node_timeout_ms,
            members: BTreeMap::new(),
            ids: Vec::new(),
            isolated: BTreeSet::new(),
            client_with_isolated: false,
            rng: Rng::new(seed),
            pending_pongs: BTreeSet::new(),
            promotion_gaps: BTreeSet::new(),
            stalled_sources: 0,
            persistent: false,
            replicate_by_address: false,
            migrate_batch: crate::apply::MIGRATE_BATCH,
            exposure_wanted: false,
            exposed: BTreeMap::new(),
            fingerprint: None,
            server: ServerModel::default(),
        }
    }

    /// A fresh node with a random id.
    pub fn new_node(&mut self) -> RedisNode {
        let id = self.rng.node_id();
        self.ids.push(id);
        let mut node = RedisNode::new((self.ids.len() - 1) as NodeKey);
        node.serves_replicas = !self.replicate_by_address;
        node.keeps_stale_marks = self.server == ServerModel::Redis70;
        node
    }

    /// The key of node `id`, interning it when it is new (a restored cluster keeps the ids
    /// a trace recorded).
    pub(crate) fn intern(&mut self, id: &str) -> NodeKey {
        if let Some(k) = self.key_of(id) {
            return k;
        }
        self.ids.push(id.to_string());
        (self.ids.len() - 1) as NodeKey
    }

    pub fn id(&self, key: NodeKey) -> &str {
        self.ids.get(key as usize).map_or("", String::as_str)
    }

    pub fn key_of(&self, id: &str) -> Option<NodeKey> {
        self.ids.iter().position(|i| i == id).map(|p| p as NodeKey)
    }

    /// The member currently running node `key` (running or not).
    pub fn ordinal_of(&self, key: NodeKey) -> Option<Ordinal> {
        self.members
            .values()
            .find(|m| m.node.key == key)
            .map(|m| m.ordinal)
    }

    /// The running member listening at `ip:port`.
    pub fn at_address(&self, ip: &str, port: u16) -> Option<Ordinal> {
        if port != PORT {
            return None;
        }
        self.members
            .values()
            .find(|m| m.running && m.ip() == ip)
            .map(|m| m.ordinal)
    }

    /// Whether two members can exchange packets now (both running, same side of a partition).
    pub fn can_talk(&self, a: Ordinal, b: Ordinal) -> bool {
        let up = |o: &Ordinal| self.members.get(o).is_some_and(|m| m.running);
        up(&a) && up(&b) && self.isolated.contains(&a) == self.isolated.contains(&b)
    }

    /// Whether the simulated client (on the majority side) reaches a member.
    pub fn client_reaches(&self, o: Ordinal) -> bool {
        self.members.get(&o).is_some_and(|m| m.running)
            && self.isolated.contains(&o) == self.client_with_isolated
    }

    /// Cuts `isolated` off from the rest; the client stays with the masters' majority.
    pub fn partition(&mut self, isolated: BTreeSet<Ordinal>) {
        let masters: Vec<Ordinal> = self
            .members
            .values()
            .filter(|m| m.running && m.node.is_master())
            .map(|m| m.ordinal)
            .collect();
        let inside = masters.iter().filter(|o| isolated.contains(o)).count();
        self.client_with_isolated = inside * 2 > masters.len();
        self.isolated = isolated;
    }

    pub fn heal(&mut self) {
        self.isolated.clear();
        self.client_with_isolated = false;
    }

    pub fn running(&self, o: Ordinal) -> bool {
        self.members.get(&o).is_some_and(|m| m.running)
    }

    pub fn ordinals(&self) -> Vec<Ordinal> {
        self.members.keys().copied().collect()
    }

    /// `cluster_state:ok` as node `o` computes it: every slot served by a master it does not
    /// flag as failed, and it reaches a majority of the serving masters.
    pub fn cluster_ok(&mut self, o: Ordinal) -> bool {
        let Some(m) = self.members.get_mut(&o) else {
            return false;
        };
        let n = &mut m.node;
        let me = n.key;
        let failed = |k: NodeKey, n: &RedisNode| k != me && n.peers.get(&k).is_none_or(|p| p.fail);
        let covered: u32 = n.claims().values().map(|r| engine::slots::count(r)).sum();
        if covered != u32::from(engine::SLOT_COUNT) {
            return false;
        }
        let owners: Vec<NodeKey> = n.claims().keys().copied().collect();
        if owners.iter().any(|k| failed(*k, n)) {
            return false;
        }
        let serving = n.serving_masters();
        let reachable = serving
            .iter()
            .filter(|k| **k == me || n.peers.get(k).is_some_and(|p| !p.pfail && !p.fail))
            .count();
        reachable * 2 > serving.len()
    }

    /// The member a replica's replication link reaches now, when they can talk and its
    /// replication gate is open: its master while that process runs (gossip keeps the
    /// address current), else whatever runs now at the address the master had.
    pub fn replication_source(&self, o: Ordinal) -> Option<Ordinal> {
        let m = self.members.get(&o).filter(|m| m.running)?;
        let mk = m.node.master?;
        let live = self.ordinal_of(mk).filter(|mo| self.running(*mo));
        let source = match live {
            Some(mo) => Some(mo),
            None if self.replicate_by_address => {
                self.at_address(m.node.master_ip.as_deref()?, PORT)
            }
            None => None,
        };
        source
            .filter(|so| *so != o && self.can_talk(o, *so))
            .filter(|so| self.members.get(so).is_some_and(|s| s.node.serves_replicas))
    }

    /// What a real observer would report now: views that list the same nodes alike share
    /// one base, as the Redis observer builds them.
    pub fn observe(&mut self) -> Observation {
        let ordinals = self.ordinals();
        let open = self.open_slots();
        let mut members = BTreeMap::new();
        let mut views = ViewInterner::default();
        for o in ordinals {
            let redis = if self.running(o) {
                Some(self.node_state(o, &open, &mut views))
            } else {
                None
            };
            let Some(m) = self.members.get(&o) else {
                continue;
            };
            members.insert(
                o,
                ObservedMember {
                    ordinal: o,
                    addr: Some(Addr::new(m.ip(), PORT)),
                    running: m.running || m.paused.is_some(),
                    host: Some(format!("sim-host-{o}")),
                    fingerprint: m.fingerprint.clone(),
                    redis,
                },
            );
        }
        // As the real observer: keys of slots no master claims are counted too, where a node
        // holds some.
        let unclaimed = engine::routed_but_unclaimed(
            members
                .values()
                .filter_map(|m: &ObservedMember| m.redis.as_ref()),
        );
        for slot in unclaimed.into_iter().filter(|s| !open.contains(s)) {
            for (o, m) in members.iter_mut() {
                let keys = self.members.get(o).map_or(0, |c| c.node.keys_in(slot));
                if let Some(state) = m.redis.as_mut().filter(|_| keys > 0) {
                    state.open_slot_keys.insert(slot, keys as u64);
                }
            }
        }
        Observation {
            now_ms: self.now_ms,
            members,
            ..Observation::default()
        }
    }

    /// Slots open (migrating or importing) on any running node.
    pub fn open_slots(&self) -> BTreeSet<u16> {
        self.members
            .values()
            .filter(|m| m.running)
            .flat_map(|m| m.node.migrating.keys().chain(m.node.importing.keys()))
            .copied()
            .collect()
    }

    /// Replicas of master `o` whose replication link is up: they receive every write and
    /// every migrated key the moment `o` does.
    pub fn synced_replicas(&self, o: Ordinal) -> Vec<Ordinal> {
        let Some(mk) = self.members.get(&o).map(|m| m.node.key) else {
            return Vec::new();
        };
        self.members
            .values()
            .filter(|r| r.running && r.node.master == Some(mk) && r.node.synced)
            .map(|r| r.ordinal)
            .filter(|r| self.can_talk(*r, o))
            .collect()
    }

    /// `CreateNode`: a new member, or a restart of a stopped one.
    pub fn create_or_restart(&mut self, o: Ordinal) {
        match self.members.get(&o) {
            // A paused process still exists: a backend finds it alive and starts nothing.
            Some(m) if m.running || m.paused.is_some() => {}
            Some(_) => self.restart(o),
            None => {
                let node = self.new_node();
                self.members.insert(
                    o,
                    Member {
                        ordinal: o,
                        running: true,
                        address_generation: 0,
                        has_nodes_conf: true,
                        fingerprint: self.fingerprint.clone(),
                        node,
                        paused: None,
                    },
                );
            }
        }
    }

    /// Starts a stopped member. With `nodes.conf` it keeps its id, view, slots and epochs, and
    /// its dataset only with persistence (the append-only file on the same volume); without
    /// `nodes.conf` (volume lost) it is a brand-new, empty node.
    pub fn restart(&mut self, o: Ordinal) {
        let (now, persistent) = (self.now_ms, self.persistent);
        let gate_open_at_start = !self.replicate_by_address;
        let fresh = match self.members.get(&o) {
            Some(m) if m.has_nodes_conf => None,
            Some(_) => Some(self.new_node()),
            None => return,
        };
        let Some(m) = self.members.get_mut(&o) else {
            return;
        };
        m.running = true;
        m.has_nodes_conf = true;
        m.fingerprint = self.fingerprint.clone();
        if let Some(node) = fresh {
            m.node = node;
            return;
        }
        let n = &mut m.node;
        if !persistent {
            n.flush();
        }
        // Redis loading an append-only file starts a new replication history either way.
        n.repl_offset = 0;
        n.synced = false;
        n.last_sync_ms = None;
        n.linked_since_master = false;
        n.new_replid();
        n.failover_at = None;
        n.election_ms = None;
        n.voted_for_master.clear();
        for p in n.peers.values_mut() {
            p.pfail = false;
            p.fail = false;
            p.last_pong_ms = now;
            p.failure_reports.clear();
        }
        n.seen.clear();
        n.not_claiming.clear();
        n.config = crate::node::start_config();
        n.serves_replicas = gate_open_at_start;
        n.touch();
    }

    /// SIGKILL of member `o`: the process stops at once. Its `nodes.conf` stays; its dataset
    /// survives only on a persistent volume (see `restart`).
    pub fn kill(&mut self, o: Ordinal) {
        if let Some(m) = self.members.get_mut(&o) {
            m.running = false;
            m.paused = None;
        }
    }

    /// SIGSTOP of member `o` until `until_step`.
    pub fn pause(&mut self, o: Ordinal, until_step: u32) {
        let now = self.now_ms;
        if let Some(m) = self.members.get_mut(&o).filter(|m| m.running) {
            m.running = false;
            m.paused = Some(crate::node::Pause {
                since_ms: now,
                until_step,
            });
        }
    }

    /// SIGCONT of every paused member due by `step` (all of them with `None`): each goes on
    /// where it stopped, with its memory, view and epochs, and hears what it missed.
    /// Returns the members resumed.
    pub fn resume(&mut self, step: Option<u32>) -> Vec<Ordinal> {
        let mut resumed = Vec::new();
        for m in self.members.values_mut() {
            if m.paused
                .is_some_and(|p| step.is_none_or(|s| s >= p.until_step))
            {
                m.paused = None;
                m.running = true;
                resumed.push(m.ordinal);
            }
        }
        resumed
    }

    /// Whether member `o` still has key `key` of `slot` somewhere it can come back from:
    /// in memory while running, on its volume when stopped with persistence.
    pub fn keeps(&self, o: Ordinal, slot: u16, key: u64) -> bool {
        self.members.get(&o).is_some_and(|m| {
            (m.running || m.paused.is_some() || (self.persistent && m.has_nodes_conf))
                && m.node.holds(slot, key)
        })
    }

    /// Records keys that just arrived on `to` from `from` by migration: exposed by the
    /// operator when `to` has no synced replica, the spec asks for one, and `from` had one (a
    /// move between two masters without replicas, as when a cluster without replicas is
    /// scaled in, leaves the keys as exposed as they were); otherwise no longer exposed.
    pub(crate) fn record_arrivals(&mut self, from: Ordinal, to: Ordinal, keys: &[u64]) {
        let Some(tk) = self.members.get(&to).map(|m| m.node.key) else {
            return;
        };
        let was_protected = !self.synced_replicas(from).is_empty();
        let exposed = self.exposure_wanted && was_protected && self.synced_replicas(to).is_empty();
        for k in keys {
            if exposed {
                self.exposed.insert(*k, tk);
            } else {
                self.exposed.remove(k);
            }
        }
    }

    /// Ends the exposure of keys a replica of their holder now has, or that left the holder
    /// (migrated on: the arrival elsewhere is judged there). Keys on a stopped holder stay
    /// exposed: they come back with it (persistence) or are lost with it.
    pub fn prune_exposure(&mut self, slot_of: impl Fn(u64) -> u16) {
        let exposed = std::mem::take(&mut self.exposed);
        for (key, holder) in exposed {
            let slot = slot_of(key);
            let Some(h) = self.members.values().find(|m| m.node.key == holder) else {
                continue; // the member was deleted or came back as a new node
            };
            if h.running && !h.node.holds(slot, key) {
                continue;
            }
            let backed_up = self.members.values().any(|r| {
                r.running
                    && r.node.master == Some(holder)
                    && r.node.synced
                    && r.node.holds(slot, key)
            });
            if !backed_up {
                self.exposed.insert(key, holder);
            }
        }
    }

    fn node_state(
        &mut self,
        o: Ordinal,
        open_anywhere: &BTreeSet<u16>,
        views: &mut ViewInterner,
    ) -> NodeState {
        let cluster_ok = self.cluster_ok(o);
        let ids = self.ids.clone();
        let id = |k: NodeKey| ids.get(k as usize).cloned().unwrap_or_default();
        let master_link_up = self.members.get(&o).is_some_and(|m| m.node.synced)
            && self.replication_source(o).is_some();
        let Some(m) = self.members.get_mut(&o) else {
            return empty_state();
        };
        let ip = m.ip();
        let n = &mut m.node;
        let claims = n.claims().clone();
        let mut nodes = Vec::with_capacity(n.peers.len() + 1);
        let mut open: Vec<OpenSlot> = n
            .migrating
            .iter()
            .map(|(s, t)| OpenSlot::Migrating {
                slot: *s,
                target: id(*t),
            })
            .chain(n.importing.iter().map(|(s, src)| OpenSlot::Importing {
                slot: *s,
                source: id(*src),
            }))
            .collect();
        open.sort();
        nodes.push(ClusterNode {
            id: id(n.key),
            addr: Some(Addr::new(ip, PORT)),
            hostname: None,
            flags: NodeFlags {
                myself: true,
                master: n.is_master(),
                replica: !n.is_master(),
                ..NodeFlags::default()
            },
            master_id: n.master.map(id),
            ping_sent_ms: 0,
            pong_recv_ms: 0,
            config_epoch: n.config_epoch,
            link: LinkState::Connected,
            slots: claims.get(&n.key).cloned().unwrap_or_default(),
            open_slots: open,
        });
        for (k, p) in &n.peers {
            nodes.push(ClusterNode {
                id: id(*k),
                addr: Some(Addr::new(p.ip.clone(), p.port)),
                hostname: None,
                flags: NodeFlags {
                    master: p.master.is_none(),
                    replica: p.master.is_some(),
                    pfail: p.pfail && !p.fail,
                    fail: p.fail,
                    ..NodeFlags::default()
                },
                master_id: p.master.map(id),
                ping_sent_ms: 0,
                pong_recv_ms: p.last_pong_ms,
                config_epoch: p.config_epoch,
                link: if p.pfail || p.fail {
                    LinkState::Disconnected
                } else {
                    LinkState::Connected
                },
                slots: claims.get(k).cloned().unwrap_or_default(),
                open_slots: Vec::new(),
            });
        }
        // `COUNTKEYSINSLOT` of every slot open anywhere in the cluster, as the real observer
        // reports it: a node's own open slots always, other open slots only where the node
        // holds keys of them (masters and replicas alike), to keep observations small.
        let open_slot_keys = open_anywhere
            .iter()
            .filter(|s| {
                n.keys_in(**s) > 0 || n.migrating.contains_key(s) || n.importing.contains_key(s)
            })
            .map(|s| (*s, n.keys_in(*s) as u64))
            .collect();
        NodeState {
            id: id(n.key),
            nodes: views.view(nodes),
            cluster_ok,
            current_epoch: n.current_epoch,
            repl_offset: n.repl_offset,
            master_link_up,
            keys: n.key_count(),
            open_slot_keys,
            ever_linked: n.is_master() || n.synced || n.linked_since_master,
            serves_replicas: n.serves_replicas,
            replicates_from: n
                .master
                .and(n.master_ip.clone())
                .map(|ip| Addr::new(ip, PORT)),
            replid: Some(format!("{:016x}", n.replid)),
            // The simulator's executor ends every move at the source first without the mark
            // Redis 7.0-7.2 keeps, but it plans as those versions do: small moves.
            hands_over_source_first: false,
            config: {
                let mut c = n.config.clone();
                let persists = if self.persistent { "yes" } else { "no" };
                c.insert(
                    engine::desired::PERSISTENCE_SETTING.to_string(),
                    persists.to_string(),
                );
                c
            },
        }
    }
}

fn empty_state() -> NodeState {
    NodeState {
        id: String::new(),
        nodes: View::default(),
        cluster_ok: false,
        current_epoch: 0,
        repl_offset: 0,
        master_link_up: false,
        keys: 0,
        open_slot_keys: BTreeMap::new(),
        ever_linked: true,
        serves_replicas: true,
        replicates_from: None,
        hands_over_source_first: false,
        replid: None,
        config: Default::default(),
    }
}
