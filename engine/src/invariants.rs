//! Safety and convergence checks over decisions and observations, shared by the simulator and
//! by trace replay. Pure: they read what was observed and what was decided, nothing else.
//!
//! Both checks judge only from the observation, the same knowledge the engine had: a check that
//! used hidden ground truth could blame the engine for something it could not see.

use crate::decision::Decision;
use crate::desired::Desired;
use crate::effect::Effect;
use crate::model::{NodeState, Observation, Ordinal};
use crate::slots::{self, SLOT_COUNT, SlotRange};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One broken rule, said in plain English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub message: String,
}

impl Violation {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A node's view reduced to what all nodes must agree on: id -> (master id, slots).
type ViewMap = BTreeMap<String, (Option<String>, Vec<SlotRange>)>;

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Reachable nodes by ordinal.
fn reachable(obs: &Observation) -> impl Iterator<Item = (Ordinal, &NodeState)> {
    obs.members
        .iter()
        .filter_map(|(o, m)| m.redis.as_ref().map(|r| (*o, r)))
}

/// The node id of a member: its own answer, or else the id other nodes list at its address
/// (of several, one restarted there as a new node, the one heard from last, as the engine's
/// `World` reads it).
fn id_of(obs: &Observation, ordinal: Ordinal) -> Option<String> {
    let member = obs.members.get(&ordinal)?;
    if let Some(r) = &member.redis {
        return Some(r.id.clone());
    }
    let addr = member.addr.as_ref()?;
    let answering: BTreeSet<&str> = reachable(obs).map(|(_, r)| r.id.as_str()).collect();
    let mut last_pong: BTreeMap<&str, u64> = BTreeMap::new();
    for n in reachable(obs).flat_map(|(_, r)| r.nodes.iter()) {
        if n.addr.as_ref() == Some(addr) && !n.flags.myself && !answering.contains(n.id.as_str()) {
            let t = last_pong.entry(n.id.as_str()).or_default();
            *t = (*t).max(n.pong_recv_ms);
        }
    }
    last_pong
        .into_iter()
        .max_by_key(|(id, t)| (*t, std::cmp::Reverse(*id)))
        .map(|(id, _)| id.to_string())
}

/// Keys on `id` that would be lost with it. A replica's keys are copies of its master's, so
/// they count only when that master is not a reachable master (the replica may hold the only
/// copy then) and still owns slots somewhere: a master whose slots all moved on (taken over by
/// another replica) no longer defines any slot's data, its current owners do.
fn unique_keys(obs: &Observation, r: &NodeState) -> u64 {
    let Some(master) = r.myself().and_then(|m| m.master_id.clone()) else {
        return r.keys;
    };
    let master_alive =
        reachable(obs).any(|(_, m)| m.id == master && m.myself().is_some_and(|me| me.flags.master));
    let master_owns_slots = reachable(obs).any(|(_, s)| {
        s.nodes
            .iter()
            .any(|n| n.id == master && !n.slots.is_empty() && n.master_id.is_none())
    });
    if master_alive || !master_owns_slots {
        0
    } else {
        r.keys
    }
}

/// Whether any reachable node's view gives `id` any slot.
fn claimed_slots_anywhere(obs: &Observation, id: &str) -> u32 {
    reachable(obs)
        .flat_map(|(_, r)| r.nodes.iter())
        .filter(|n| n.id == id)
        .map(|n| n.slot_count())
        .max()
        .unwrap_or(0)
}

/// Checks that one decision is safe to execute in the observed world.
pub fn check_decision(desired: &Desired, obs: &Observation, decision: &Decision) -> Vec<Violation> {
    let mut out = Vec::new();
    if !desired.problems.is_empty() && !decision.effects.is_empty() {
        out.push(Violation::new(format!(
            "the spec is invalid ({}) yet the decision has {} effect(s); an invalid spec must touch nothing",
            desired.problems.join("; "),
            decision.effects.len()
        )));
    }
    for effect in &decision.effects {
        match effect {
            Effect::DeleteData { ordinal }
                if obs.members.get(ordinal).is_some_and(|m| m.running)
                    && !decision
                        .effects
                        .contains(&Effect::DeleteNode { ordinal: *ordinal }) =>
            {
                out.push(Violation::new(format!(
                    "deletes the storage of node #{ordinal}, which runs and is not deleted first"
                )));
            }
            // A restart without persistence (wanted, and on in the node now) empties the node:
            // a master that owns slots, or a replica that is its master's only copy while that
            // master is gone, would take its keys with it.
            Effect::ReplaceNode { ordinal } => {
                let Some(r) = obs.members.get(ordinal).and_then(|m| m.redis.as_ref()) else {
                    continue;
                };
                let persists = r
                    .config
                    .get(crate::desired::PERSISTENCE_SETTING)
                    .is_some_and(|v| v == "yes");
                if desired.persistent && persists {
                    continue;
                }
                let owned = if r.myself().is_some_and(|me| me.master_id.is_none()) {
                    claimed_slots_anywhere(obs, &r.id)
                } else {
                    0
                };
                let keys = unique_keys(obs, r);
                if owned > 0 || keys > 0 {
                    out.push(Violation::new(format!(
                        "{effect} without persistence on: node #{ordinal} ({}) owns {owned} slot(s) and holds {keys} key(s) no other node has",
                        short(&r.id)
                    )));
                }
            }
            // Deleting the cluster deletes its data: the user asked for exactly that.
            Effect::DeleteNode { .. } | Effect::DeleteData { .. } if desired.deleting => {}
            Effect::DeleteNode { ordinal } | Effect::DeleteData { ordinal } => {
                let Some(id) = id_of(obs, *ordinal) else {
                    continue;
                };
                let owned = claimed_slots_anywhere(obs, &id);
                let keys = obs
                    .members
                    .get(ordinal)
                    .and_then(|m| m.redis.as_ref())
                    .map_or(0, |r| unique_keys(obs, r));
                if owned > 0 || keys > 0 {
                    out.push(Violation::new(format!(
                        "{effect}: node #{ordinal} ({}) still owns {owned} slot(s) and holds {keys} key(s)",
                        short(&id)
                    )));
                }
            }
            Effect::Forget { on, node_id } => {
                let own = reachable(obs)
                    .find(|(_, r)| r.id == *node_id)
                    .map(|(_, r)| r);
                let (own_slots, keys) = own.map_or((0, 0), |r| {
                    (
                        r.myself().map_or(0, |m| m.slot_count()),
                        unique_keys(obs, r),
                    )
                });
                let in_view = obs
                    .members
                    .get(on)
                    .and_then(|m| m.redis.as_ref())
                    .and_then(|r| r.view_of(node_id))
                    .map_or(0, |n| n.slot_count());
                if own_slots > 0 || keys > 0 || in_view > 0 {
                    out.push(Violation::new(format!(
                        "#{on} forgets {} which owns {} slot(s) ({in_view} in #{on}'s view) and holds {keys} key(s)",
                        short(node_id),
                        own_slots.max(in_view)
                    )));
                }
            }
            Effect::AddSlots { on, slots: ranges } => {
                let me = id_of(obs, *on).unwrap_or_default();
                // Range intersections, not slot sets: this runs on every simulated step.
                let mut busy: Vec<u16> = Vec::new();
                for (_, r) in reachable(obs) {
                    for n in r.nodes.iter().filter(|n| n.id != me) {
                        for a in &n.slots {
                            for b in ranges {
                                let (lo, hi) = (a.start.max(b.start), a.end.min(b.end));
                                if lo <= hi {
                                    busy.extend(lo..=hi);
                                }
                            }
                        }
                    }
                }
                if !busy.is_empty() {
                    let busy = slots::to_ranges(busy);
                    out.push(Violation::new(format!(
                        "#{on} adds {} slot(s) that another node claims: {}",
                        slots::count(&busy),
                        slots::format_ranges(&busy)
                    )));
                }
            }
            Effect::SetSlotOwner { on, slot, owner_id } => {
                for (o, r) in reachable(obs) {
                    if r.id == *owner_id {
                        continue;
                    }
                    let owns = r.myself().is_some_and(|m| {
                        m.slots.iter().any(|x| x.start <= *slot && *slot <= x.end)
                    });
                    if !owns {
                        continue;
                    }
                    // Key counts per slot are only observed for open slots; a closed slot on a
                    // node holding keys may hold some of them, and Redis would refuse anyway.
                    let keys_in_slot = match r.open_slot_keys.get(slot) {
                        Some(k) => *k,
                        None => r.keys,
                    };
                    if keys_in_slot > 0 {
                        out.push(Violation::new(format!(
                            "#{on}: SETSLOT {slot} NODE {} moves the slot away from #{o} which may still hold {keys_in_slot} key(s) in it",
                            short(owner_id)
                        )));
                    }
                }
            }
            Effect::RestoreDroppedKeys {
                from,
                to,
                to_id,
                slot,
            } => {
                // Keys are put back only where they were dropped: onto the master of the
                // replica that kept them, for a slot no answering master claims.
                let replica_of = obs
                    .members
                    .get(from)
                    .and_then(|m| m.redis.as_ref())
                    .and_then(|r| r.myself())
                    .and_then(|me| me.master_id.clone());
                if replica_of.as_deref() != Some(to_id.as_str()) {
                    out.push(Violation::new(format!(
                        "#{to}: keys of slot {slot} copied back from #{from}, which does not replicate it"
                    )));
                }
                for (o, r) in reachable(obs) {
                    let claims = r.myself().is_some_and(|m| {
                        m.is_master() && m.slots.iter().any(|x| x.start <= *slot && *slot <= x.end)
                    });
                    if claims && r.id != *to_id {
                        out.push(Violation::new(format!(
                            "#{to}: keys of slot {slot} copied back while #{o} claims the slot"
                        )));
                    }
                }
            }
            Effect::BumpEpoch { on } => {
                // A newer epoch makes every claim of `on` win: none may be contested by
                // another live master's own claim.
                let Some(me) = obs
                    .members
                    .get(on)
                    .and_then(|m| m.redis.as_ref())
                    .and_then(|r| r.myself())
                else {
                    continue;
                };
                for (o, r) in reachable(obs) {
                    let Some(other) = r.myself().filter(|m| m.id != me.id) else {
                        continue;
                    };
                    if slots::overlap(&other.slots, &me.slots) {
                        out.push(Violation::new(format!(
                            "#{on}: BUMPEPOCH while #{o} claims some of the same slots: the newer epoch would take them from it"
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Checks that the observed cluster is exactly the desired, healthy shape.
pub fn check_converged(desired: &Desired, obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    let total = desired.total_nodes();
    let ordinals: Vec<Ordinal> = obs.members.keys().copied().collect();
    let expected: Vec<Ordinal> = (0..total).collect();
    if ordinals != expected {
        out.push(Violation::new(format!(
            "members are {ordinals:?}, expected ordinals 0..{total}"
        )));
    }
    let mut ids: BTreeMap<&str, Ordinal> = BTreeMap::new();
    for (o, m) in &obs.members {
        match &m.redis {
            None => out.push(Violation::new(format!(
                "member #{o} is not reachable (running: {})",
                m.running
            ))),
            Some(r) => {
                if !r.cluster_ok {
                    out.push(Violation::new(format!("#{o} reports cluster_state:fail")));
                }
                for (name, want) in &desired.live_config {
                    if let Some(have) = r.config.get(name).filter(|have| *have != want) {
                        out.push(Violation::new(format!(
                            "#{o} runs with {name} {have}, the spec asks for {want}"
                        )));
                    }
                }
                if let Some(prev) = ids.insert(r.id.as_str(), *o) {
                    out.push(Violation::new(format!(
                        "#{prev} and #{o} share node id {}",
                        short(&r.id)
                    )));
                }
                if let Some(me) = r.myself()
                    && !me.open_slots.is_empty()
                {
                    out.push(Violation::new(format!(
                        "#{o} still has {} open slot(s)",
                        me.open_slots.len()
                    )));
                }
            }
        }
    }
    if !out.is_empty() {
        return out;
    }
    // Every view must list exactly the members, with the same roles and slot map.
    let member_ids: BTreeSet<&str> = ids.keys().copied().collect();
    let mut reference: Option<(Ordinal, ViewMap)> = None;
    for (o, r) in reachable(obs) {
        let view_ids: BTreeSet<&str> = r.nodes.iter().map(|n| n.id.as_str()).collect();
        if view_ids != member_ids {
            out.push(Violation::new(format!(
                "#{o} knows {} node(s) but the members are {}",
                view_ids.len(),
                member_ids.len()
            )));
        }
        if let Some(n) = r.nodes.iter().find(|n| n.flags.pfail || n.flags.fail) {
            out.push(Violation::new(format!(
                "#{o} flags {} as failing",
                short(&n.id)
            )));
        }
        let map: ViewMap = r
            .nodes
            .iter()
            .map(|n| (n.id.clone(), (n.master_id.clone(), n.slots.clone())))
            .collect();
        match &reference {
            None => reference = Some((o, map)),
            Some((ro, rmap)) if *rmap != map => out.push(Violation::new(format!(
                "#{o} and #{ro} disagree on roles or the slot map"
            ))),
            Some(_) => {}
        }
    }
    let Some((_, map)) = reference else {
        return out;
    };
    let mut owner = vec![0u8; usize::from(SLOT_COUNT)];
    for (_, ranges) in map.values() {
        for s in slots::expand(ranges) {
            if let Some(c) = owner.get_mut(usize::from(s)) {
                *c = c.saturating_add(1);
            }
        }
    }
    let unowned = owner.iter().filter(|c| **c == 0).count();
    let multi = owner.iter().filter(|c| **c > 1).count();
    if unowned > 0 || multi > 0 {
        out.push(Violation::new(format!(
            "{unowned} slot(s) have no owner and {multi} have several"
        )));
    }
    let masters: Vec<&String> = map
        .iter()
        .filter(|(_, (m, s))| m.is_none() && !s.is_empty())
        .map(|(id, _)| id)
        .collect();
    if masters.len() != desired.masters as usize {
        out.push(Violation::new(format!(
            "{} master(s) own slots, expected {}",
            masters.len(),
            desired.masters
        )));
    }
    for m in &masters {
        let replicas = map
            .values()
            .filter(|(mid, _)| mid.as_deref() == Some(m.as_str()))
            .count();
        if replicas != desired.replicas as usize {
            out.push(Violation::new(format!(
                "master {} has {replicas} replica(s), expected {}",
                short(m),
                desired.replicas
            )));
        }
    }
    let idle = map
        .iter()
        .filter(|(_, (m, s))| m.is_none() && s.is_empty())
        .count();
    if idle > 0 {
        out.push(Violation::new(format!("{idle} master(s) own no slot")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Decision, Phase};
    use crate::model::{Addr, ClusterNode, LinkState, Member, NodeFlags};

    fn id(n: u32) -> String {
        format!("{n:040x}")
    }

    /// A healthy cluster of `masters` masters (ordinals 0..masters) with slots split evenly,
    /// each with `replicas` replicas; every node sees the same picture.
    fn healthy(masters: u32, replicas: u32, keys: u64) -> Observation {
        let ranges = slots::even_split(masters);
        let total = masters * (replicas + 1);
        let master_of = |o: u32| (o >= masters).then(|| (o - masters) / replicas.max(1));
        let line = |o: u32, me: u32| ClusterNode {
            id: id(o),
            addr: Some(Addr::new(format!("10.0.0.{o}"), 6379)),
            hostname: None,
            flags: NodeFlags {
                myself: o == me,
                master: master_of(o).is_none(),
                replica: master_of(o).is_some(),
                ..NodeFlags::default()
            },
            master_id: master_of(o).map(id),
            ping_sent_ms: 0,
            pong_recv_ms: 0,
            config_epoch: u64::from(o),
            link: LinkState::Connected,
            slots: if master_of(o).is_none() {
                vec![ranges[o as usize]]
            } else {
                vec![]
            },
            open_slots: vec![],
        };
        let members = (0..total)
            .map(|me| {
                let state = NodeState {
                    id: id(me),
                    nodes: (0..total).map(|o| line(o, me)).collect(),
                    cluster_ok: true,
                    current_epoch: u64::from(total),
                    repl_offset: 0,
                    master_link_up: master_of(me).is_some(),
                    keys,
                    open_slot_keys: BTreeMap::new(),
                    ever_linked: true,
                    serves_replicas: true,
                    replicates_from: None,
                    hands_over_source_first: false,
                    replid: None,
                    config: Default::default(),
                };
                let m = Member {
                    ordinal: me,
                    addr: Some(Addr::new(format!("10.0.0.{me}"), 6379)),
                    running: true,
                    host: None,
                    fingerprint: None,
                    redis: Some(state),
                };
                (me, m)
            })
            .collect();
        Observation {
            now_ms: 0,
            members,
            ..Observation::default()
        }
    }

    fn deciding(effects: Vec<Effect>) -> Decision {
        Decision {
            phase: Phase::Ready,
            effects,
            conditions: vec![],
            requeue_ms: None,
            summary: String::new(),
        }
    }

    #[test]
    fn a_healthy_cluster_of_the_desired_shape_is_converged() {
        let obs = healthy(3, 1, 10);
        assert_eq!(check_converged(&Desired::new(3, 1), &obs), vec![]);
    }

    #[test]
    fn the_wrong_number_of_replicas_or_a_failing_flag_is_not_converged() {
        let obs = healthy(3, 1, 10);
        assert!(!check_converged(&Desired::new(3, 2), &obs).is_empty());
        let mut obs = healthy(3, 0, 10);
        if let Some(r) = obs.members.get_mut(&1).and_then(|m| m.redis.as_mut()) {
            r.nodes.entries_mut()[2].flags.pfail = true;
        }
        let v = check_converged(&Desired::new(3, 0), &obs);
        assert!(v.iter().any(|v| v.message.contains("flags")), "{v:?}");
    }

    #[test]
    fn deleting_or_forgetting_a_master_with_slots_is_a_violation() {
        let obs = healthy(3, 0, 10);
        let d = Desired::new(3, 0);
        let v = check_decision(&d, &obs, &deciding(vec![Effect::DeleteNode { ordinal: 1 }]));
        assert_eq!(v.len(), 1, "{v:?}");
        let forget = Effect::Forget {
            on: 0,
            node_id: id(2),
        };
        assert_eq!(check_decision(&d, &obs, &deciding(vec![forget])).len(), 1);
    }

    #[test]
    fn deleting_every_node_of_a_cluster_the_user_deleted_is_not_a_violation() {
        // Found by the `decide` fuzz target: `deleting` means the resource is gone, and its
        // nodes and data go with it.
        let obs = healthy(3, 0, 10);
        let mut d = Desired::new(3, 0);
        d.deleting = true;
        let all: Vec<Effect> = (0..3)
            .flat_map(|o| {
                [
                    Effect::DeleteNode { ordinal: o },
                    Effect::DeleteData { ordinal: o },
                ]
            })
            .collect();
        assert_eq!(check_decision(&d, &obs, &deciding(all)), vec![]);
    }

    #[test]
    fn forgetting_a_replica_whose_master_is_alive_is_safe() {
        let obs = healthy(3, 1, 10);
        let forget = Effect::Forget {
            on: 0,
            node_id: id(4),
        };
        assert_eq!(
            check_decision(&Desired::new(3, 1), &obs, &deciding(vec![forget])),
            vec![]
        );
    }

    #[test]
    fn adding_a_slot_another_node_claims_is_a_violation() {
        let obs = healthy(3, 0, 0);
        let add = Effect::AddSlots {
            on: 0,
            slots: vec![SlotRange::new(5460, 5470)],
        };
        let v = check_decision(&Desired::new(3, 0), &obs, &deciding(vec![add]));
        assert!(v[0].message.contains("5462-5470"), "{v:?}");
    }

    #[test]
    fn moving_a_slot_away_from_a_node_holding_keys_in_it_is_a_violation() {
        let mut obs = healthy(3, 0, 10);
        let set = Effect::SetSlotOwner {
            on: 0,
            slot: 0,
            owner_id: id(1),
        };
        let d = Desired::new(3, 0);
        assert_eq!(
            check_decision(&d, &obs, &deciding(vec![set.clone()])).len(),
            1
        );
        // Once the open slot is empty on its owner, the move is safe.
        if let Some(r) = obs.members.get_mut(&0).and_then(|m| m.redis.as_mut()) {
            r.open_slot_keys.insert(0, 0);
        }
        assert_eq!(check_decision(&d, &obs, &deciding(vec![set])), vec![]);
    }

    #[test]
    fn any_effect_under_an_invalid_spec_is_a_violation() {
        let obs = healthy(3, 0, 0);
        let mut d = Desired::new(3, 0);
        d.problems.push("masters must be at least 3".into());
        let v = check_decision(&d, &obs, &deciding(vec![Effect::CreateNode { ordinal: 3 }]));
        assert_eq!(v.len(), 1);
        assert_eq!(check_decision(&d, &obs, &deciding(vec![])), vec![]);
    }
}
