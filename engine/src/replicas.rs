//! Replicas: who follows whom, how many per master, and the replicas a master must have before
//! keys move to it.

use crate::effect::Effect;
use crate::model::Ordinal;
use crate::work::{Kind, Work};
use crate::world::World;
use std::collections::{BTreeMap, BTreeSet};

/// Slot moves wait for their targets' replicas: attach one (only to those targets, from the
/// same pool the replica rule uses), or wait for the first sync of one already attached.
/// `None` when no node is free to become one (a cluster scaled in from no replicas, whose
/// spare nodes are the masters being drained): the move then takes nothing a replica held.
pub(crate) fn protect_targets(
    w: &World,
    keep: &BTreeSet<&str>,
    targets: &[&str],
    kind: Kind,
) -> Option<Work> {
    // Only the masters that stay compete for the pool: a leaving master's replicas go with it.
    let mut effects: Vec<Effect> = replicas_of(w, keep, &mut Vec::new())
        .into_iter()
        .filter(|e| matches!(e, Effect::Replicate { master_id, .. } if targets.contains(&master_id.as_str())))
        .collect();
    // A target the pool leaves without a copy (a scale-in whose only spare in-range nodes are
    // the masters being drained) borrows a node that is leaving, as the open-slot repair does:
    // otherwise the keys of sources that had replicas would sit on a node with none until the
    // drain ends (simulator seed 50101, mid-slot kill sweep: the target died and took them).
    for t in targets {
        let planned = effects
            .iter()
            .any(|e| matches!(e, Effect::Replicate { master_id, .. } if master_id == t));
        if planned || w.has_attached_replica(t) {
            continue;
        }
        let taken: Vec<Ordinal> = effects.iter().map(Effect::target).collect();
        if let Some(lent) = lend_leaving(w, t, &taken).filter(|e| knows_master(w, e.target(), t)) {
            effects.push(lent);
        }
    }
    let names: Vec<String> = targets
        .iter()
        .map(|t| match w.ordinal_of(t) {
            Some(o) => format!("#{o}"),
            None => t.get(..8).unwrap_or(t).to_string(),
        })
        .collect();
    if effects.is_empty() {
        if !targets.iter().any(|t| w.has_attached_replica(t)) {
            return None;
        }
        let mut work = Work::wait(format!(
            "waiting for the replicas of {} to sync before moving slots to them",
            names.join(", ")
        ));
        work.kind = kind;
        return Some(work);
    }
    let n = effects.len();
    Some(Work::new(
        kind,
        effects,
        format!(
            "attaching replicas to {} before moving slots to them ({n} steps)",
            names.join(", ")
        ),
    ))
}

/// How a master that must hold keys gets its first replica.
pub(crate) enum ReplicaFor {
    /// Attach this node to it.
    Attach(Effect),
    /// One is attached and has not synced yet.
    Syncing,
}

/// A replica for master `id` (every master's needs counted, so none is robbed), or `None`
/// when no node can become one.
pub(crate) fn replica_for(w: &World, id: Option<&str>) -> Option<ReplicaFor> {
    let id = id?;
    if w.has_attached_replica(id) {
        return Some(ReplicaFor::Syncing);
    }
    let masters: BTreeSet<&str> = w
        .slots_by_owner()
        .keys()
        .copied()
        .chain(std::iter::once(id))
        .collect();
    let plan = replicas_of(w, &masters, &mut Vec::new());
    let replicate = |on: Ordinal| Effect::Replicate {
        on,
        master_id: id.to_string(),
    };
    let knows = |on: Ordinal| knows_master(w, on, id);
    plan.iter()
        .find(|e| matches!(e, Effect::Replicate { master_id, .. } if master_id == id))
        .cloned()
        // The plan counts only replicas that will stay: a master kept safe for now by a
        // replica being removed may wait for its permanent one; `id` has no copy at all.
        .or_else(|| {
            plan.iter().find_map(|e| match e {
                Effect::Replicate { on, master_id }
                    if w.has_attached_replica(master_id) && knows(*on) =>
                {
                    Some(replicate(*on))
                }
                _ => None,
            })
        })
        .or_else(|| lend_leaving(w, id, &[]).filter(|e| knows(e.target())))
        .map(ReplicaFor::Attach)
}

/// Redis refuses `REPLICATE` on `on` towards a node it does not know as a master.
fn knows_master(w: &World, on: Ordinal, id: &str) -> bool {
    w.view(on, id)
        .is_some_and(|e| e.is_master() && !e.flags.handshake && !e.flags.fail)
}

/// A node being removed (beyond the desired count) that can protect `id` for a while: an
/// empty master (no slot, no key), or a replica whose master does not need it (owns no slot,
/// or has another replica). During a scale-in every spare in-range node may
/// be taken; without this, a half-moved slot would be finished towards a node with no copy.
/// The lent node is removed once it holds nothing, like any leaving member.
fn lend_leaving(w: &World, id: &str, taken: &[Ordinal]) -> Option<Effect> {
    let owners = w.slots_by_owner();
    w.reachable
        .iter()
        .filter(|(ord, _)| !w.in_range(**ord) && !taken.contains(ord))
        .find_map(|(ord, (_, _, state))| {
            let me = state.myself()?;
            if !me.slots.is_empty() || me.id == id {
                return None;
            }
            let free = match me.master_id.as_deref() {
                // An empty master: its keys would be flushed by the sync, so it must have none.
                None => state.keys == 0 && !owners.contains_key(me.id.as_str()),
                Some(m) if m == id => return None,
                // A replica's keys are copies; its master must not need it.
                Some(m) => !owners.contains_key(m) || w.replicas_of(m).len() > 1,
            };
            free.then(|| Effect::Replicate {
                on: *ord,
                master_id: id.to_string(),
            })
        })
}

/// Replicas: every master that owns slots gets exactly `replicas` in-range replicas, taken
/// from empty masters and from surplus replicas, preferring a host other than the master's.
pub(crate) fn replicas(w: &World, degraded: &mut Vec<String>) -> Vec<Effect> {
    let masters: BTreeSet<&str> = w.slots_by_owner().keys().copied().collect();
    replicas_of(w, &masters, degraded)
}

/// The replica rule for a given set of masters (those owning slots, and, before a scale-out
/// moves keys, the empty masters chosen to receive them).
fn replicas_of(w: &World, masters: &BTreeSet<&str>, degraded: &mut Vec<String>) -> Vec<Effect> {
    let mut have: BTreeMap<&str, Vec<Ordinal>> = masters.iter().map(|m| (*m, Vec::new())).collect();
    let mut pool: Vec<Ordinal> = Vec::new();
    for &ord in w.reachable.keys() {
        if !w.in_range(ord) {
            continue;
        }
        let Some(id) = w.id_of.get(&ord) else {
            continue;
        };
        let Some(n) = w.nodes.get(id) else { continue };
        // A master that still owns slots (one being drained) is no replica yet: Redis
        // refuses `REPLICATE` on it (simulator seed 50234: attached for ever, the drain waited).
        if masters.contains(id) || (n.is_master() && !n.entry.slots.is_empty()) {
            continue;
        }
        match n.entry.master_id.as_deref() {
            Some(m) if have.contains_key(m) => have.entry(m).or_default().push(ord),
            _ => {
                if n.is_master() && w.state(ord).is_some_and(|s| s.keys > 0) {
                    degraded.push(format!(
                        "node #{ord} is an empty master that still holds keys; it is left alone"
                    ));
                } else {
                    pool.push(ord);
                }
            }
        }
    }
    let want = w.desired.replicas as usize;
    for list in have.values_mut() {
        while list.len() > want {
            if let Some(extra) = list.pop() {
                pool.push(extra);
            }
        }
    }
    pool.sort();
    let host = |o: Ordinal| w.obs.members.get(&o).and_then(|m| m.host.as_deref());
    let mut effects = Vec::new();
    // Masters lacking the most first, so a short pool spreads evenly.
    let mut needy: Vec<(usize, &str)> = have
        .iter()
        .filter(|(_, l)| l.len() < want)
        .map(|(m, l)| (l.len(), *m))
        .collect();
    needy.sort();
    for round in 0..want {
        for (count, m) in &needy {
            if count + round >= want || pool.is_empty() {
                continue;
            }
            let master_ord = w.ordinal_of(m);
            let master_host = master_ord.and_then(host);
            let elsewhere = |o: &Ordinal| master_host.is_none() || host(*o) != master_host;
            // Prefer the replica laid out for this master, then any on another host.
            let pick = pool
                .iter()
                .position(|o| {
                    elsewhere(o) && master_ord.is_some() && natural_master(w, *o) == master_ord
                })
                .or_else(|| pool.iter().position(elsewhere))
                .unwrap_or(0);
            let ord = pool.remove(pick);
            effects.push(Effect::Replicate {
                on: ord,
                master_id: (*m).to_string(),
            });
        }
    }
    effects
}

/// The master a replica ordinal is laid out for: ordinals `0..masters` are the masters and
/// replica `k` follows master `k % masters`. Only a preference: a replica follows whichever
/// master needs it once the cluster has changed shape.
pub(crate) fn natural_master(w: &World, ord: Ordinal) -> Option<Ordinal> {
    let masters = w.desired.masters;
    (masters > 0 && ord >= masters).then(|| ord % masters)
}

/// Replicas attached before gossip has reached every node: a node that holds nothing (no
/// key, no slot, no open slot, no replica of its own) joins the master the replica plan gives
/// it as soon as it knows that master, in a cluster whose desired masters own every slot.
/// Nothing can be lost: the node copies over nothing. A brand-new cluster attaches every
/// replica this way (saves 1-3 s of a 3x1 creation), and so does a member restarted empty
/// (a replaced dead master or replica): attached before the other nodes hear of it, it is
/// introduced to them as a replica (see `gossip::meet`), and Redis, which announces a
/// node's role only in that node's own pings, need not carry a role change to every view
/// (up to half a node timeout per node). Each node's role is read from its own line, so a
/// replica attached a moment ago is not paired again.
pub(crate) fn early_replicas(w: &World) -> Option<Work> {
    let effects = early_attachments(w);
    if effects.is_empty() {
        return None;
    }
    let n = effects.len();
    let mut work = Work::new(
        Kind::Replicas,
        effects,
        format!("attaching replicas to the masters they know ({n} steps)"),
    );
    // REPLICATE is answered at once; look again soon to introduce the new replicas.
    work.requeue_ms = Some(crate::gossip::recheck_ms(w));
    Some(work)
}

/// The `REPLICATE` effects of [`early_replicas`]: empty in a cluster that is not whole yet
/// (its masters still to be chosen, as in a scale-out, where an empty node may be meant to
/// become a master).
fn early_attachments(w: &World) -> Vec<Effect> {
    if !whole(w) {
        return Vec::new();
    }
    replicas(w, &mut Vec::new())
        .into_iter()
        .filter(|e| match e {
            Effect::Replicate { on, master_id } => {
                holds_nothing(w, *on)
                    && w.view(*on, master_id)
                        .is_some_and(|m| !m.flags.handshake && !m.flags.fail && !m.flags.pfail)
            }
            _ => false,
        })
        .collect()
}

/// The master the replica plan gives `ord`, when `ord` may join it early (see
/// [`early_replicas`]) whether or not it knows that master yet.
pub(crate) fn early_master_of(w: &World, ord: Ordinal) -> Option<Ordinal> {
    if !holds_nothing(w, ord) || !whole(w) {
        return None;
    }
    replicas(w, &mut Vec::new()).iter().find_map(|e| match e {
        Effect::Replicate { on, master_id } if *on == ord => w.ordinal_of(master_id),
        _ => None,
    })
}

/// Every member answers and the desired masters, all in range, own every slot between them.
fn whole(w: &World) -> bool {
    w.all_in_range_reachable()
        && w.slots_by_owner().len() == w.desired.masters as usize
        && w.owner.iter().all(Option::is_some)
        && w.slots_by_owner()
            .keys()
            .all(|id| w.ordinal_of(id).is_some_and(|o| w.in_range(o)))
}

/// A reachable node whose copy of anything is worth nothing yet: no key, no slot, no open
/// slot, and no node following it (a follower would drop its own data to copy this one).
fn holds_nothing(w: &World, ord: Ordinal) -> bool {
    let (Some(state), Some(me)) = (w.state(ord), w.me(ord)) else {
        return false;
    };
    state.keys == 0
        && me.slots.is_empty()
        && me.open_slots.is_empty()
        && !w.has_attached_replica(&me.id)
}
