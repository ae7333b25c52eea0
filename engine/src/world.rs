//! A consensus reading of one observation: who is who, who owns which slot, what is broken.
//! Everything the rules in `work.rs` ask about the world is answered here, once.

use crate::desired::Desired;
use crate::model::{Addr, ClusterNode, Member, NodeState, Observation, OpenSlot, Ordinal};
use crate::slots::SLOT_COUNT;
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
    /// Each reachable member's view, indexed by node id (views are scanned a lot).
    pub views: BTreeMap<Ordinal, BTreeMap<&'a str, &'a ClusterNode>>,
    /// Slots per owning node id, derived once from `owner`.
    by_owner: BTreeMap<&'a str, Vec<u16>>,
    /// Ids that some view, however stale, lists as a master with slots.
    listed: BTreeSet<&'a str>,
    /// Per member, the addresses its view holds an unfinished handshake with (usually none),
    /// found once: `meet` asks about them for every node the anchor does not know.
    handshakes: BTreeMap<Ordinal, BTreeSet<&'a Addr>>,
}

impl<'a> World<'a> {
    pub fn new(desired: &'a Desired, obs: &'a Observation) -> Self {
        let mut reachable = BTreeMap::new();
        for (ord, m) in &obs.members {
            if let (true, Some(addr), Some(state)) = (m.running, m.addr.as_ref(), m.redis.as_ref())
                && state.myself().is_some()
            {
                reachable.insert(*ord, (m, addr, state));
            }
        }

        let mut nodes: BTreeMap<&str, NodeInfo> = BTreeMap::new();
        let mut id_of = BTreeMap::new();
        // The node's own word first.
        for (ord, (_, _, state)) in &reachable {
            if let Some(me) = state.myself() {
                id_of.insert(*ord, me.id.as_str());
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
        // Then what the others say about nodes that did not answer.
        for (_, _, state) in reachable.values() {
            for e in &state.nodes {
                if e.flags.myself {
                    continue;
                }
                let info = nodes.entry(e.id.as_str()).or_insert(NodeInfo {
                    entry: e,
                    ordinal: None,
                    reachable: false,
                    failed: false,
                    last_pong_ms: 0,
                });
                if !info.reachable {
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
        }
        // A member that is down is recognised by the address the cluster knew it at.
        for (ord, m) in &obs.members {
            if reachable.contains_key(ord) {
                continue;
            }
            let Some(addr) = &m.addr else { continue };
            let found = nodes
                .iter()
                .filter(|(_, n)| !n.reachable && n.entry.addr.as_ref() == Some(addr))
                .map(|(id, _)| *id)
                .next();
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
        // Compare each view's slot map with the consensus as run-length ranges, not slot by
        // slot: a view of a large cluster is thousands of entries.
        let consensus = runs(owner.iter().copied());
        let slots_agreed = reachable.values().all(|(_, _, state)| {
            let mut seen: Vec<(u16, u16, &str)> = state
                .nodes
                .iter()
                .filter(|e| e.is_master())
                .flat_map(|e| e.slots.iter().map(move |r| (r.start, r.end, e.id.as_str())))
                .collect();
            seen.sort_unstable();
            let mut merged: Vec<(u16, u16, Option<&str>)> = Vec::new();
            let mut next = 0u32;
            for (start, end, id) in seen {
                if u32::from(start) < next {
                    return false; // two owners claim one slot in this view
                }
                if u32::from(start) > next {
                    merged.push((next as u16, start - 1, None));
                }
                match merged.last_mut() {
                    Some(last)
                        if last.2 == Some(id) && u32::from(last.1) + 1 == u32::from(start) =>
                    {
                        last.1 = end;
                    }
                    _ => merged.push((start, end, Some(id))),
                }
                next = u32::from(end) + 1;
            }
            if next < u32::from(SLOT_COUNT) {
                merged.push((next as u16, SLOT_COUNT - 1, None));
            }
            merged == consensus
        });

        let views = reachable
            .iter()
            .map(|(ord, (_, _, s))| (*ord, s.nodes.iter().map(|n| (n.id.as_str(), n)).collect()))
            .collect();
        let mut by_owner: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        for (slot, o) in owner.iter().enumerate() {
            if let Some(id) = o {
                by_owner.entry(id).or_default().push(slot as u16);
            }
        }
        let listed = reachable
            .values()
            .flat_map(|(_, _, s)| s.nodes.iter())
            .filter(|e| !e.slots.is_empty() && e.master_id.is_none())
            .map(|e| e.id.as_str())
            .collect();
        let handshakes = reachable
            .iter()
            .map(|(ord, (_, _, s))| {
                let pending = s
                    .nodes
                    .iter()
                    .filter(|n| n.flags.handshake)
                    .filter_map(|n| n.addr.as_ref())
                    .collect();
                (*ord, pending)
            })
            .collect();
        Self {
            desired,
            obs,
            reachable,
            nodes,
            id_of,
            owner,
            slots_agreed,
            views,
            by_owner,
            listed,
            handshakes,
        }
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

    /// How member `ord` sees node `id`.
    pub fn view(&self, ord: Ordinal, id: &str) -> Option<&'a ClusterNode> {
        self.views.get(&ord).and_then(|v| v.get(id).copied())
    }

    pub fn ordinal_of(&self, id: &str) -> Option<Ordinal> {
        self.nodes.get(id).and_then(|n| n.ordinal)
    }

    pub fn state(&self, ord: Ordinal) -> Option<&'a NodeState> {
        self.reachable.get(&ord).map(|(_, _, s)| *s)
    }

    /// Some view claims some slot, or some node knows another: a cluster already exists here.
    pub fn cluster_exists(&self) -> bool {
        self.owner.iter().any(Option::is_some)
            || self.reachable.values().any(|(_, _, s)| {
                s.nodes
                    .iter()
                    .any(|n| !n.flags.myself && !n.flags.handshake)
            })
    }

    /// `id` owns at least one slot by consensus (not by one possibly stale view entry).
    pub fn owns_slots(&self, id: &str) -> bool {
        self.by_owner.contains_key(id)
    }

    /// Some view, however stale, still lists `id` as a master with slots.
    pub fn listed_with_slots(&self, id: &str) -> bool {
        self.listed.contains(id)
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

    /// Replicas of `master_id` that could take over now: they answer, are not failed and hold
    /// a copy (a replica that never completed a sync has offset 0 and holds nothing). Best
    /// first: replicas that linked to this master once, then the highest replication offset,
    /// then the lowest ordinal.
    ///
    /// A replica whose link was never up since it last was a master (Redis reports
    /// `master_link_down_since_seconds:-1`) holds only what it had as a master: its offset
    /// counts another stream. It is usually a master demoted by a newer claim on its own slots
    /// (cut off while its replica was promoted), so its keys are an older copy of these very
    /// slots: without persistence that beats restarting the master empty, so it stays a
    /// candidate, last, while it holds keys. With persistence the master's own volume is the
    /// better copy, and waiting for it (or a linked replica) is right. A replica on the
    /// replication stream of a never-linked one follows that node's old data and is no
    /// candidate (`shares_stream_with_unlinked`). A replica moved here from another master and
    /// not synced yet, with no such neighbour, still cannot be told apart (Redis itself would
    /// elect it).
    pub fn takeover_candidates(&self, master_id: &str) -> Vec<Ordinal> {
        let mut out: Vec<(bool, std::cmp::Reverse<u64>, Ordinal)> = self
            .replicas_of(master_id)
            .into_iter()
            .filter(|(_, r)| r.reachable && !r.failed)
            .filter_map(|(_, r)| {
                let ord = r.ordinal?;
                let state = self.state(ord)?;
                if !state.ever_linked && (self.desired.persistent || state.keys == 0) {
                    return None;
                }
                // A replica on the same replication stream as one that never linked (a
                // chained replica that followed a demoted master) holds that master's old
                // data, not this one's, whatever its offset (simulator seeds 818, 10690).
                if state.ever_linked && self.shares_stream_with_unlinked(master_id, ord) {
                    return None;
                }
                (state.repl_offset > 0).then_some((
                    !state.ever_linked,
                    std::cmp::Reverse(state.repl_offset),
                    ord,
                ))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, _, o)| o).collect()
    }

    /// Replica `ord` of `master_id` reports the replication id of another replica of it that
    /// never linked: it follows that node's old stream.
    fn shares_stream_with_unlinked(&self, master_id: &str, ord: Ordinal) -> bool {
        let Some(mine) = self.state(ord).and_then(|s| s.replid.as_deref()) else {
            return false;
        };
        self.replicas_of(master_id).into_iter().any(|(_, r)| {
            r.ordinal.is_some_and(|o| {
                o != ord
                    && self
                        .state(o)
                        .is_some_and(|s| !s.ever_linked && s.replid.as_deref() == Some(mine))
            })
        })
    }

    /// Replicas of `master_id` (any member), with their info.
    pub fn replicas_of(&self, master_id: &str) -> Vec<(&'a str, &NodeInfo<'a>)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.entry.master_id.as_deref() == Some(master_id))
            .map(|(id, n)| (*id, n))
            .collect()
    }

    /// `ord`'s view holds a handshake, not finished yet, with the node at `addr`.
    pub fn handshaking(&self, ord: Ordinal, addr: &Addr) -> bool {
        self.handshakes
            .get(&ord)
            .is_some_and(|pending| pending.contains(addr))
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

    /// Every reachable node knows every other reachable member, with its current address and
    /// no handshake pending.
    pub fn gossip_settled(&self) -> bool {
        // Leaving members are on their way out (and forgotten one node at a time): only the
        // members that stay must know each other.
        let staying = |o: &&Ordinal| self.in_range(**o);
        self.reachable.keys().filter(staying).all(|viewer| {
            self.reachable
                .iter()
                .filter(|(o, _)| staying(o))
                .all(|(ord, (_, addr, _))| {
                    let Some(id) = self.id_of.get(ord) else {
                        return false;
                    };
                    self.view(*viewer, id).is_some_and(|e| {
                        !e.flags.handshake && !e.flags.noaddr && e.addr.as_ref() == Some(*addr)
                    })
                })
        })
    }

    /// Every reachable node sees every reachable member in the role (and with the master) that
    /// member reports for itself: replicas attached a moment ago are known everywhere.
    pub fn roles_agreed(&self) -> bool {
        // Each member's own line, found once: `myself()` scans a whole view.
        let selves: Vec<&ClusterNode> = self
            .reachable
            .values()
            .filter_map(|(_, _, s)| s.myself())
            .collect();
        if selves.len() != self.reachable.len() {
            return false;
        }
        self.reachable.keys().all(|viewer| {
            selves.iter().all(|me| {
                self.view(*viewer, &me.id).is_some_and(|e| {
                    e.master_id == me.master_id && e.flags.replica == me.flags.replica
                })
            })
        })
    }

    /// Open slots per slot: (migrating nodes with target, importing nodes with source).
    pub fn open_slots(&self) -> BTreeMap<u16, OpenSlotState<'a>> {
        let mut out: BTreeMap<u16, OpenSlotState> = BTreeMap::new();
        for (ord, (_, _, state)) in &self.reachable {
            let Some(me) = state.myself() else { continue };
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
                let marked = s
                    .myself()
                    .is_some_and(|me| me.open_slots.iter().any(|o| o.slot() == slot));
                (keys > 0 && !marked).then_some((*ord, keys))
            })
            .collect()
    }

    /// Reachable masters whose own line claims `slot`.
    pub fn live_claimants(&self, slot: u16) -> Vec<&'a str> {
        self.reachable
            .values()
            .filter_map(|(_, _, s)| s.myself())
            .filter(|me| me.is_master())
            .filter(|me| me.slots.iter().any(|r| r.start <= slot && slot <= r.end))
            .map(|me| me.id.as_str())
            .collect()
    }

    /// Some reachable node has a slot open towards or from `id`.
    pub fn named_by_open_slot(&self, id: &str) -> bool {
        self.reachable.values().any(|(_, _, s)| {
            s.myself().is_some_and(|me| {
                me.open_slots.iter().any(|o| match o {
                    OpenSlot::Migrating { target, .. } => target == id,
                    OpenSlot::Importing { source, .. } => source == id,
                })
            })
        })
    }

    /// Some reachable replica of `master_id` has completed its sync and receives its master's
    /// stream. `master_link_status:up` alone is not enough: after a diskless sync, Redis 7.0
    /// streams nothing until the replica's first `REPLCONF ACK` (up to a second later), and a
    /// master killed in that gap took every key written meanwhile with it (seen in
    /// `bench/migration_node_loss.py`). A replication offset above 0 proves bytes of the
    /// stream arrived; the master's pings to its replicas (`repl-ping-replica-period`) move it
    /// even when nothing is written.
    pub fn has_synced_replica(&self, master_id: &str) -> bool {
        self.synced_replicas(master_id).next().is_some()
    }

    /// Some in-range member replicates `master_id` and has synced (a replica that stays).
    pub fn has_synced_in_range_replica(&self, master_id: &str) -> bool {
        self.synced_replicas(master_id).any(|o| self.in_range(o))
    }

    /// Reachable members that replicate `master_id` and have synced (see `has_synced_replica`).
    pub fn synced_replicas<'s>(&'s self, master_id: &'s str) -> impl Iterator<Item = Ordinal> + 's {
        self.reachable
            .keys()
            .copied()
            .filter(move |o| self.synced_master_of(*o) == Some(master_id))
    }

    /// The master whose synced replica member `ord` is (see `has_synced_replica`), if it is one.
    pub fn synced_master_of(&self, ord: Ordinal) -> Option<&'a str> {
        let (_, _, s) = self.reachable.get(&ord)?;
        if !s.master_link_up || s.repl_offset == 0 {
            return None;
        }
        s.myself()?.master_id.as_deref()
    }

    /// Some reachable node replicates `master_id`, synced or not.
    pub fn has_attached_replica(&self, master_id: &str) -> bool {
        self.reachable.values().any(|(_, _, s)| {
            s.myself()
                .is_some_and(|me| me.master_id.as_deref() == Some(master_id))
        })
    }

    /// A reachable replica of `master_id` holds keys of a slot that is open somewhere.
    pub fn replica_holds_keys_of_open_slots(&self, master_id: &str) -> bool {
        self.reachable.values().any(|(_, _, s)| {
            s.myself()
                .is_some_and(|me| me.master_id.as_deref() == Some(master_id))
                && s.open_slot_keys.values().any(|k| *k > 0)
        })
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

/// Run-length encoding of a per-slot owner table: `(start, end, owner)`.
fn runs<'a>(owners: impl Iterator<Item = Option<&'a str>>) -> Vec<(u16, u16, Option<&'a str>)> {
    let mut out: Vec<(u16, u16, Option<&str>)> = Vec::new();
    for (slot, o) in owners.enumerate() {
        let slot = slot as u16;
        match out.last_mut() {
            Some(last) if last.2 == o => last.1 = slot,
            _ => out.push((slot, slot, o)),
        }
    }
    out
}
