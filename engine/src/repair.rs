//! Slots left open by an interrupted move, and the keys such a move left where no marker
//! shows them. The order of Redis' own rules decides the order here: see `repair_open_slots`.

use crate::effect::{Effect, FailoverMode};
use crate::model::Ordinal;
use crate::replicas::{ReplicaFor, replica_for};
use crate::slots::to_ranges;
use crate::work::{Kind, Work};
use crate::world::{OpenSlotState, World};

/// Slots left migrating or importing by an interrupted move, repaired as `redis-cli --cluster
/// fix` would, and for the cases it cannot handle, where a node of the move died:
///
/// - Keys of the slot are only ever brought home to its owner, and only while the owner
///   answers; a slot whose owner is down waits for `failed_masters` (its replica takes over).
/// - An importing node whose view still gives the slot to an older owner (its source died and
///   a replica took the slot over: Redis applies no ownership update to a slot a node imports)
///   is told the owner first. Its `cluster_state` is `fail` until then, and it refuses every
///   `MIGRATE` with `CLUSTERDOWN`; its importing marker stays, so it may still send the keys.
/// - Keys on a node with no marker for the slot (the replica of a target that died holds what
///   had moved) count like any other; a replica of a dead master that owned no slot is
///   promoted first with `TAKEOVER` (Redis never fails over a master without slots).
/// - A half-moved slot ends on the side that has a synced replica: the move is finished
///   towards the node holding the moved keys, or they are brought home (see `repair_slot`).
/// - The owner's own marker is closed last: while keys of the slot sit anywhere else, or its
///   target may still come back with them, clients keep being redirected rather than writing
///   a second copy of a key on the owner.
///
/// Never closes a slot on a node that still holds keys it does not own.
pub(crate) fn repair_open_slots(w: &World, degraded: &mut Vec<String>) -> Option<Work> {
    let open = w.open_slots();
    if open.is_empty() {
        return None;
    }
    let mut repair = Repair::default();
    for (slot, st) in &open {
        repair_slot(w, *slot, st, &mut repair, degraded);
    }
    let Repair {
        mut effects,
        moves,
        takeovers,
        waiting,
    } = repair;
    // Views first: a node whose view names a dead owner refuses MIGRATE until it is fixed, and
    // a move of one slot fails if any slot of the node is still unserved in its view.
    effects.extend(one_move_per_pair(moves));
    effects.extend(takeovers);
    if effects.is_empty() {
        // Nothing to do, or only slots waiting for a node that is down: the failover rules
        // come next.
        return None;
    }
    let n = open.len().saturating_sub(waiting.len());
    let mut summary = format!("repairing {n} slots left open by an interrupted migration");
    if !waiting.is_empty() {
        summary.push_str(&format!(
            "; {} more wait for a node that is down or a replica that is syncing",
            waiting.len()
        ));
    }
    Some(Work::new(Kind::Recover, effects, summary))
}

/// The slot moves of a repair with one `MigrateSlots` per (source, target) pair, in the order
/// each pair first came. A source lost mid-move leaves hundreds of slots open towards the
/// same importer, and the executor runs a pair's moves one after another: as hundreds of
/// one-slot moves (each a handful of round trips) they kept the new owner answering for keys
/// it no longer holds, unmarked, for seconds (chaos soak, a source frozen mid-move). As one
/// move, its slots are marked and drained a round of many at a time.
fn one_move_per_pair(moves: Vec<Effect>) -> Vec<Effect> {
    let mut out: Vec<Effect> = Vec::with_capacity(moves.len());
    // Where each pair's move sits in `out`, and the slots gathered for it.
    let mut pairs: std::collections::BTreeMap<(Ordinal, Ordinal), (usize, Vec<u16>)> =
        std::collections::BTreeMap::new();
    for effect in moves {
        if let Effect::MigrateSlots {
            from, to, slots, ..
        } = &effect
        {
            if let Some((_, gathered)) = pairs.get_mut(&(*from, *to)) {
                gathered.extend(crate::slots::expand(slots));
                continue;
            }
            pairs.insert(
                (*from, *to),
                (out.len(), crate::slots::expand(slots).collect()),
            );
        }
        out.push(effect);
    }
    for (at, gathered) in pairs.into_values() {
        if let Some(Effect::MigrateSlots { slots, .. }) = out.get_mut(at) {
            *slots = to_ranges(gathered);
        }
    }
    out
}

/// Effects of the open-slot repair, kept apart so that they run in a safe order.
#[derive(Default)]
struct Repair {
    /// View fixes and closes of empty markers.
    effects: Vec<Effect>,
    /// Key moves (finishing a move, bringing stray keys home).
    moves: Vec<Effect>,
    /// Promotions of replicas that hold keys of an open slot.
    takeovers: Vec<Effect>,
    /// Open slots left alone this pass (each once): a node is down, or a holder's new replica
    /// has not synced yet.
    waiting: Vec<u16>,
}

fn repair_slot(
    w: &World,
    slot: u16,
    st: &OpenSlotState<'_>,
    out: &mut Repair,
    degraded: &mut Vec<String>,
) {
    let owner = w.owner[usize::from(slot)];
    let owner_ord = owner.and_then(|id| w.ordinal_of(id));
    let owner_up = owner_ord.is_some_and(|o| w.reachable.contains_key(&o));
    let id_of = |o: Ordinal| w.id_of.get(&o).copied();
    let is_owner = |o: Ordinal| owner.is_some() && id_of(o) == owner;

    // Keys of the slot on nodes that show no marker for it.
    let mut strays = Vec::new();
    for (holder, keys) in w.unmarked_holders(slot) {
        if is_owner(holder) {
            continue;
        }
        let Some(me) = w.state(holder).and_then(|s| s.myself()) else {
            continue;
        };
        match me.master_id.as_deref() {
            // A master's keys: brought home below.
            None => strays.push((holder, keys)),
            // A replica's keys are a copy of its master's, unless the master is down.
            Some(m) => {
                if w.nodes.get(m).is_some_and(|n| n.reachable) {
                    continue;
                }
                out.waiting.push(slot);
                if let Some(on) = takeover_for_stray_keys(w, m, holder)
                    && !out.takeovers.contains(&Effect::Failover {
                        on,
                        mode: FailoverMode::Takeover,
                    })
                {
                    out.takeovers.push(Effect::Failover {
                        on,
                        mode: FailoverMode::Takeover,
                    });
                }
                return;
            }
        }
    }

    if owner.is_none() && strays.is_empty() && claim_for_the_importer(w, slot, st, out) {
        return;
    }
    let (Some(owner_id), Some(owner_ord), true) = (owner, owner_ord, owner_up) else {
        // The owner is down (its replica will take over) or unknown: only markers that hold
        // nothing can be closed now.
        let mut waits = false;
        for &(ord, _, keys) in st.migrating.iter().chain(&st.importing) {
            if keys == 0 && !is_owner(ord) {
                out.effects.push(Effect::SetSlotStable { on: ord, slot });
            } else {
                waits = true;
            }
        }
        if waits || !strays.is_empty() {
            out.waiting.push(slot);
        }
        return;
    };

    // Importing nodes whose view still names another owner are told the owner first, when
    // no other live master claims the slot (two live claimants: epochs decide, not us).
    let contested = w.live_claimants(slot).iter().any(|c| *c != owner_id);
    for &(ord, _, _) in &st.importing {
        // Redis refuses `SETSLOT NODE` towards a node its view still holds for a replica
        // (a promotion not heard of yet): gossip brings it within a ping, so wait for it.
        let knows_owner_as_master = w.view(ord, owner_id).is_some_and(|e| e.is_master());
        if !contested
            && knows_owner_as_master
            && ord != owner_ord
            && w.view_owner(ord, slot) != Some(owner_id)
        {
            out.effects.push(Effect::SetSlotOwner {
                on: ord,
                slot,
                owner_id: owner_id.to_string(),
            });
        }
    }

    // Nodes other than the owner that hold keys of the slot, marked or not.
    let mut holders: Vec<Ordinal> = strays.iter().map(|(o, _)| *o).collect();
    holders.extend(
        st.importing
            .iter()
            .chain(&st.migrating)
            .filter(|&&(o, _, keys)| o != owner_ord && keys > 0)
            .map(|(o, _, _)| *o),
    );
    holders.sort_unstable();
    holders.dedup();
    let empty_markers = |out: &mut Repair, except: Option<Ordinal>| {
        for &(ord, _, keys) in st.migrating.iter().chain(&st.importing) {
            if ord != owner_ord && keys == 0 && Some(ord) != except {
                out.effects.push(Effect::SetSlotStable { on: ord, slot });
            }
        }
    };

    // Case 1 (and 3): the owner sends to a node that receives from it, and no key of the
    // slot is anywhere else: finish the move.
    if let [(src, target, _)] = st.migrating.as_slice()
        && *src == owner_ord
        && let Some(&(dst, _, _)) = st
            .importing
            .iter()
            .find(|(o, source, _)| id_of(*o) == Some(*target) && Some(*source) == id_of(*src))
        && holders.iter().all(|h| *h == dst)
        && let Some(to_id) = id_of(dst)
    {
        out.moves.push(Effect::MigrateSlots {
            from: *src,
            from_id: owner_id.to_string(),
            to: dst,
            to_id: to_id.to_string(),
            slots: to_ranges([slot]),
        });
        empty_markers(out, Some(dst));
        return;
    }
    if st.migrating.len() > 1 {
        degraded.push(format!(
            "slot {slot} is migrating on several nodes at once; it needs a manual repair"
        ));
        return;
    }

    // Case 2 and 4: nobody is sending, or the receiving end is gone. Redis lets keys flow only
    // from a migrating node to an importing one: an owner that still migrates the slot answers
    // every key it lacks, a `RESTORE` from `MIGRATE` included, with `ASK` towards its old
    // target. So the keys that sit elsewhere come home only to an owner that does not
    // migrate the slot; while it does, the one node holding them becomes the new target and
    // the move is finished there, every key in one place and reachable by clients throughout.
    let owner_marker = st
        .migrating
        .iter()
        .chain(&st.importing)
        .find(|(o, _, _)| *o == owner_ord);
    let owner_migrates = st.migrating.iter().any(|(o, _, _)| *o == owner_ord);
    // Where the keys end up: on a node with a synced replica when there is a choice (a node
    // without one would take them along if it died, which is why the move was held back in
    // the first place); a holder without one gets a replica first.
    let protected =
        |o: Ordinal| w.desired.replicas == 0 || id_of(o).is_some_and(|id| w.has_synced_replica(id));
    let finish_towards = |out: &mut Repair, holder: Ordinal| {
        let Some(to_id) = id_of(holder) else { return };
        out.moves.push(Effect::MigrateSlots {
            from: owner_ord,
            from_id: owner_id.to_string(),
            to: holder,
            to_id: to_id.to_string(),
            slots: to_ranges([slot]),
        });
        empty_markers(out, Some(holder));
    };
    let bring_home = |out: &mut Repair, holders: &[Ordinal]| {
        for &holder in holders {
            out.moves.push(Effect::MoveStrayKeys {
                from: holder,
                to: owner_ord,
                to_id: owner_id.to_string(),
                slot,
            });
        }
        empty_markers(out, None);
    };
    // The one holder imports the slot (the move's own target, its source replaced by a
    // replica that claimed the slot): the move is finished towards it even when the owner
    // could take the keys home. Until the owner migrates the slot, it answers every moved key
    // as missing (a read returns nothing, a write makes a second, conflicting copy);
    // finishing marks it migrating in the first round, so clients are sent on to the keys at
    // once, while bringing them home leaves them unreachable until the last one is back.
    let imports = |o: Ordinal| st.importing.iter().any(|(i, _, _)| *i == o);
    match (owner_migrates, holders.as_slice()) {
        (_, [holder]) if imports(*holder) && protected(*holder) => finish_towards(out, *holder),
        (false, [_]) if protected(owner_ord) => bring_home(out, &holders),
        (_, [holder]) if protected(*holder) => finish_towards(out, *holder),
        (_, [holder]) => match replica_for(w, id_of(*holder)) {
            Some(ReplicaFor::Attach(effect)) => {
                // One holder, many half-moved slots: one `REPLICATE`.
                if !out.effects.contains(&effect) {
                    out.effects.push(effect);
                }
                out.waiting.push(slot);
            }
            Some(ReplicaFor::Syncing) => out.waiting.push(slot),
            // No node can become its replica: the keys are no safer anywhere else.
            None => finish_towards(out, *holder),
        },
        (true, [_, _, ..]) => degraded.push(format!(
            "keys of slot {slot} sit on several nodes while its owner #{owner_ord} migrates \
             it; it needs a manual repair"
        )),
        (false, _) => {
            bring_home(out, &holders);
            // The owner importing its own slot (a half-applied SETSLOT NODE): close it once
            // nothing is elsewhere.
            if owner_marker.is_some() && holders.is_empty() {
                out.effects.push(Effect::SetSlotStable {
                    on: owner_ord,
                    slot,
                });
            }
        }
        (true, []) => {
            empty_markers(out, None);
            let Some((_, target, _)) = owner_marker else {
                return;
            };
            // A target that is cut off, or stopped with its data on disk, may come back with
            // keys of the slot: clients keep being sent there rather than writing a second
            // copy on the owner.
            if w.may_return_with_keys(target) {
                out.waiting.push(slot);
                return;
            }
            out.effects.push(Effect::SetSlotStable {
                on: owner_ord,
                slot,
            });
        }
    }
}

/// A move handed over halfway: the source was told the new owner (it holds no key of the slot
/// and no longer claims it) and the target was not, so no master claims the slot and the
/// target still imports it, holding every key that moved (Redis never drops the keys of a
/// slot a node imports, whoever claims it). The target takes the slot with `SETSLOT NODE`
/// itself, under a new epoch, as the move would have ended. Only when nothing of the slot sits
/// anywhere else: a migrating node with keys means the move was not handed over at all.
/// Returns whether it did.
fn claim_for_the_importer(w: &World, slot: u16, st: &OpenSlotState<'_>, out: &mut Repair) -> bool {
    let [(importer, _, _)] = st.importing.as_slice() else {
        return false;
    };
    if st.migrating.iter().any(|&(_, _, keys)| keys > 0) || !w.live_claimants(slot).is_empty() {
        return false;
    }
    let Some(me) = w.me(*importer).filter(|me| me.is_master()) else {
        return false;
    };
    out.effects.push(Effect::SetSlotOwner {
        on: *importer,
        slot,
        owner_id: me.id.clone(),
    });
    for &(ord, _, _) in &st.migrating {
        out.effects.push(Effect::SetSlotStable { on: ord, slot });
    }
    true
}

/// The replica to promote when `holder`, a replica of the down master `master_id`, holds keys
/// of an open slot: the master's process must be gone (never a mere partition) and it must own
/// no slot (a master with slots is failed over by Redis, and forced by `failed_masters`).
/// `TAKEOVER`, because Redis never elects a replica of a master without slots.
pub(crate) fn takeover_for_stray_keys(
    w: &World,
    master_id: &str,
    holder: Ordinal,
) -> Option<Ordinal> {
    if w.owns_slots(master_id) {
        return None;
    }
    let gone = w
        .ordinal_of(master_id)
        .and_then(|o| w.obs.members.get(&o))
        .is_some_and(|m| !m.running);
    if !gone {
        return None;
    }
    let candidates = w.takeover_candidates(master_id);
    if candidates.contains(&holder) {
        candidates.first().copied()
    } else {
        None
    }
}
