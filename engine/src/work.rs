//! The rules: from a [`World`], the next piece of work and its effects, in priority order.
//! Repairs come first, then master topology, then replicas, then removals. A rule that needs a
//! calmer world (everyone reachable, gossip settled, no open slot) waits for it rather than
//! acting on a partial picture.

use crate::claims::{disowned_slots, outdated_claims};
use crate::effect::{Effect, FailoverMode};
use crate::failover::failed_masters;
use crate::history::STUCK_AFTER;
use crate::model::Ordinal;
use crate::planner::{self, MasterSlots};
use crate::replicas::{early_replicas, natural_master, protect_targets, replicas};
use crate::restart::{self, Restart};
use crate::slots::even_split;
use crate::world::World;
use std::collections::BTreeSet;

/// What kind of work the rules found; the lifecycle maps it to a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Invalid,
    Delete,
    /// Members are being created; no cluster exists yet.
    Create,
    Bootstrap,
    Recover,
    ScaleOut,
    ScaleIn,
    Replicas,
    /// Nothing to do but wait for the world to settle.
    Wait,
    Converged,
}

#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub kind: Kind,
    pub effects: Vec<Effect>,
    pub summary: String,
    /// Problems the operator cannot fix by itself (lost slots, foreign nodes, ...).
    pub degraded: Vec<String>,
    /// Data lost recently (masters that came back empty); reported, never blocking.
    pub losses: Vec<String>,
    pub requeue_ms: Option<u64>,
}

/// Short wait while something settles (gossip, a node starting).
const SETTLE_MS: u64 = 500;
/// Re-check a converged cluster this often.
const HEALTH_CHECK_MS: u64 = 10_000;

impl Work {
    pub(crate) fn new(kind: Kind, effects: Vec<Effect>, summary: impl Into<String>) -> Self {
        let requeue_ms = match kind {
            Kind::Invalid => None,
            Kind::Converged => Some(HEALTH_CHECK_MS),
            _ => Some(SETTLE_MS),
        };
        Self {
            kind,
            effects,
            summary: summary.into(),
            degraded: Vec::new(),
            losses: Vec::new(),
            requeue_ms,
        }
    }

    pub(crate) fn wait(summary: impl Into<String>) -> Self {
        Self::new(Kind::Wait, Vec::new(), summary)
    }
}

pub(crate) fn work(w: &World) -> Work {
    let mut degraded = Vec::new();
    let mut out = rules(w, &mut degraded);
    out.degraded.extend(degraded);
    stuck(w, &mut out);
    out.losses = w
        .obs
        .history
        .losses
        .iter()
        .map(ToString::to_string)
        .collect();
    out
}

/// Longest wait between two attempts of an effect that keeps failing.
const MAX_BACKOFF_MS: u64 = 30_000;

/// An effect decided again after failing [`STUCK_AFTER`] passes in a row is named in
/// `Degraded` with its error, and tried again less and less often: the rules take another
/// path where one exists (they see the same world the failure left), and where none does a
/// person has to know.
fn stuck(w: &World, out: &mut Work) {
    let Some(f) = &w.obs.history.failure else {
        return;
    };
    if f.times < STUCK_AFTER || !out.effects.contains(&f.effect) {
        return;
    }
    // No count or duration in the message: it would change every pass (a new status write,
    // a new log line) while nothing else does.
    out.degraded.push(format!(
        "stuck: `{}` keeps failing since {}: {}",
        f.effect,
        crate::history::utc(f.since_ms),
        f.error
    ));
    let doublings = (f.times - STUCK_AFTER + 1).min(16);
    out.requeue_ms = Some((SETTLE_MS << doublings).min(MAX_BACKOFF_MS));
}

fn rules(w: &World, degraded: &mut Vec<String>) -> Work {
    let d = w.desired;
    if !d.problems.is_empty() {
        return Work::new(
            Kind::Invalid,
            Vec::new(),
            format!("spec is invalid: {}", d.problems.join("; ")),
        );
    }
    if d.deleting {
        let effects: Vec<Effect> = w
            .obs
            .members
            .keys()
            .map(|&ordinal| Effect::DeleteNode { ordinal })
            .collect();
        let n = effects.len();
        return Work::new(Kind::Delete, effects, format!("deleting {n} nodes"));
    }
    if let Some(work) = members(w) {
        return work;
    }
    if !w.cluster_exists() {
        return bootstrap(w);
    }
    if let Some(work) = meet(w, degraded) {
        return work;
    }
    if !w.gossip_settled() {
        if let Some(work) = early_replicas(w) {
            return work;
        }
        return Work::wait("waiting for every node to know every other node");
    }
    if let Some(work) = forget_ghosts(w) {
        return work;
    }
    if let Some(work) = crate::repair::repair_open_slots(w, degraded) {
        return work;
    }
    if let Some(work) = disowned_slots(w) {
        return work;
    }
    if let Some(work) = outdated_claims(w) {
        return work;
    }
    if let Some(work) = failed_masters(w, degraded) {
        return work;
    }
    if !w.all_in_range_reachable() {
        let missing: Vec<String> = (0..w.total())
            .filter(|o| !w.reachable.contains_key(o))
            .map(|o| format!("#{o}"))
            .collect();
        return Work::wait(format!(
            "waiting for nodes {} to answer",
            missing.join(", ")
        ));
    }
    if let Some(work) = masters(w) {
        return work;
    }
    let mut effects = replicas(w, degraded);
    let replica_work = !effects.is_empty();
    let (removals, removed_masters) = remove_leaving(w);
    effects.extend(removals);
    if !effects.is_empty() {
        let kind = if removed_masters {
            Kind::ScaleIn
        } else {
            Kind::Replicas
        };
        let n = effects.len();
        let what = match (replica_work, kind == Kind::ScaleIn) {
            (true, _) => "attaching replicas",
            (false, true) => "removing drained masters",
            (false, false) => "removing surplus replicas",
        };
        return Work::new(kind, effects, format!("{what} ({n} steps)"));
    }
    converged(w, degraded)
}

/// Members that should exist but do not, and members that stopped running.
fn members(w: &World) -> Option<Work> {
    let mut effects = Vec::new();
    let mut fresh = 0;
    let mut bumps: Vec<Effect> = Vec::new();
    let mut held = Vec::new();
    for ordinal in 0..w.total() {
        if !w.obs.members.contains_key(&ordinal) {
            effects.push(Effect::CreateNode { ordinal });
        }
    }
    // A down master that no member can be matched to (its address changed while it was down)
    // may be any of the down members: none of them restarts while such a master still waits
    // for its replica to take over.
    let unidentified_takeover = w.nodes.iter().any(|(id, n)| {
        !n.reachable
            && n.ordinal.is_none()
            && w.owns_slots(id)
            && !w.takeover_candidates(id).is_empty()
    });
    for (&ordinal, m) in &w.obs.members {
        if m.running {
            continue;
        }
        match restart::of(w, ordinal, m, unidentified_takeover) {
            Restart::Skip => {}
            Restart::Start => effects.push(Effect::CreateNode { ordinal }),
            Restart::StartFresh => {
                effects.push(Effect::DeleteNode { ordinal });
                effects.push(Effect::CreateNode { ordinal });
                fresh += 1;
            }
            Restart::Hold { bump } => {
                held.push(ordinal);
                for on in bump {
                    if !bumps.contains(&Effect::BumpEpoch { on }) {
                        bumps.push(Effect::BumpEpoch { on });
                    }
                }
            }
        }
    }
    if effects.is_empty() && bumps.is_empty() {
        return None;
    }
    let starting = effects
        .iter()
        .filter(|e| matches!(e, Effect::CreateNode { .. }))
        .count();
    let tie_breaks = bumps.len();
    effects.extend(bumps);
    let restarts = tie_breaks > 0
        || effects.iter().any(
            |e| matches!(e, Effect::CreateNode { ordinal } if w.obs.members.contains_key(ordinal)),
        );
    let kind = match (w.cluster_exists(), restarts) {
        (false, _) => Kind::Create,
        (true, true) => Kind::Recover,
        (true, false) if w.slots_by_owner().len() < w.desired.masters as usize => Kind::ScaleOut,
        (true, false) => Kind::Replicas,
    };
    let mut summary = format!("starting {starting} nodes");
    if !held.is_empty() {
        summary.push_str(&format!(
            "; holding back {} crashed masters until their replicas take over or a tie of \
             config epochs is broken",
            held.len()
        ));
    }
    if fresh > 0 {
        summary.push_str(&format!(
            "; {fresh} replaced master(s) without persistence come back as new nodes"
        ));
    }
    if tie_breaks > 0 {
        summary.push_str(&format!(
            "; {tie_breaks} live master(s) share a config epoch with a crashed master: bumping it"
        ));
    }
    Some(Work::new(kind, effects, summary))
}

/// A brand-new cluster: every node is empty and knows no one. Assign slots to the first
/// `masters` ordinals and introduce everyone to node 0; replicas attach once gossip settles.
fn bootstrap(w: &World) -> Work {
    if !w.all_in_range_reachable() {
        let up = (0..w.total())
            .filter(|o| w.reachable.contains_key(o))
            .count();
        return Work::new(
            Kind::Create,
            Vec::new(),
            format!("waiting for nodes to start ({up}/{} up)", w.total()),
        );
    }
    let masters: Vec<Ordinal> = (0..w.total()).take(w.desired.masters as usize).collect();
    let mut effects: Vec<Effect> = even_split(w.desired.masters)
        .into_iter()
        .zip(&masters)
        .map(|(range, &on)| Effect::AddSlots {
            on,
            slots: vec![range],
        })
        .collect();
    let Some(seed) = masters.first().copied() else {
        return Work::new(Kind::Bootstrap, Vec::new(), "no master to bootstrap");
    };
    // Every node introduces itself to the seed, as `redis-cli --cluster create` does; gossip
    // from the seed then spreads the rest. Measured on Redis 7.0 (3x1): this star is ok
    // everywhere at the 2 s writable delay, while a full mesh of MEETs took 2.6-3.0 s: two
    // nodes meeting each other at once race two handshakes, and a node only learns a master's
    // slots from that master's own ping, which the lost race postpones by up to a ping period.
    // A replica also introduces itself to the master it will follow (see `natural_master`),
    // so it can be attached before gossip has reached everyone. No pair meets both ways.
    let meet = |on: Ordinal, to: Ordinal| {
        w.reachable.get(&to).map(|(_, addr, _)| Effect::Meet {
            on,
            ip: addr.ip.clone(),
            port: addr.port,
        })
    };
    for (&on, _) in w.reachable.iter().filter(|(o, _)| w.in_range(**o)) {
        if on == seed {
            continue;
        }
        effects.extend(meet(on, seed));
        match natural_master(w, on) {
            Some(m) if m != seed && m != on => effects.extend(meet(on, m)),
            _ => {}
        }
    }
    Work::new(
        Kind::Bootstrap,
        effects,
        format!(
            "bootstrapping {} masters x {} replicas",
            w.desired.masters, w.desired.replicas
        ),
    )
}

/// The member whose view is the cluster's: the one that knows the most slot owners.
fn anchor(w: &World) -> Option<Ordinal> {
    let owners: BTreeSet<&str> = w.owner.iter().flatten().copied().collect();
    w.reachable
        .keys()
        .map(|ord| {
            let known = owners
                .iter()
                .filter(|id| w.view(*ord, id).is_some())
                .count();
            (std::cmp::Reverse(known), *ord)
        })
        .min()
        .map(|(_, ord)| ord)
}

/// Introduce nodes the cluster does not know, and re-introduce nodes whose address changed.
fn meet(w: &World, degraded: &mut Vec<String>) -> Option<Work> {
    let anchor = anchor(w)?;
    let (_, anchor_addr, _) = w.reachable.get(&anchor)?;
    let anchor_id = w.id_of.get(&anchor)?;
    let mut effects = Vec::new();
    let mut moved = false;
    for (&ord, (_, addr, state)) in &w.reachable {
        if ord == anchor {
            continue;
        }
        let Some(id) = w.id_of.get(&ord) else {
            continue;
        };
        match w.view(anchor, id) {
            // A leaving member the cluster already forgot is never brought back.
            None if !w.in_range(ord) => {}
            // An introduction is already under way in one direction or the other; a second
            // MEET would race it (see `bootstrap`). Redis drops a handshake that does not
            // finish within the node timeout, and then this rule meets them again.
            None if w.handshaking(anchor, addr) || w.handshaking(ord, anchor_addr) => {}
            // A node the anchor's peers already know reaches the anchor by gossip within a
            // ping or two; meeting it from here as well would race that handshake.
            None if w.known_through_peer(anchor, ord) => {}
            None => {
                // Merging two clusters whose slots overlap would let Redis resolve the conflict
                // by epoch and silently drop one side's keys. A node whose slots nobody else
                // claims (a bootstrap interrupted between ADDSLOTS and MEET) merges safely.
                let conflict = state.myself().is_some_and(|me| {
                    crate::slots::expand(&me.slots)
                        .any(|s| w.owner[usize::from(s)].is_some_and(|o| o != *id))
                });
                if conflict {
                    degraded.push(format!(
                        "node #{ord} ({addr}) serves slots of another cluster; it is left alone"
                    ));
                    continue;
                }
                effects.push(Effect::Meet {
                    on: anchor,
                    ip: addr.ip.clone(),
                    port: addr.port,
                });
            }
            Some(e) if e.addr.as_ref() != Some(*addr) || e.flags.noaddr => {
                moved = true;
                effects.push(Effect::Meet {
                    on: anchor,
                    ip: addr.ip.clone(),
                    port: addr.port,
                });
            }
            Some(_) if w.view(ord, anchor_id).is_none() && !w.handshaking(ord, anchor_addr) => {
                effects.push(Effect::Meet {
                    on: ord,
                    ip: anchor_addr.ip.clone(),
                    port: anchor_addr.port,
                });
            }
            Some(_) => {}
        }
    }
    if effects.is_empty() {
        return None;
    }
    let n = effects.len();
    let (kind, why) = if moved {
        (Kind::Recover, "re-introducing nodes whose address changed")
    } else if w.slots_by_owner().len() < w.desired.masters as usize {
        (Kind::ScaleOut, "introducing new nodes")
    } else {
        (Kind::Replicas, "introducing new nodes")
    };
    Some(Work::new(kind, effects, format!("{why} ({n})")))
}

/// Node ids the cluster remembers that no member runs any more (a node restarted without its
/// `nodes.conf` gets a new id; the old one lingers as failed). Only forgotten when every member
/// answered, when flagged failed, and when they own no slot.
fn forget_ghosts(w: &World) -> Option<Work> {
    if !w.all_members_reachable() {
        return None;
    }
    let members = w.member_ids();
    let mut effects = Vec::new();
    for (id, n) in &w.nodes {
        // Every member answered, so an id no member runs is a ghost whatever its flags: a
        // node that missed a FORGET keeps a removed id as `fail?` for ever, since the masters
        // that could confirm the failure have forgotten it. Handshake ids are temporary and
        // left alone.
        if members.contains(id) || n.reachable || n.entry.flags.handshake {
            continue;
        }
        if w.owns_slots(id) || w.listed_with_slots(id) {
            continue;
        }
        // Redis clears every marker that names a node it forgets: a slot migrating to a
        // target that died would silently close, and keys that had moved (on the target's
        // promoted replica) would be left where no marker shows them. The repair goes first.
        if w.named_by_open_slot(id) {
            continue;
        }
        for (&ord, (_, _, s)) in &w.reachable {
            let is_its_master = s.myself().and_then(|me| me.master_id.as_deref()) == Some(*id);
            if w.view(ord, id).is_some() && !is_its_master {
                effects.push(Effect::Forget {
                    on: ord,
                    node_id: (*id).to_string(),
                });
            }
        }
    }
    if effects.is_empty() {
        return None;
    }
    Some(Work::new(
        Kind::Recover,
        effects,
        "forgetting failed nodes that no member runs any more",
    ))
}

/// Masters: promote in-range replicas of leaving masters, pick the masters to keep, assign
/// unclaimed slots and move slots so every kept master holds its share.
fn masters(w: &World) -> Option<Work> {
    let d = w.desired;
    let by_owner = w.slots_by_owner();
    let mut owners: Vec<(Ordinal, &str)> = by_owner
        .keys()
        .filter_map(|id| w.ordinal_of(id).map(|o| (o, *id)))
        .collect();
    owners.sort();

    // A leaving master with a replica that stays: hand over by a coordinated failover
    // (no write lost), which is cheaper than moving its slots.
    let mut effects = Vec::new();
    for (ord, id) in &owners {
        if w.in_range(*ord) {
            continue;
        }
        let best = w
            .replicas_of(id)
            .into_iter()
            .filter_map(|(_, r)| r.ordinal.filter(|o| w.in_range(*o) && r.reachable))
            .filter(|o| w.state(*o).is_some_and(|s| s.master_link_up))
            .min();
        if let Some(on) = best {
            effects.push(Effect::Failover {
                on,
                mode: FailoverMode::Default,
            });
        }
    }
    if !effects.is_empty() {
        return Some(Work::new(
            Kind::ScaleIn,
            effects,
            "handing leaving masters' slots to their replicas",
        ));
    }

    // Keep in-range owners (lowest ordinals first), then fill up with empty masters.
    let mut keep: Vec<(Ordinal, &str)> = owners
        .iter()
        .filter(|(o, _)| w.in_range(*o))
        .take(d.masters as usize)
        .cloned()
        .collect();
    let kept: BTreeSet<&str> = keep.iter().map(|(_, id)| *id).collect();
    for &ord in w.reachable.keys() {
        if keep.len() >= d.masters as usize || !w.in_range(ord) {
            break;
        }
        let Some(id) = w.id_of.get(&ord) else {
            continue;
        };
        let Some(n) = w.nodes.get(id) else { continue };
        let empty = w.state(ord).is_some_and(|s| s.keys == 0);
        if n.is_master() && n.entry.slots.is_empty() && empty && !kept.contains(id) {
            keep.push((ord, id));
        }
    }
    if keep.len() < d.masters as usize {
        // Not enough empty masters: turn a spare replica into one. A soft reset flushes the
        // replica's copy (its master keeps the data) and makes it an empty master.
        let keep_ids: BTreeSet<&str> = keep.iter().map(|(_, id)| *id).collect();
        let spare = w
            .reachable
            .keys()
            .copied()
            .filter(|o| w.in_range(*o))
            .find(|o| {
                w.id_of
                    .get(o)
                    .and_then(|id| w.nodes.get(id))
                    .is_some_and(|n| !n.is_master() && !keep_ids.contains(n.entry.id.as_str()))
            });
        if let Some(on) = spare {
            return Some(Work::new(
                Kind::ScaleOut,
                vec![Effect::ResetNode { on, hard: false }],
                format!("turning replica #{on} into an empty master"),
            ));
        }
        return Some(Work::wait(format!(
            "waiting for {} more empty masters",
            d.masters as usize - keep.len()
        )));
    }
    // Never move slots to a master before it reports cluster_state:ok and everyone knows it.
    let unready: Vec<String> = keep
        .iter()
        .filter(|(o, _)| !w.state(*o).is_some_and(|s| s.cluster_ok))
        .map(|(o, _)| format!("#{o}"))
        .collect();

    let keep_ids: BTreeSet<&str> = keep.iter().map(|(_, id)| *id).collect();
    let mut input: Vec<MasterSlots<Option<&str>>> = Vec::new();
    let unclaimed = w.unclaimed_slots();
    if !unclaimed.is_empty() {
        input.push(MasterSlots {
            key: None,
            slots: unclaimed,
            weight: 0,
        });
    }
    for (id, slots) in by_owner {
        input.push(MasterSlots {
            key: Some(*id),
            slots: slots.clone(),
            weight: u32::from(keep_ids.contains(id)),
        });
    }
    for (_, id) in &keep {
        if !by_owner.contains_key(id) {
            input.push(MasterSlots {
                key: Some(*id),
                slots: Vec::new(),
                weight: 1,
            });
        }
    }
    let moves = planner::plan(&input, d.rebalance_threshold_pct);
    if moves.is_empty() {
        return None;
    }
    let drains = moves
        .iter()
        .any(|m| m.from.is_some_and(|id| !keep_ids.contains(id)));
    let kind = if drains {
        Kind::ScaleIn
    } else {
        Kind::ScaleOut
    };
    if !unready.is_empty() && moves.iter().any(|m| m.from.is_some()) {
        let mut work = Work::wait(format!(
            "waiting for masters {} to report cluster_state:ok before moving slots",
            unready.join(", ")
        ));
        work.kind = kind;
        return Some(work);
    }
    // Keys only move to a master that has a copy of them elsewhere: a target that died with
    // no synced replica would take every key moved to it along (`redis-cli --cluster` has
    // that weakness). Its replicas are attached and synced first; slots that carry no key
    // (never assigned) need no such wait.
    if d.replicas > 0 {
        let mut unprotected: Vec<&str> = moves
            .iter()
            .filter(|m| m.from.is_some())
            .filter_map(|m| m.to)
            .filter(|to| !w.has_synced_replica(to))
            .collect();
        unprotected.sort_unstable();
        unprotected.dedup();
        if !unprotected.is_empty()
            && let Some(work) = protect_targets(w, &keep_ids, &unprotected, kind)
        {
            return Some(work);
        }
    }
    let mut slots_moved = 0;
    for mv in &moves {
        let Some(to_id) = mv.to else { continue };
        let Some(to) = w.ordinal_of(to_id) else {
            continue;
        };
        slots_moved += mv.slot_count();
        match mv.from {
            None => effects.push(Effect::AddSlots {
                on: to,
                slots: mv.slots.clone(),
            }),
            Some(from_id) => {
                let Some(from) = w.ordinal_of(from_id) else {
                    continue;
                };
                effects.push(Effect::MigrateSlots {
                    from,
                    from_id: from_id.to_string(),
                    to,
                    to_id: to_id.to_string(),
                    slots: mv.slots.clone(),
                });
            }
        }
    }
    let what = if drains {
        "draining masters"
    } else {
        "rebalancing slots"
    };
    Some(Work::new(
        kind,
        effects,
        format!(
            "{what}: moving {slots_moved} slots in {} moves",
            moves.len()
        ),
    ))
}

/// Members beyond the desired count that hold nothing: forgotten by every other node, then
/// deleted. A master is removed only once no slot, no key and no replica is left on it.
fn remove_leaving(w: &World) -> (Vec<Effect>, bool) {
    let mut effects = Vec::new();
    let mut masters_removed = false;
    let leaving: Vec<Ordinal> = w
        .obs
        .members
        .keys()
        .copied()
        .filter(|o| !w.in_range(*o))
        .collect();
    for ord in leaving {
        let Some(id) = w.id_of.get(&ord).copied() else {
            // Never joined, or down and unrecognisable (its address changed while it was
            // down). Deleted only when every slot owner is accounted for, so it cannot be one.
            let unidentified_owner = w.nodes.iter().any(|(id, n)| {
                n.ordinal.is_none() && (w.owns_slots(id) || w.listed_with_slots(id))
            });
            if !unidentified_owner {
                effects.push(Effect::DeleteNode { ordinal: ord });
            }
            continue;
        };
        let Some(n) = w.nodes.get(id) else { continue };
        // Whatever it says of itself, while some view still gives it slots it is not removed:
        // that view would route clients to it (gossip converges, then it goes). Nor while a
        // slot is open towards or from it: forgetting it would clear that marker.
        if w.owns_slots(id) || w.listed_with_slots(id) || w.named_by_open_slot(id) {
            continue;
        }
        let is_master = n.is_master();
        // A replica is only a copy while its master answers; with the master down it may hold
        // the only copy of a shard (and be the one to take over), so it stays.
        if let Some(m) = n.entry.master_id.as_deref()
            && (w.owns_slots(m) || w.listed_with_slots(m))
            && !w.nodes.get(m).is_some_and(|x| x.reachable && x.is_master())
        {
            continue;
        }
        if is_master {
            let holds = !n.entry.slots.is_empty()
                || w.owns_slots(id)
                || w.listed_with_slots(id)
                // Down and owning no slot, it holds nothing any slot's owner lacks.
                || w.state(ord).is_some_and(|s| s.keys > 0)
                || !w.replicas_of(id).is_empty();
            if holds {
                continue;
            }
            masters_removed = true;
        }
        // Only members that stay are told to forget: leaving ones are deleted in this same
        // pass, and a node deleted earlier in the list could not answer anyway.
        for (&other, (_, _, s)) in &w.reachable {
            let its_master = s.myself().and_then(|me| me.master_id.as_deref()) == Some(id);
            if w.in_range(other) && w.view(other, id).is_some() && !its_master {
                effects.push(Effect::Forget {
                    on: other,
                    node_id: id.to_string(),
                });
            }
        }
        effects.push(Effect::DeleteNode { ordinal: ord });
    }
    (effects, masters_removed)
}

fn converged(w: &World, degraded: &[String]) -> Work {
    let not_ok: Vec<String> = w
        .reachable
        .iter()
        .filter(|(_, (_, _, s))| !s.cluster_ok)
        .map(|(o, _)| format!("#{o}"))
        .collect();
    if !not_ok.is_empty() {
        return Work::wait(format!(
            "waiting for cluster_state:ok on {}",
            not_ok.join(", ")
        ));
    }
    if !w.slots_agreed {
        return Work::wait("waiting for every node to agree on the slot map");
    }
    if !w.roles_agreed() {
        return Work::wait("waiting for every node to agree on who replicates whom");
    }
    // A replica is a copy only once its first sync finished (Redis may delay it by seconds).
    let syncing: Vec<String> = w
        .reachable
        .iter()
        .filter(|(_, (_, _, s))| {
            s.myself().is_some_and(|me| me.master_id.is_some()) && !s.master_link_up
        })
        .map(|(o, _)| format!("#{o}"))
        .collect();
    if !syncing.is_empty() {
        return Work::wait(format!(
            "waiting for replicas {} to sync",
            syncing.join(", ")
        ));
    }
    if !degraded.is_empty() {
        return Work::wait("cluster serves every slot but needs attention");
    }
    Work::new(
        Kind::Converged,
        Vec::new(),
        format!(
            "cluster is ready: {} masters x {} replicas",
            w.desired.masters, w.desired.replicas
        ),
    )
}
