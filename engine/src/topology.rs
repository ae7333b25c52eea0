//! Master topology: replicas of leaving masters promoted, the masters to keep chosen, unclaimed
//! slots assigned and slots moved so every kept master holds its share.

use crate::effect::{Effect, FailoverMode};
use crate::model::Ordinal;
use crate::planner::{self, MasterSlots};
use crate::replicas::protect_targets;
use crate::work::{Kind, Work};
use crate::world::World;
use std::collections::BTreeSet;

/// Masters: promote in-range replicas of leaving masters, pick the masters to keep, assign
/// unclaimed slots and move slots so every kept master holds its share.
pub(crate) fn masters(w: &World) -> Option<Work> {
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
    let mut moves = planner::plan(&input, d.rebalance_threshold_pct, pair_size(w, &input));
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
        // Slots nobody was ever given (an ADDSLOTS lost during bootstrap) keep every master
        // at `cluster_state:fail`: they are assigned first, or this wait would never end.
        if moves.iter().any(|m| m.from.is_none()) {
            moves.retain(|m| m.from.is_none());
        } else {
            let mut work = Work::wait(format!(
                "waiting for masters {} to report cluster_state:ok before moving slots",
                unready.join(", ")
            ));
            work.kind = kind;
            // A new master turns `ok` at a moment no observation can predict: Redis' 2 s
            // writable delay after it starts. Looking often starts the moves soon after.
            work.requeue_ms = Some(crate::gossip::recheck_ms(w));
            return Some(work);
        }
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
        if !unprotected.is_empty() {
            if let Some(work) = protect_targets(w, &keep_ids, &unprotected, kind) {
                return Some(work);
            }
            // No node can become their replica right now (a new node not introduced yet, or,
            // in a scale-in, the future replicas are the masters being drained): moves to
            // masters that have a copy go first, and those masters are only targets once
            // nothing else can move (simulator seed 10946).
            let exposed = |m: &planner::Move<Option<&str>>| {
                m.from.is_some() && m.to.is_some_and(|to| unprotected.contains(&to))
            };
            if moves.iter().any(|m| !exposed(m)) {
                moves.retain(|m| !exposed(m));
            }
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

/// Larger pairs only when every master the plan could touch (an owner, a receiver) answered
/// and says its server hands over source-first: one node on Redis 7.0-7.2 (a rolling upgrade
/// half done) keeps every move small.
fn pair_size(w: &World, input: &[MasterSlots<Option<&str>>]) -> planner::PairSize {
    let all_safe = input.iter().all(|m| {
        m.key.is_some_and(|id| {
            w.ordinal_of(id)
                .and_then(|o| w.state(o))
                .is_some_and(|s| s.hands_over_source_first)
        })
    });
    if all_safe {
        planner::PairSize::AtLeast(planner::LARGE_PAIR_SLOTS)
    } else {
        planner::PairSize::Spread
    }
}
