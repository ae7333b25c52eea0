//! The cluster bus: every tick, nodes that can reach each other exchange headers (ping/pong),
//! learn about new nodes, merge slot ownership by config epoch, detect failures, replicate and
//! fail over, the way Redis Cluster does it (simplified where noted).

use crate::cluster::Cluster;
use crate::node::{NONE, NodeKey, Peer, RedisNode};
use engine::{Ordinal, SlotRange};
use std::collections::BTreeSet;

/// What a ping or pong carries: the sender's own config plus a gossip section about others.
#[derive(Debug, Clone)]
struct Header {
    ordinal: Ordinal,
    key: NodeKey,
    ip: String,
    master: Option<NodeKey>,
    config_epoch: u64,
    current_epoch: u64,
    version: u64,
    /// Slots the sender claims for itself (empty for a replica).
    claims: Vec<SlotRange>,
    /// A replica's header carries its master's slots and config epoch as it sees them
    /// (Redis' `myslots`/`configEpoch` of a replica's header): a receiver that knows a newer
    /// owner of any of them answers with an UPDATE, so a replica whose view went stale while
    /// it was cut off or paused learns that its master lost them, even from a dead owner.
    master_claims: Vec<SlotRange>,
    master_epoch: u64,
    /// (node, ip, failing in the sender's view). Real Redis sends a random subset; all of
    /// them is the same thing, sooner.
    gossip: Vec<(NodeKey, String, bool)>,
}

/// `CLUSTER_FAIL_UNDO_TIME_MULT`: a master with slots stays FAIL this many node timeouts.
const FAIL_UNDO_MULT: u64 = 2;

impl Cluster {
    /// Advances the clock by `ms` and runs one round of the cluster bus.
    pub fn tick(&mut self, ms: u64) {
        self.now_ms += ms;
        // Redis pings every node several times a second; two rounds per simulated second let
        // epoch bumps and new claims spread before the operator looks again, as they would.
        for _ in 0..2 {
            self.exchange_headers();
            self.detect_failures();
        }
        self.replicate();
        self.auto_failover();
    }

    fn header(&mut self, o: Ordinal) -> Option<Header> {
        let m = self.members.get_mut(&o)?;
        if !m.running {
            return None;
        }
        let ip = m.ip();
        let n = &mut m.node;
        let key = n.key;
        let claims = if n.is_master() {
            n.slots_of(key)
        } else {
            Vec::new()
        };
        let (master_claims, master_epoch) = match n.master {
            Some(mk) => (
                n.slots_of(mk),
                n.peers.get(&mk).map_or(0, |p| p.config_epoch),
            ),
            None => (Vec::new(), 0),
        };
        Some(Header {
            ordinal: o,
            key,
            ip,
            master: n.master,
            config_epoch: n.config_epoch,
            current_epoch: n.current_epoch,
            version: n.version,
            claims,
            master_claims,
            master_epoch,
            gossip: n
                .peers
                .iter()
                .map(|(k, p)| (*k, p.ip.clone(), p.pfail || p.fail))
                .collect(),
        })
    }

    fn exchange_headers(&mut self) {
        let ordinals = self.ordinals();
        let headers: Vec<Header> = ordinals.iter().filter_map(|o| self.header(*o)).collect();
        let mut updates: Vec<(Ordinal, NodeKey, u64, Vec<SlotRange>)> = Vec::new();
        for a in &headers {
            for b in &headers {
                if a.ordinal == b.ordinal || !self.can_talk(a.ordinal, b.ordinal) {
                    continue;
                }
                // `a` pings `b` only if it knows `b` at `b`'s current address. The pong then
                // carries `b`'s header to `a`, and the ping `a`'s header to `b`.
                let knows = self
                    .members
                    .get(&a.ordinal)
                    .and_then(|m| m.node.peers.get(&b.key))
                    .is_some_and(|p| p.ip == b.ip);
                if !knows {
                    continue;
                }
                if let Some(u) = self.receive(b.ordinal, a) {
                    updates.push(u);
                }
                if let Some(u) = self.receive(a.ordinal, b) {
                    updates.push(u);
                }
            }
        }
        self.deliver_updates(updates);
    }

    /// Redis' `clusterBroadcastPong` after a node changed its own config (a slot imported
    /// under a new epoch): every node `o` can talk to gets its header at once, and their
    /// replies come back in the same round, so a tie of epochs with another target is settled
    /// before anything else happens, as it is within milliseconds in Redis.
    pub(crate) fn broadcast_pong(&mut self, o: Ordinal) {
        let Some(mine) = self.header(o) else { return };
        let mut updates = Vec::new();
        for b in self.ordinals() {
            if b == o || !self.can_talk(o, b) {
                continue;
            }
            let Some(theirs) = self.header(b) else {
                continue;
            };
            if let Some(u) = self.receive(b, &mine) {
                updates.push(u);
            }
            if let Some(u) = self.receive(o, &theirs) {
                updates.push(u);
            }
        }
        self.deliver_updates(updates);
    }

    /// UPDATE messages: tell a sender with a stale claim who owns its slots now. As in
    /// Redis, the receiver ignores one that brings no newer config epoch for that owner
    /// than it already knows: the owner's own header got there first, and the slots the
    /// UPDATE lists are only the sending node's (possibly older) picture of them.
    fn deliver_updates(&mut self, updates: Vec<(Ordinal, NodeKey, u64, Vec<SlotRange>)>) {
        for (to, owner, epoch, slots) in updates {
            if let Some(m) = self.members.get_mut(&to)
                && let Some(p) = m.node.peers.get_mut(&owner)
                && p.config_epoch < epoch
            {
                // Redis: a node an UPDATE speaks of as an owner is a master.
                p.config_epoch = epoch;
                p.master = None;
                m.node.touch();
                update_slots_config(&mut m.node, owner, epoch, &slots);
            }
        }
    }

    /// `r` processes header `h`. Returns an UPDATE to send back when `h` claims slots that
    /// `r` knows belong to someone with a newer config.
    fn receive(
        &mut self,
        r: Ordinal,
        h: &Header,
    ) -> Option<(Ordinal, NodeKey, u64, Vec<SlotRange>)> {
        let now = self.now_ms;
        let timeout = self.node_timeout_ms;
        // Gossip about unknown nodes starts a handshake, which completes only if the node at
        // that address really is that node and is reachable.
        let mut learn: Vec<(NodeKey, String)> = Vec::new();
        {
            let n = &self.members.get(&r)?.node;
            for (k, ip, _) in &h.gossip {
                if *k != n.key
                    && !n.peers.contains_key(k)
                    && n.blacklist.get(k).is_none_or(|t| *t <= now)
                {
                    learn.push((*k, ip.clone()));
                }
            }
        }
        learn.retain(|(k, ip)| {
            self.at_address(ip, crate::node::PORT).is_some_and(|o| {
                self.members.get(&o).is_some_and(|m| m.node.key == *k) && self.can_talk(r, o)
            })
        });
        let ids: Vec<(NodeKey, bool)> = {
            // Tie-break of the epoch collision needs the id strings.
            let me = self.members.get(&r)?.node.key;
            vec![(me, self.id(me) < self.id(h.key))]
        };
        let m = self.members.get_mut(&r)?;
        let n = &mut m.node;
        if h.key == n.key {
            return None;
        }
        for (k, ip) in learn {
            n.peers.insert(k, new_peer(ip, now));
            n.touch();
        }
        // Redis (clusterProcessGossipSection): a node we cannot reach, reported healthy at
        // another address by a node that talks to it, is tried at that address.
        for (k, ip, failing) in &h.gossip {
            if let Some(p) = n.peers.get_mut(k)
                && (p.pfail || p.fail)
                && !*failing
                && p.ip != *ip
            {
                p.ip = ip.clone();
                n.touch();
            }
        }
        let sender_is_master_here = n.peers.get(&h.key).is_some_and(|p| p.master.is_none());
        let p = n.peers.get_mut(&h.key)?;
        let mut changed = false;
        if p.ip != h.ip {
            p.ip = h.ip.clone();
            changed = true;
        }
        p.last_pong_ms = now;
        p.pfail = false;
        if p.fail
            && (h.master.is_some()
                || h.claims.is_empty()
                || now.saturating_sub(p.fail_since_ms) > FAIL_UNDO_MULT * timeout)
        {
            p.fail = false;
            p.failure_reports.clear();
        }
        if p.master != h.master {
            p.master = h.master;
            changed = true;
        }
        if p.config_epoch != h.config_epoch {
            p.config_epoch = h.config_epoch;
            changed = true;
        }
        if changed {
            n.touch();
        }
        n.current_epoch = n.current_epoch.max(h.current_epoch);
        // A master that turned replica no longer serves the slots we gave it.
        if h.master.is_some() {
            let lost: Vec<u16> = n.slots_of(h.key).iter().flat_map(|r| r.iter()).collect();
            for s in lost {
                n.set_owner(s, NONE);
            }
        }
        // Failure reports: only masters' opinions count.
        if sender_is_master_here {
            for (k, _, failing) in &h.gossip {
                if let Some(p) = n.peers.get_mut(k) {
                    if *failing {
                        p.failure_reports.insert(h.key, now);
                    } else {
                        p.failure_reports.remove(&h.key);
                    }
                }
            }
        }
        let mut update = None;
        if h.master.is_none() && n.seen.get(&h.key) != Some(&h.version) {
            update_slots_config(n, h.key, h.config_epoch, &h.claims);
            // Stale claim: someone with a newer epoch owns one of the sender's slots.
            // Redis skips slots it counts as unclaimed, and the UPDATE it sends leaves them
            // out of the owner's slots.
            let stale = h
                .claims
                .iter()
                .flat_map(|r| r.iter())
                .map(|s| (s, n.owner(s)))
                .find(|(s, o)| *o != h.key && !n.unclaimed(*s) && n.epoch_of(*o) > h.config_epoch)
                .map(|(_, o)| o);
            if let Some(owner) = stale {
                let epoch = n.epoch_of(owner);
                update = Some((h.ordinal, owner, epoch, claimed_slots_of(n, owner)));
            } else {
                n.seen.insert(h.key, h.version);
            }
        }
        // A replica speaking for a master whose slots someone newer owns here.
        if let Some(mk) = h.master
            && update.is_none()
        {
            let stale = h
                .master_claims
                .iter()
                .flat_map(|r| r.iter())
                .map(|s| (s, n.owner(s)))
                .find(|(s, o)| *o != mk && !n.unclaimed(*s) && n.epoch_of(*o) > h.master_epoch)
                .map(|(_, o)| o);
            if let Some(owner) = stale {
                let epoch = n.epoch_of(owner);
                update = Some((h.ordinal, owner, epoch, claimed_slots_of(n, owner)));
            }
        }
        // Config epoch collision: the node with the smaller id takes a new epoch.
        if n.is_master()
            && h.master.is_none()
            && h.config_epoch == n.config_epoch
            && ids.first().is_some_and(|(_, smaller)| *smaller)
        {
            let old = n.config_epoch;
            n.current_epoch += 1;
            n.config_epoch = n.current_epoch;
            n.touch();
            let (me, new, claims) = (n.key, n.config_epoch, n.slots_of(n.key));
            self.note_collision_takeover(me, old, new, &claims);
        }
        update
    }

    /// A master bumped its epoch in a collision (Redis' `clusterHandleConfigEpochCollision`)
    /// while its own table still gives it slots that another running master took over under
    /// an epoch between its old and new ones: a stale master (cut off or paused while Redis
    /// elected its replica) that collides with a third master before it hears the new owner
    /// outbids that owner with the bump and takes its slots back, and the keys written to the
    /// new owner meanwhile go when it turns replica. That is Redis' doing, not the operator's:
    /// those keys count as lost to the faults, like `promotion_gaps`.
    fn note_collision_takeover(&mut self, me: NodeKey, old: u64, new: u64, claims: &[SlotRange]) {
        let mut lost = Vec::new();
        for m in self.members.values() {
            let n = &m.node;
            if !m.running || n.key == me || !n.is_master() {
                continue;
            }
            if !(old < n.config_epoch && n.config_epoch < new) {
                continue;
            }
            for r in claims {
                for slot in r.iter() {
                    if n.owner(slot) == n.key
                        && let Some(keys) = n.keys.get(&slot)
                    {
                        lost.extend(keys.iter().copied());
                    }
                }
            }
        }
        self.promotion_gaps.extend(lost);
    }

    fn detect_failures(&mut self) {
        let now = self.now_ms;
        let timeout = self.node_timeout_ms;
        let mut broadcasts: Vec<(Ordinal, NodeKey)> = Vec::new();
        for o in self.ordinals() {
            let Some(m) = self.members.get_mut(&o) else {
                continue;
            };
            if !m.running {
                continue;
            }
            let n = &mut m.node;
            let serving = n.serving_masters();
            let needed = serving.len() / 2 + 1;
            let me_master = n.is_master();
            let masters: BTreeSet<NodeKey> = n
                .peers
                .iter()
                .filter(|(_, p)| p.master.is_none())
                .map(|(k, _)| *k)
                .collect();
            for (k, p) in n.peers.iter_mut() {
                if now.saturating_sub(p.last_pong_ms) > timeout {
                    p.pfail = true;
                }
                p.failure_reports.retain(|rep, t| {
                    now.saturating_sub(*t) <= 2 * timeout && masters.contains(rep)
                });
                if p.pfail && !p.fail {
                    let votes = p.failure_reports.len() + usize::from(me_master);
                    if votes >= needed {
                        p.fail = true;
                        p.fail_since_ms = now;
                        broadcasts.push((o, *k));
                    }
                }
            }
        }
        // The FAIL message reaches everyone the detecting node can talk to.
        for (from, failed) in broadcasts {
            for o in self.ordinals() {
                if o == from || !self.can_talk(from, o) {
                    continue;
                }
                if let Some(m) = self.members.get_mut(&o)
                    && let Some(p) = m.node.peers.get_mut(&failed)
                    && !p.fail
                {
                    p.fail = true;
                    p.fail_since_ms = now;
                }
            }
        }
    }

    /// Replication, simplified: a replica whose link is up mirrors its source exactly (writes
    /// are propagated synchronously at write time, see `client.rs`, and every tick, which
    /// also carries a chained replica along); a replica whose link went down keeps its data
    /// and does a full resync when the link comes back. As in Redis, the link goes to an
    /// address: the one gossip last gave the master while its process ran. A new process at
    /// that address (a restart, with or without `nodes.conf`) is copied as if it were the
    /// master, once its replication gate is open.
    fn replicate(&mut self) {
        let now = self.now_ms;
        // A master pings its linked replicas every tick (`repl-ping-replica-period`): its
        // offset moves even when nothing is written, as the engine expects of a stream.
        let pinging: Vec<Ordinal> = self
            .ordinals()
            .into_iter()
            .filter(|o| {
                let Some(m) = self.members.get(o).filter(|m| m.running) else {
                    return false;
                };
                self.members.values().any(|r| {
                    r.running
                        && r.node.synced
                        && r.node.master == Some(m.node.key)
                        && self.can_talk(*o, r.ordinal)
                })
            })
            .collect();
        for o in pinging {
            if let Some(m) = self.members.get_mut(&o) {
                m.node.repl_offset += 1;
            }
        }
        for o in self.ordinals() {
            let Some(mk) = self
                .members
                .get(&o)
                .filter(|m| m.running)
                .and_then(|m| m.node.master)
            else {
                continue;
            };
            let live_master_ip = self
                .ordinal_of(mk)
                .and_then(|mo| self.members.get(&mo))
                .filter(|m| m.running)
                .map(|m| m.ip());
            if let Some(ip) = live_master_ip
                && let Some(m) = self.members.get_mut(&o)
            {
                m.node.master_ip = Some(ip);
            }
            let link = self.replication_source(o);
            let source = link
                .and_then(|mo| self.members.get(&mo))
                .map(|m| (m.node.keys.clone(), m.node.repl_offset, m.node.replid));
            let Some(m) = self.members.get_mut(&o) else {
                continue;
            };
            match source {
                // Every tick, not only at the first sync: a replica of a replica receives
                // the stream its master receives (chained replication), which the writes'
                // own propagation does not reach.
                Some((keys, offset, replid)) => {
                    m.node.keys = keys;
                    m.node.repl_offset = offset;
                    m.node.replid = replid;
                    m.node.synced = true;
                    m.node.last_sync_ms = Some(now);
                    m.node.linked_since_master = true;
                }
                None => m.node.synced = false,
            }
        }
    }
}

/// The replica becomes a master owning its old master's slots, under `epoch`.
pub fn promote(n: &mut RedisNode, old_master: NodeKey, epoch: u64) {
    n.master = None;
    n.linked_since_master = false;
    n.new_replid();
    n.config_epoch = epoch;
    n.current_epoch = n.current_epoch.max(epoch);
    n.failover_at = None;
    n.synced = false;
    let me = n.key;
    let slots: Vec<u16> = n
        .slots_of(old_master)
        .iter()
        .flat_map(|r| r.iter())
        .collect();
    for s in slots {
        n.set_owner(s, me);
    }
    n.touch();
}

pub fn new_peer(ip: String, now: u64) -> Peer {
    Peer {
        ip,
        port: crate::node::PORT,
        master: None,
        config_epoch: 0,
        last_pong_ms: now,
        pfail: false,
        fail: false,
        fail_since_ms: 0,
        failure_reports: Default::default(),
    }
}

/// Redis' `clusterUpdateSlotsConfigWith`: `sender` claims `slots` under `epoch`; take every
/// slot whose current owner has an older epoch or counts as unclaimed (no owner, or an owner
/// that stopped claiming it: Redis' `owner_not_claiming_slot`, see `RedisNode::not_claiming`),
/// except slots being imported. Slots the table gives the sender that its header leaves out
/// are marked as no longer claimed; slots it claims lose their mark. Redis runs this only when
/// the header's slots differ from the sender's in the table, and so does the model: a mark
/// survives a header that merely repeats the table. A master that loses its last slot, or a
/// replica whose master does, follows the new owner; a master that loses slots holding keys
/// deletes those keys (the "dirty slots" of Redis).
pub fn update_slots_config(n: &mut RedisNode, sender: NodeKey, epoch: u64, slots: &[SlotRange]) {
    let me = n.key;
    if sender == me || n.slots_of(sender) == slots {
        return;
    }
    let my_master = n.master;
    let mut lost_mine = 0u32;
    let mut master_lost = 0u32;
    let mut dirty = Vec::new();
    for r in slots {
        // Most headers repeat what we know: skip a range we already give to the sender.
        let (a, b) = (usize::from(r.start), usize::from(r.end));
        if n.owners
            .get(a..=b)
            .is_some_and(|run| run.iter().all(|o| *o == sender))
        {
            if !n.not_claiming.is_empty() {
                for s in r.iter() {
                    n.not_claiming.remove(&s);
                }
            }
            continue;
        }
        for s in r.iter() {
            let cur = n.owner(s);
            if cur == sender {
                n.not_claiming.remove(&s);
                continue;
            }
            if n.importing.contains_key(&s) {
                continue;
            }
            if n.unclaimed(s) || n.epoch_of(cur) < epoch {
                if cur == me {
                    lost_mine += 1;
                    if n.keys_in(s) > 0 {
                        dirty.push(s);
                    }
                }
                if Some(cur) == my_master {
                    master_lost += 1;
                }
                n.set_owner(s, sender);
                n.not_claiming.remove(&s);
            }
        }
    }
    let left_out: Vec<u16> = n
        .slots_of(sender)
        .iter()
        .flat_map(|r| r.iter())
        .filter(|s| !slots.iter().any(|r| r.start <= *s && *s <= r.end))
        .collect();
    n.not_claiming.extend(left_out);
    if lost_mine > 0 && n.is_master() && n.slot_count_of(me) == 0 {
        become_replica(n, sender);
        return;
    }
    if let Some(mk) = my_master
        && master_lost > 0
        && n.slot_count_of(mk) == 0
    {
        become_replica(n, sender);
        return;
    }
    for s in dirty {
        n.keys.remove(&s);
    }
}

/// The slots `n`'s table gives `owner`, less those `n` counts as no longer claimed (what an
/// UPDATE message about `owner` carries).
fn claimed_slots_of(n: &mut RedisNode, owner: NodeKey) -> Vec<SlotRange> {
    let all = n.slots_of(owner);
    if n.not_claiming.is_empty() {
        return all;
    }
    let marks = &n.not_claiming;
    engine::slots::to_ranges(
        all.iter()
            .flat_map(|r| r.iter())
            .filter(|s| !marks.contains(s)),
    )
}

/// `clusterSetMaster`: follow `master`, close all open slots, resync from scratch.
pub fn become_replica(n: &mut RedisNode, master: NodeKey) {
    // Whatever it holds is another master's data: it is no candidate for an election on
    // behalf of this master before it has synced with it once. (Redis measures the data age
    // from the moment the old link dropped; the model is stricter, see docs/simulator.md.)
    if n.master != Some(master) {
        n.last_sync_ms = None;
    }
    n.master = Some(master);
    n.migrating.clear();
    n.importing.clear();
    n.markers_changed();
    n.synced = false;
    n.failover_at = None;
    n.touch();
}
