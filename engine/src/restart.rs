//! Whether a member that stopped running is started again, and how. A crashed node is not
//! always safe to bring back as it was: without persistence it returns empty, yet its
//! `nodes.conf` still claims slots under its old config epoch, and Redis settles epoch ties by
//! lifting a node above every epoch it hears of.

use crate::model::{Member, Ordinal};
use crate::world::World;

/// What to do with a member that is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Leave it down: a leaving node holding nothing is forgotten and deleted instead.
    Skip,
    /// Start it with its identity and whatever it kept.
    Start,
    /// Delete its storage and start it as a new node (its old id becomes a ghost).
    StartFresh,
    /// Not yet; `CLUSTER BUMPEPOCH` on these masters first makes it safe.
    Hold { bump: Vec<Ordinal> },
}

/// The decision for member `ordinal`, which is not running. `unidentified_takeover`: some down
/// master that no member can be matched to still waits for its replica to take over.
pub(crate) fn of(w: &World, ordinal: Ordinal, m: &Member, unidentified_takeover: bool) -> Restart {
    let info = w
        .id_of
        .get(&ordinal)
        .and_then(|id| w.nodes.get(id).map(|n| (*id, n)));
    if info.is_none() && unidentified_takeover {
        return Restart::Hold { bump: Vec::new() };
    }
    let owns_slots = info.is_some_and(|(id, _)| w.owns_slots(id));
    // A leaving member whose address changed while it was down cannot be matched to the id it
    // ran. While a down master that owns slots matches no member and has no replica to take
    // over, this member may be that master, and only starting it tells: left down, the
    // cluster waits for it for ever (simulator seed 30251: a master being drained, with no
    // replica, died mid-drain and its address changed).
    if info.is_none() && !w.in_range(ordinal) && unidentified_master_without_copy(w) {
        return Restart::Start;
    }
    if !w.in_range(ordinal) && !owns_slots {
        // A leaving node that holds nothing is forgotten and deleted, not restarted, unless it
        // was the only replica of a master that owns slots: until an in-range node is free to
        // replace it (in a scale-in, only once a drained master is empty), that master's keys,
        // and keys moved to it, would have no copy (simulator seed 1530). It leaves once no
        // longer needed (`remove_leaving`).
        if info.is_some_and(|(_, n)| only_replica_of_a_master_with_slots(w, n)) {
            return Restart::Start;
        }
        return Restart::Skip;
    }
    // A crashed master whose replica can take over must not come back before it has:
    // restarted without its data it would still own its slots, and its replica would
    // then copy the empty dataset. Wait for the failover (forced below if needed).
    if let Some((id, _)) = info
        && owns_slots
        && !w.takeover_candidates(id).is_empty()
    {
        return Restart::Hold { bump: Vec::new() };
    }
    // Without persistence, the same holds for a replica that still follows the master this
    // one replaced: cut off while its old master died and this one was elected, it may hold
    // the only copy left of these slots' keys once this one died too. Restarted empty, this
    // master would keep the slots, and that replica, on hearing of them, would follow it and
    // resync empty (simulator seed 377, once a replica was forced at once). Held, it follows
    // this master while this one is down, becomes its takeover candidate, and is promoted.
    if let Some((id, _)) = info
        && owns_slots
        && !w.desired.persistent
        && (predecessor_replica_holds_keys(w, id) || silent_copy_may_exist(w, id))
    {
        return Restart::Hold { bump: Vec::new() };
    }
    // A master that died while receiving a slot may own none yet, so Redis elects no
    // replica for it; its replica holds the keys that had moved (the only copy without
    // persistence, the newest with it). Restarted first, the master would come back
    // without them and the replica would copy its dataset. The replica takes over first
    // (`repair`), the keys go home, then the master returns.
    if let Some((id, _)) = info
        && w.replica_holds_keys_of_open_slots(id)
    {
        return Restart::Hold { bump: Vec::new() };
    }
    // Without persistence a crashed master comes back empty yet still claiming its slots
    // under its epoch. If a live master also claims them and holds keys (an old master
    // that lost an election while partitioned away), that one holds the only copy: it
    // must win the slots first, or it would follow the empty node and flush its data.
    if let Some((id, _)) = info
        && owns_slots
        && !w.desired.persistent
    {
        let theirs = w.slots_by_owner().get(id).map(Vec::as_slice).unwrap_or(&[]);
        let holders: Vec<Ordinal> = w
            .reachable
            .iter()
            .filter(|(_, (_, _, s))| {
                s.keys > 0
                    && s.myself().is_some_and(|me| {
                        me.flags.master
                            && crate::slots::expand(&me.slots)
                                .any(|x| theirs.binary_search(&x).is_ok())
                    })
            })
            .map(|(o, _)| *o)
            .collect();
        if let [holder] = holders[..] {
            return Restart::Hold {
                bump: epoch_bump_for(w, holder).into_iter().collect(),
            };
        }
    }
    // Without persistence, a master that was replaced (its slots are another node's now,
    // and no view lists it with any) comes back with nothing but its old config, and that
    // config is a hazard: an epoch it bumped just before it crashed, unseen by anyone,
    // can tie with a live master's, and settling the tie lifts it above its replacement,
    // whose data it would then take over empty. It returns as a new node instead: its
    // storage is deleted and the member created again, and the old id is forgotten as a
    // ghost.
    if let Some((id, n)) = info
        && m.redis.is_none()
        && !owns_slots
        && !w.desired.persistent
        && n.is_master()
    {
        // A view that has not heard of the replacement yet still lists it with slots:
        // deleting it now would break the "never delete a node listed with slots" rule,
        // restarting it as it is would bring back the hazard. Gossip settles this within
        // a ping or two.
        if w.listed_with_slots(id) {
            return Restart::Hold { bump: Vec::new() };
        }
        return Restart::StartFresh;
    }
    // A master that comes back with the config epoch of a live master settles the tie as
    // Redis does, by taking a new epoch above every epoch it hears of: above the election
    // epoch of the replica that replaced it, so its stale claims would win and the
    // replica would resync from it, dropping the writes it took. Break the tie first.
    // Only a master that no longer owns its slots by consensus can do harm that way, and
    // Redis makes only the node with the smaller id of a tied pair move.
    if let Some((id, n)) = info
        && !owns_slots
        && n.is_master()
    {
        let tied: Vec<Ordinal> = w
            .reachable
            .iter()
            .filter(|(_, (_, _, s))| {
                s.myself().is_some_and(|me| {
                    me.flags.master
                        && me.config_epoch == n.entry.config_epoch
                        && id < me.id.as_str()
                })
            })
            .map(|(o, _)| *o)
            .collect();
        if !tied.is_empty() {
            return Restart::Hold {
                bump: tied
                    .into_iter()
                    .filter_map(|t| epoch_bump_for(w, t))
                    .collect(),
            };
        }
    }
    Restart::Start
}

/// Where a `CLUSTER BUMPEPOCH` must run so that `holder` ends up with a newer config epoch,
/// or `None` to wait. Redis only bumps a node whose epoch is not already the highest it knows
/// of. A holder below its own current epoch bumps itself. A holder that has not heard the
/// cluster's current epoch yet (cut off, or gossip behind) waits for it. A holder already at
/// the cluster's current epoch would answer STILL for ever, so another master whose bump
/// changes nothing else (below the current epoch, no slot of it claimed by anyone else) goes
/// first and raises the current epoch everywhere.
pub(crate) fn epoch_bump_for(w: &World, holder: Ordinal) -> Option<Ordinal> {
    let (_, _, state) = w.reachable.get(&holder)?;
    let me = state.myself()?;
    let claimed_by_others = |o: Ordinal, slots: &[crate::slots::SlotRange]| {
        w.reachable.iter().any(|(other, (_, _, s))| {
            *other != o
                && s.myself()
                    .is_some_and(|m| m.flags.master && crate::slots::overlap(&m.slots, slots))
        })
    };
    // A newer epoch would hand the holder every slot it claims, those another live master
    // also claims included (a holder cut off while they moved on, seed 1982): never bump it
    // then; the views settle first.
    if claimed_by_others(holder, &me.slots) {
        return None;
    }
    if me.config_epoch < state.current_epoch {
        return Some(holder);
    }
    let current = w
        .reachable
        .values()
        .map(|(_, _, s)| s.current_epoch)
        .max()
        .unwrap_or(0);
    if state.current_epoch < current {
        return None;
    }
    w.reachable
        .iter()
        .filter(|(o, _)| **o != holder)
        .filter_map(|(o, (_, _, s))| s.myself().map(|m| (*o, m)))
        .filter(|(o, m)| {
            m.flags.master
                && !m.slots.is_empty()
                && m.config_epoch < current
                && !claimed_by_others(*o, &m.slots)
        })
        .min_by_key(|(o, m)| (m.config_epoch, *o))
        .map(|(o, _)| o)
}

/// `n` (down) replicates a reachable master that owns slots and has no other replica
/// attached, while the spec asks for replicas.
fn only_replica_of_a_master_with_slots(w: &World, n: &crate::world::NodeInfo<'_>) -> bool {
    let Some(master) = n.entry.master_id.as_deref() else {
        return false;
    };
    w.desired.replicas > 0
        && w.owns_slots(master)
        && !w.has_attached_replica(master)
        && w.nodes
            .get(master)
            .is_some_and(|m| m.reachable && m.is_master())
}

/// Some member runs without answering (paused, stuck, cut off from the operator: not dead)
/// and may hold keys of `owner`'s slots: as the views last saw it, it is a replica of
/// `owner`, or a master owning no slot (it may have lost them to `owner`'s election while
/// silent: simulator seeds 34 and 106 with paused masters), or it cannot be told at all.
/// Without persistence `owner` comes back empty; that member, back, would follow it.
pub(crate) fn silent_copy_may_exist(w: &World, owner: &str) -> bool {
    w.obs
        .members
        .iter()
        .filter(|(o, m)| m.running && !w.reachable.contains_key(o))
        .any(|(o, _)| {
            let Some(id) = w.id_of.get(o) else {
                return true;
            };
            w.nodes.get(id).is_some_and(|n| {
                n.entry.master_id.as_deref() == Some(owner) || (n.is_master() && !w.owns_slots(id))
            })
        })
}

/// Some reachable replica holding keys follows a master that does not answer and that its
/// own view still gives some of the slots `owner` owns by consensus: it was cut off when
/// `owner` took them over from that master, and what it holds of them may be their only copy.
pub(crate) fn predecessor_replica_holds_keys(w: &World, owner: &str) -> bool {
    let Some(theirs) = w.slots_by_owner().get(owner) else {
        return false;
    };
    w.reachable.iter().any(|(o, (_, _, s))| {
        let Some(master) = w.me(*o).and_then(|me| me.master_id.as_deref()) else {
            return false;
        };
        s.keys > 0
            && master != owner
            && !w.nodes.get(master).is_some_and(|m| m.reachable)
            && w.view(*o, master).is_some_and(|e| {
                crate::slots::expand(&e.slots).any(|x| theirs.binary_search(&x).is_ok())
            })
    })
}

/// Down masters that own slots and match no member (their address changed while they were
/// down).
pub(crate) fn unidentified_down_masters<'w>(w: &'w World) -> impl Iterator<Item = &'w str> {
    w.nodes
        .iter()
        .filter(|(id, n)| !n.reachable && n.ordinal.is_none() && w.owns_slots(id))
        .map(|(id, _)| *id)
}

/// Some unidentified down master has no replica that could take over.
fn unidentified_master_without_copy(w: &World) -> bool {
    unidentified_down_masters(w).any(|id| w.takeover_candidates(id).is_empty())
}
