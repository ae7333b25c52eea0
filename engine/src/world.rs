//! A consensus reading of one observation: who is who, who owns which slot, what is broken.
//! Everything the rules in `work.rs` ask about the world is answered here, once.

use crate::desired::Desired;
use crate::model::{Addr, ClusterNode, Member, NodeState, Observation, OpenSlot, Ordinal};
use crate::slots::SLOT_COUNT;
use crate::views::{BaseIndex, Consensus, Ids, Pos, ViewIndex};

mod agreement;
use agreement::distinct_bases;
mod replication;
use std::collections::{BTreeMap, BTreeSet};

/// What the cluster says about one node id, from the best source available: the node itself
/// when it answers, otherwise the freshest (highest config epoch) entry in the other views.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo<'a> {
    pub entry: &'a ClusterNode,
    /// The member running this node, when known.
    pub ordinal: Option<Ordinal>,
    /// The node answered this observation.
    pub reachable: bool,
    /// Some reachable node flags it `fail`.
    pub failed: bool,
    /// Latest `pong_recv` any view reports for it (ms since epoch).
    pub last_pong_ms: u64,
}

impl NodeInfo<'_> {
    pub fn is_master(&self) -> bool {
        self.entry.is_master()
    }
}

pub(crate) struct World<'a> {
    pub desired: &'a Desired,
    pub obs: &'a Observation,
    /// Members that answered, with their state.
    pub reachable: BTreeMap<Ordinal, (&'a Member, &'a Addr, &'a NodeState)>,
    /// Node id -> what the cluster knows of it.
    pub nodes: BTreeMap<&'a str, NodeInfo<'a>>,
    /// Member ordinal -> node id (reachable members, plus down members found by address).
    pub id_of: BTreeMap<Ordinal, &'a str>,
    /// Owner of every slot (index = slot), by highest config epoch among claims.
    pub owner: Vec<Option<&'a str>>,
    /// Every reachable node agrees with `owner` on every slot.
    pub slots_agreed: bool,
    /// Every id any view lists, numbered: the key of `views`.
    ids: Ids<'a>,
    /// Each distinct base of the views (shared by many, see [`crate::model::View`]), indexed
    /// by id number: the work per entry is done once per base.
    bases: Vec<BaseIndex<'a>>,
    /// Each reachable member's view: its base (an index into `bases`) and its own differences.
    views: BTreeMap<Ordinal, ViewIndex<'a>>,
    /// Slots per owning node id, derived once from `owner`.
    by_owner: BTreeMap<&'a str, Vec<u16>>,
    /// Memo of [`World::roles_agreed`], asked more than once per decision.
    roles_agreed: std::cell::OnceCell<bool>,
    /// Replica ids per master id, in id order (as `nodes` says who replicates whom).
    replicas: BTreeMap<&'a str, Vec<&'a str>>,
    /// Master ids that some reachable node names as its own master.
    attached: BTreeSet<&'a str>,
    /// Reachable synced replicas (see `has_synced_replica`) per master id, by ordinal.
    synced: BTreeMap<&'a str, Vec<Ordinal>>,
    /// Ids that a slot open on a reachable node names as its target or source.
    named_open: BTreeSet<&'a str>,
}

impl<'a> World<'a> {
    pub fn new(desired: &'a Desired, obs: &'a Observation) -> Self {
        // One pass over every entry of every distinct base: number the ids and note what the
        // rules ask of all views together; then each view's own differences (its own line,
        // usually alone) on top.
        let mut ids = Ids::default();
        let mut reachable = BTreeMap::new();
        let mut views = BTreeMap::new();
        let mut bases: Vec<BaseIndex> = Vec::new();
        // Base index by the base's address: looked up, never iterated.
        let mut base_of: BTreeMap<usize, usize> = BTreeMap::new();
        let mut published = Vec::new();
        for (ord, m) in &obs.members {
            let (true, Some(addr), Some(state)) = (m.running, m.addr.as_ref(), m.redis.as_ref())
            else {
                continue;
            };
            let b = *base_of.entry(state.nodes.base_id()).or_insert_with(|| {
                bases.push(BaseIndex::number(&state.nodes, &mut ids));
                published.push(false);
                bases.len() - 1
            });
            let view = ViewIndex::new(&state.nodes, b, &bases[b]);
            if view.me.is_none() {
                continue;
            }
            if !published[b] {
                bases[b].publish_listed(&mut ids);
                published[b] = true;
            }
            reachable.insert(*ord, (m, addr, state));
            views.insert(*ord, view);
        }
        for base in &mut bases {
            base.seal(ids.len());
        }

        let mut nodes: BTreeMap<&str, NodeInfo> = BTreeMap::new();
        let mut id_of = BTreeMap::new();
        // The node's own word first.
        let mut answered = vec![false; ids.len()];
        for (ord, view) in &views {
            if let Some(me) = view.me {
                id_of.insert(*ord, me.id.as_str());
                if let Some(n) = ids.get(&me.id) {
                    answered[n as usize] = true;
                }
                nodes.insert(
                    me.id.as_str(),
                    NodeInfo {
                        entry: me,
                        ordinal: Some(*ord),
                        reachable: true,
                        failed: false,
                        last_pong_ms: obs.now_ms,
                    },
                );
            }
        }
        // Then what the others say about nodes that did not answer, gathered per id number
        // in the order the views list them. Each base knows where its unanswered ids are (in a
        // settled cluster, nowhere), so only those entries of each view are read.
        for base in &mut bases {
            base.note_unanswered(&answered);
        }
        let mut others: Vec<Option<NodeInfo>> = vec![None; ids.len()];
        for view in views.values() {
            let base = &bases[view.base];
            for &p in &base.unanswered {
                let e = view.view.at(p);
                let n = base.number[p as usize];
                if e.flags.myself {
                    continue;
                }
                let info = others[n as usize].get_or_insert(NodeInfo {
                    entry: e,
                    ordinal: None,
                    reachable: false,
                    failed: false,
                    last_pong_ms: 0,
                });
                // The newest word wins; on a tie, a master's claim over a stale role (a
                // view can hear of a promotion through an UPDATE before the promoted
                // node's own header, and Redis prints a replica with its master's epoch).
                let rank = |e: &ClusterNode| {
                    let claims = e.is_master() && !e.slots.is_empty();
                    (e.config_epoch, claims)
                };
                if rank(e) > rank(info.entry) {
                    info.entry = e;
                }
                info.failed |= e.flags.fail;
                info.last_pong_ms = info.last_pong_ms.max(e.pong_recv_ms);
            }
        }
        for info in others.into_iter().flatten() {
            nodes.insert(info.entry.id.as_str(), info);
        }
        // A member that is down is recognised by the address the cluster knew it at. A
        // process restarted there as a new node leaves its old id listed at the same address:
        // the member runs the id heard from last (as `invariants::id_of` reads it).
        for (ord, m) in &obs.members {
            if reachable.contains_key(ord) {
                continue;
            }
            let Some(addr) = &m.addr else { continue };
            let found = nodes
                .iter()
                .filter(|(_, n)| !n.reachable && n.entry.addr.as_ref() == Some(addr))
                .max_by_key(|(id, n)| (n.last_pong_ms, std::cmp::Reverse(**id)))
                .map(|(id, _)| *id);
            if let Some(id) = found {
                id_of.insert(*ord, id);
                if let Some(n) = nodes.get_mut(id) {
                    n.ordinal = Some(*ord);
                }
            }
        }

        // Slot owners: the claim with the highest config epoch wins, as in Redis itself.
        let mut owner: Vec<Option<&str>> = vec![None; usize::from(SLOT_COUNT)];
        let mut epoch: Vec<u64> = vec![0; usize::from(SLOT_COUNT)];
        for (id, n) in &nodes {
            if !n.is_master() {
                continue;
            }
            for s in crate::slots::expand(&n.entry.slots) {
                let i = usize::from(s);
                if owner[i].is_none() || n.entry.config_epoch > epoch[i] {
                    owner[i] = Some(id);
                    epoch[i] = n.entry.config_epoch;
                }
            }
        }
        // Compare each view's slot map with the consensus run by run, not slot by slot: a
        // view of a large cluster is thousands of entries. Slots are a shared field, so views
        // on one base agree or not together: each base of a reachable view is checked once.
        let consensus = Consensus::new(&owner, &ids);
        let mut seen = vec![u32::MAX; ids.len()];
        let slots_agreed = distinct_bases(views.values())
            .into_iter()
            .all(|b| consensus.agrees(&bases[b], &mut seen, b as u32));

        let mut by_owner: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        // One map look-up per run of one owner, not per slot (16,384 look-ups would cost
        // more than the rest of a small cluster's decision).
        let mut start = 0;
        while start < owner.len() {
            let end = owner[start..]
                .iter()
                .position(|o| !same_owner(*o, owner[start]))
                .map_or(owner.len(), |n| start + n);
            if let Some(id) = owner[start] {
                by_owner
                    .entry(id)
                    .or_default()
                    .extend(start as u16..=(end - 1) as u16);
            }
            start = end;
        }
        let mut replicas: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, n) in &nodes {
            if let Some(m) = n.entry.master_id.as_deref() {
                replicas.entry(m).or_default().push(id);
            }
        }
        let mut attached = BTreeSet::new();
        let mut synced: BTreeMap<&str, Vec<Ordinal>> = BTreeMap::new();
        let mut named_open = BTreeSet::new();
        for (ord, (_, _, s)) in &reachable {
            let Some(me) = views.get(ord).and_then(|v| v.me) else {
                continue;
            };
            if let Some(m) = me.master_id.as_deref() {
                attached.insert(m);
                if s.master_link_up && s.repl_offset > 0 {
                    synced.entry(m).or_default().push(*ord);
                }
            }
            for o in &me.open_slots {
                named_open.insert(match o {
                    OpenSlot::Migrating { target, .. } => target.as_str(),
                    OpenSlot::Importing { source, .. } => source.as_str(),
                });
            }
        }
        Self {
            desired,
            obs,
            reachable,
            nodes,
            id_of,
            owner,
            slots_agreed,
            ids,
            bases,
            views,
            by_owner,
            roles_agreed: std::cell::OnceCell::new(),
            replicas,
            attached,
            synced,
            named_open,
        }
    }

    /// The numbers of the ids that some view lists (see [`World::known_in_views`]).
    pub fn numbers(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<Pos> {
        ids.into_iter().filter_map(|id| self.ids.get(id)).collect()
    }

    /// Member `ord`'s own line in its view, when it answered.
    pub fn me(&self, ord: Ordinal) -> Option<&'a ClusterNode> {
        self.views.get(&ord).and_then(|v| v.me)
    }

    /// Some view flags some node `fail` or `fail?`.
    pub fn any_failure_flag(&self) -> bool {
        self.views.values().any(|v| v.flags_failure)
    }

    pub fn total(&self) -> u32 {
        self.desired.total_nodes()
    }

    pub fn in_range(&self, ord: Ordinal) -> bool {
        ord < self.total()
    }

    /// Every member that should exist exists, runs and answers.
    pub fn all_in_range_reachable(&self) -> bool {
        (0..self.total()).all(|o| self.reachable.contains_key(&o))
    }

    /// Every member that exists answers (leaving ones included).
    pub fn all_members_reachable(&self) -> bool {
        self.obs
            .members
            .keys()
            .all(|o| self.reachable.contains_key(o))
    }

    /// Every member that does not answer returns with nothing: its process stopped and either
    /// nothing persists (it comes back empty) or it lies outside the desired range (the
    /// operator never starts it again). Never a paused or cut-off process, which returns as it
    /// was.
    pub fn unreachable_members_return_nothing(&self) -> bool {
        self.obs
            .members
            .iter()
            .filter(|(o, _)| !self.reachable.contains_key(o))
            .all(|(o, m)| !m.running && (!self.desired.persistent || !self.in_range(*o)))
    }

    /// How member `ord` sees node `id`.
    pub fn view(&self, ord: Ordinal, id: &str) -> Option<&'a ClusterNode> {
        let n = self.ids.get(id)?;
        let view = self.views.get(&ord)?;
        view.entry(&self.bases[view.base], n)
    }

    pub fn ordinal_of(&self, id: &str) -> Option<Ordinal> {
        self.nodes.get(id).and_then(|n| n.ordinal)
    }

    pub fn state(&self, ord: Ordinal) -> Option<&'a NodeState> {
        self.reachable.get(&ord).map(|(_, _, s)| *s)
    }

    /// Some view claims some slot, or some node knows another: a cluster already exists here.
    pub fn cluster_exists(&self) -> bool {
        self.owner.iter().any(Option::is_some) || self.views.values().any(|v| v.knows_another)
    }

    /// `id` owns at least one slot by consensus (not by one possibly stale view entry).
    pub fn owns_slots(&self, id: &str) -> bool {
        self.by_owner.contains_key(id)
    }

    /// Some view, however stale, still lists `id` as a master with slots.
    pub fn listed_with_slots(&self, id: &str) -> bool {
        self.ids
            .get(id)
            .is_some_and(|n| self.ids.listed.get(n as usize).copied().unwrap_or(false))
    }

    /// Slots per owning node id.
    pub fn slots_by_owner(&self) -> &BTreeMap<&'a str, Vec<u16>> {
        &self.by_owner
    }

    /// Slots that no entry of any view lists, whatever its role: only those were never
    /// assigned. A slot listed by a node in transition (just demoted, epochs colliding) is
    /// claimed, and assigning it again would create a second owner.
    pub fn unclaimed_slots(&self) -> Vec<u16> {
        // Normally every slot has an owner: skip the scan of every view's every range.
        if self.owner.iter().all(Option::is_some) {
            return Vec::new();
        }
        let mut listed = vec![false; usize::from(SLOT_COUNT)];
        for (_, _, state) in self.reachable.values() {
            for e in &state.nodes {
                for s in crate::slots::expand(&e.slots) {
                    listed[usize::from(s)] = true;
                }
            }
        }
        (0..SLOT_COUNT)
            .filter(|s| self.owner[usize::from(*s)].is_none() && !listed[usize::from(*s)])
            .collect()
    }

    /// `ord`'s view holds a handshake, not finished yet, with the node at `addr`.
    pub fn handshaking(&self, ord: Ordinal, addr: &Addr) -> bool {
        self.views
            .get(&ord)
            .is_some_and(|v| self.bases[v.base].handshakes.contains(addr))
    }

    /// Some other member that `anchor` knows has met `ord`, or is meeting it (a handshake
    /// under way in either direction): gossip between them will introduce `ord` to `anchor`.
    /// Handshakes expire after a node timeout, so this never waits forever.
    pub fn known_through_peer(&self, anchor: Ordinal, ord: Ordinal) -> bool {
        let (Some(id), Some((_, addr, _))) = (self.id_of.get(&ord), self.reachable.get(&ord))
        else {
            return false;
        };
        self.reachable.iter().any(|(&peer, (_, peer_addr, _))| {
            peer != anchor
                && peer != ord
                && self.in_range(peer)
                && self
                    .id_of
                    .get(&peer)
                    .and_then(|peer_id| self.view(anchor, peer_id))
                    .is_some_and(|e| !e.flags.handshake)
                && (self.view(peer, id).is_some_and(|e| !e.flags.handshake)
                    || self.handshaking(peer, addr)
                    || self.handshaking(ord, peer_addr))
        })
    }

    /// Open slots per slot: (migrating nodes with target, importing nodes with source).
    pub fn open_slots(&self) -> BTreeMap<u16, OpenSlotState<'a>> {
        let mut out: BTreeMap<u16, OpenSlotState> = BTreeMap::new();
        for (ord, (_, _, state)) in &self.reachable {
            let Some(me) = self.me(*ord) else { continue };
            for o in &me.open_slots {
                let e = out.entry(o.slot()).or_default();
                let keys = state.open_slot_keys.get(&o.slot()).copied().unwrap_or(0);
                match o {
                    OpenSlot::Migrating { target, .. } => {
                        e.migrating.push((*ord, target.as_str(), keys))
                    }
                    OpenSlot::Importing { source, .. } => {
                        e.importing.push((*ord, source.as_str(), keys))
                    }
                }
            }
        }
        out
    }

    /// Reachable nodes holding keys of `slot` with no marker for it (counts come from
    /// `open_slot_keys`, which covers every slot open anywhere).
    pub fn unmarked_holders(&self, slot: u16) -> Vec<(Ordinal, u64)> {
        self.reachable
            .iter()
            .filter_map(|(ord, (_, _, s))| {
                let keys = s.open_slot_keys.get(&slot).copied().unwrap_or(0);
                let marked = self
                    .me(*ord)
                    .is_some_and(|me| me.open_slots.iter().any(|o| o.slot() == slot));
                (keys > 0 && !marked).then_some((*ord, keys))
            })
            .collect()
    }

    /// Reachable masters whose own line claims `slot`.
    pub fn live_claimants(&self, slot: u16) -> Vec<&'a str> {
        self.views
            .values()
            .filter_map(|v| v.me)
            .filter(|me| me.is_master())
            .filter(|me| me.slots.iter().any(|r| r.start <= slot && slot <= r.end))
            .map(|me| me.id.as_str())
            .collect()
    }

    /// Some reachable node has a slot open towards or from `id`.
    pub fn named_by_open_slot(&self, id: &str) -> bool {
        self.named_open.contains(id)
    }

    /// The master that member `ord`'s view gives `slot` to.
    pub fn view_owner(&self, ord: Ordinal, slot: u16) -> Option<&'a str> {
        let (_, _, state) = self.reachable.get(&ord)?;
        state
            .nodes
            .iter()
            .filter(|e| e.is_master())
            .find(|e| e.slots.iter().any(|r| r.start <= slot && slot <= r.end))
            .map(|e| e.id.as_str())
    }

    /// Node `id` does not answer now but may come back holding keys: its process still runs
    /// (cut off, paused), or it stopped and keeps its data on disk.
    pub fn may_return_with_keys(&self, id: &str) -> bool {
        let Some(n) = self.nodes.get(id) else {
            return false;
        };
        if n.reachable {
            return false;
        }
        n.ordinal
            .and_then(|o| self.obs.members.get(&o))
            .is_some_and(|m| m.running || self.desired.persistent)
    }

    /// Every slot has an owner by consensus, and that owner answers as a master with
    /// `cluster_state:ok`: clients are served everywhere, whatever else is under way.
    pub fn serves_every_slot(&self) -> bool {
        self.owner.iter().all(Option::is_some)
            && self.by_owner.keys().all(|id| {
                self.nodes
                    .get(id)
                    .is_some_and(|n| n.reachable && n.is_master())
                    && self
                        .ordinal_of(id)
                        .and_then(|o| self.state(o))
                        .is_some_and(|s| s.cluster_ok)
            })
    }

    pub fn member_ids(&self) -> BTreeSet<&'a str> {
        self.id_of.values().copied().collect()
    }
}

/// Nodes that have one slot open: (ordinal, peer id, keys of the slot they hold).
#[derive(Debug, Default)]
pub(crate) struct OpenSlotState<'a> {
    pub migrating: Vec<(Ordinal, &'a str, u64)>,
    pub importing: Vec<(Ordinal, &'a str, u64)>,
}

/// Two slot owners are the same id. Owners in `World::owner` point into the same strings, so
/// the pointer comparison settles nearly every call without reading the ids.
pub(crate) fn same_owner(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}
