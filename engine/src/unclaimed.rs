//! Slots no master claims while views still route them to a live master: a hand-over stopped
//! half-way (the source gave the slot away, the target never took it and may have died), or a
//! claim lost since. Who takes each one is decided by where its keys are.

use crate::effect::{Effect, FailoverMode};
use crate::model::{NodeState, Ordinal};
use crate::work::{Kind, Work};
use crate::world::World;
use std::collections::BTreeSet;

/// Slots that no answering master claims on its own line while some answering node's view
/// routes them to an answering node. Their keys may sit on any node with no marker showing
/// them, so observers count them as they count the keys of open slots (one definition for
/// every observer), and `unclaimed_slots` gives each to the node that holds them.
pub fn routed_but_unclaimed<'a>(states: impl IntoIterator<Item = &'a NodeState>) -> Vec<u16> {
    let states: Vec<&NodeState> = states.into_iter().collect();
    let mut claimed = vec![false; usize::from(crate::slots::SLOT_COUNT)];
    let mut answering = BTreeSet::new();
    for s in &states {
        answering.insert(s.id.as_str());
        if let Some(me) = s.myself().filter(|me| me.is_master()) {
            for r in &me.slots {
                for c in claimed
                    .iter_mut()
                    .take(usize::from(r.end) + 1)
                    .skip(usize::from(r.start))
                {
                    *c = true;
                }
            }
        }
    }
    let unclaimed: Vec<u16> = (0..crate::slots::SLOT_COUNT)
        .filter(|s| !claimed[usize::from(*s)])
        .collect();
    if unclaimed.is_empty() {
        return unclaimed;
    }
    let mut out = BTreeSet::new();
    for s in &states {
        for e in s
            .nodes
            .iter()
            .filter(|e| !e.flags.myself && e.is_master() && answering.contains(e.id.as_str()))
        {
            for r in &e.slots {
                let lo = unclaimed.partition_point(|x| *x < r.start);
                let hi = unclaimed.partition_point(|x| *x <= r.end);
                out.extend(&unclaimed[lo..hi]);
            }
        }
    }
    out.into_iter().collect()
}

/// Each slot no master claims (see `routed_but_unclaimed`), not open anywhere (an importing
/// target is `repair_open_slots`' to finish) and given by no view to a node that may still
/// claim it (one down whose process runs; see `dead`), goes to:
///
/// - the one master holding its keys: the promoted replica of a target that died after its
///   source was told holds the moved keys with no marker, and the node the views name gave
///   the slot away empty;
/// - while only replicas hold them (their master is down), nobody yet: a replica takes over
///   first, by `TAKEOVER` when the master owned no slot (Redis never elects a replica of such
///   a master);
/// - while only the synced replicas of the live master every view names hold them (Redis 7.0
///   dropped them on that master alone, see `dropped_by_master`), that master, with its keys
///   copied back from a replica;
/// - with no key anywhere, the master the views name (highest epoch): it was told it owns
///   the slot and lost its claim (a failover took its old master's slots, an older claim won
///   them back) or never applied it, or it gave the slot to a target that died. Only when
///   every member that does not answer comes back with nothing (see
///   `World::unreachable_members_return_nothing`): one returning with its data might hold the
///   keys.
///
/// `SETSLOT NODE <itself>` on the taker; a newer epoch wins it everywhere (Redis 7.0.15 and
/// Valkey also let any claim win a slot whose owner stopped claiming it). This comes before
/// the open-slot repair: a node whose view routes a slot to no live claimant reports
/// `cluster_state:fail` and refuses every `MIGRATE`, so an open slot's repair would wait
/// behind it for ever (simulator seeds 50001, 50232). Several masters holding keys of one slot
/// are for a person to sort out.
pub(crate) fn unclaimed_slots(w: &World, degraded: &mut Vec<String>) -> Option<Work> {
    if w.slots_agreed {
        return None;
    }
    let open = w.open_slots();
    let mut effects = Vec::new();
    for slot in routed_but_unclaimed(w.reachable.values().map(|(_, _, s)| *s)) {
        if open.contains_key(&slot) {
            continue;
        }
        let owner = w.owner[usize::from(slot)];
        if owner.is_some_and(|id| !dead(w, id)) {
            continue;
        }
        let effect = match key_holders(w, slot) {
            Holders::Master(id) => take(w, slot, id),
            Holders::Replicas(replicas) => {
                let takeover = replicas.iter().find_map(|&r| {
                    let master = w.me(r)?.master_id.as_deref()?;
                    crate::repair::takeover_for_stray_keys(w, master, r).map(|on| {
                        Effect::Failover {
                            on,
                            mode: FailoverMode::Takeover,
                        }
                    })
                });
                takeover.or_else(|| dropped_by_master(w, slot, &replicas))
            }
            Holders::Several(n) => {
                degraded.push(format!(
                    "keys of slot {slot}, which no master claims, sit on {n} masters; it needs \
                     a manual repair"
                ));
                None
            }
            Holders::Nobody if owner.is_none() && w.unreachable_members_return_nothing() => {
                named_master(w, slot).and_then(|id| take(w, slot, id))
            }
            Holders::Nobody => None,
        };
        if let Some(e) = effect.filter(|e| !effects.contains(e)) {
            effects.push(e);
        }
    }
    if effects.is_empty() {
        return None;
    }
    let n = effects.len();
    Some(Work::new(
        Kind::Recover,
        effects,
        format!(
            "{n} slot(s) that no master claims: the master holding their keys, or the one the \
             views name, takes them"
        ),
    ))
}

/// Node `id` does not answer and its process is gone. The source of a hand-over lists the
/// target as the slot's owner the moment it is told, so a target that died before taking the
/// slot looks like its owner in the source's view: that word is not a claim the target can
/// make any more (with its data on disk it would come back under an epoch older than its
/// promoted replica's, and lose).
fn dead(w: &World, id: &str) -> bool {
    w.nodes.get(id).is_some_and(|n| !n.reachable)
        && match w.ordinal_of(id) {
            Some(o) => w.obs.members.get(&o).is_some_and(|m| !m.running),
            // A ghost, its member running under another id now; unless a member that runs
            // without answering is not identified yet (it might be this node).
            None => !w.obs.members.iter().any(|(o, m)| {
                m.running && !w.reachable.contains_key(o) && !w.id_of.contains_key(o)
            }),
        }
}

/// The keys of a slot its master dropped while its replicas kept them: Redis 7.0 deletes the
/// keys of a slot a master loses to another claim (`delKeysInSlot`) without sending the
/// deletion to its replicas (7.2 and later do). A master that lost a slot that way and no
/// longer claims it, while every view still routes it there, holds none of its keys, and its
/// synced replicas hold them (chaos soak, seed 11: 15 acknowledged writes of slot 6317 on the
/// two replicas of #2 only, #2 refusing every command with `CLUSTERDOWN`).
///
/// The keys are copied back from the replica holding the most of them
/// ([`Effect::RestoreDroppedKeys`]): the master claims the slot and gets each key it lacks,
/// a key written since its claim winning. Not a failover to that replica: it would keep the
/// keys for a moment, but the old master rejoins it by a partial resynchronisation, still
/// without them, and any later failover back to it (the engine prefers a member in range as a
/// shard's master) loses them for good; tried on the soak's cluster, that is what happened.
fn dropped_by_master(w: &World, slot: u16, replicas: &[Ordinal]) -> Option<Effect> {
    let keys_on = |o: Ordinal| {
        w.state(o)
            .and_then(|s| s.open_slot_keys.get(&slot).copied())
            .unwrap_or(0)
    };
    let mut master_of_all = None;
    for &r in replicas {
        let master = w.me(r)?.master_id.as_deref()?;
        let master_answers = w
            .ordinal_of(master)
            .is_some_and(|m| w.reachable.contains_key(&m) && keys_on(m) == 0);
        let routed_there = w.view_owner(r, slot) == Some(master);
        if !(master_answers && routed_there && w.state(r).is_some_and(|s| s.master_link_up)) {
            return None;
        }
        if *master_of_all.get_or_insert(master) != master {
            return None;
        }
    }
    let master = master_of_all?;
    let to = w.ordinal_of(master)?;
    if !w.me(to).is_some_and(|me| me.is_master()) {
        return None;
    }
    // The replica holding the most keys of the slot; the lowest ordinal among equals.
    let from = replicas
        .iter()
        .copied()
        .max_by_key(|&r| (keys_on(r), std::cmp::Reverse(r)))?;
    Some(Effect::RestoreDroppedKeys {
        from,
        to,
        to_id: master.to_string(),
        slot,
    })
}

/// `SETSLOT slot NODE id` on master `id` itself.
fn take(w: &World, slot: u16, id: &str) -> Option<Effect> {
    let on = w.ordinal_of(id).filter(|o| w.reachable.contains_key(o))?;
    if !w.nodes.get(id).is_some_and(|n| n.is_master()) {
        return None;
    }
    Some(Effect::SetSlotOwner {
        on,
        slot,
        owner_id: id.to_string(),
    })
}

/// The answering master the views route `slot` to, under the highest epoch.
fn named_master<'a>(w: &World<'a>, slot: u16) -> Option<&'a str> {
    w.reachable
        .values()
        .flat_map(|(_, _, s)| s.nodes.iter())
        .filter(|e| e.master_id.is_none() && !e.flags.replica)
        .filter(|e| e.slots.iter().any(|r| r.start <= slot && slot <= r.end))
        .filter(|e| w.nodes.get(e.id.as_str()).is_some_and(|n| n.reachable))
        .max_by_key(|e| e.config_epoch)
        .map(|e| e.id.as_str())
}

/// Who holds keys of a slot no master claims (the observer counts them on every node).
enum Holders<'a> {
    Nobody,
    /// One answering master.
    Master(&'a str),
    /// Only replicas: their master is down.
    Replicas(Vec<Ordinal>),
    /// Several masters.
    Several(usize),
}

fn key_holders<'a>(w: &World<'a>, slot: u16) -> Holders<'a> {
    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for (ord, (_, _, s)) in &w.reachable {
        let Some(me) = s.myself() else { continue };
        if s.open_slot_keys.get(&slot).copied().unwrap_or(0) == 0 {
            continue;
        }
        if me.is_master() {
            masters.push(me.id.as_str());
        } else {
            replicas.push(*ord);
        }
    }
    match (masters.as_slice(), replicas.is_empty()) {
        ([], true) => Holders::Nobody,
        ([], false) => Holders::Replicas(replicas),
        ([one], _) => Holders::Master(one),
        (many, _) => Holders::Several(many.len()),
    }
}
