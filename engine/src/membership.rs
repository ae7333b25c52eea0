//! Which members exist and run: missing members created, stopped ones restarted (or held,
//! see `restart.rs`), ids no member runs any more forgotten, drained members beyond the
//! desired count removed.

use crate::effect::Effect;
use crate::model::Ordinal;
use crate::restart::{self, Restart};
use crate::work::{Kind, Work};
use crate::world::World;

/// Members that should exist but do not, and members that stopped running.
pub(crate) fn members(w: &World) -> Option<Work> {
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
    // The same for a copy of its keys that a restart would let go (see `restart::of`): a
    // cut-off replica of the master it replaced, or a silent member (simulator pause seed 112:
    // a master whose address changed, its replica paused).
    let unidentified_takeover = restart::unidentified_down_masters(w).any(|id| {
        !w.takeover_candidates(id).is_empty()
            || (!w.desired.persistent
                && (restart::predecessor_replica_holds_keys(w, id)
                    || restart::silent_copy_may_exist(w, id)))
    });
    for (&ordinal, m) in &w.obs.members {
        if m.running {
            continue;
        }
        match restart::of(w, ordinal, m, unidentified_takeover) {
            Restart::Skip => {}
            Restart::Start => effects.push(Effect::CreateNode { ordinal }),
            Restart::StartFresh => {
                // Its storage goes too: the new node starts empty, with a new identity.
                effects.push(Effect::DeleteNode { ordinal });
                effects.push(Effect::DeleteData { ordinal });
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

/// Node ids the cluster remembers that no member runs any more (a node restarted without its
/// `nodes.conf` gets a new id; the old one lingers as failed). Only forgotten when every member
/// answered, when flagged failed, and when they own no slot.
pub(crate) fn forget_ghosts(w: &World) -> Option<Work> {
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
        for &ord in w.reachable.keys() {
            let is_its_master = w.me(ord).and_then(|me| me.master_id.as_deref()) == Some(*id);
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

/// Members beyond the desired count that hold nothing: forgotten by every other node, then
/// deleted. A master is removed only once no slot, no key and no replica is left on it.
pub(crate) fn remove_leaving(w: &World) -> (Vec<Effect>, bool) {
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
                effects.extend(delete_for_good(ord));
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
        // Nor while it is the copy of a master that stays without another one: a master whose
        // in-range replica is not attached or synced yet would hold the only copy of its keys
        // until it is (simulator seed 92: removed, then the master died).
        if let Some(m) = n.entry.master_id.as_deref()
            && w.desired.replicas > 0
            && w.owns_slots(m)
            && !w.has_synced_in_range_replica(m)
        {
            continue;
        }
        if is_master {
            let holds = !n.entry.slots.is_empty()
                || w.owns_slots(id)
                || w.listed_with_slots(id)
                // Down and owning no slot, it holds nothing any slot's owner lacks; but silent
                // while its process runs, what it holds is unknown.
                || w.state(ord).is_some_and(|s| s.keys > 0)
                || (w.state(ord).is_none() && w.obs.members.get(&ord).is_some_and(|m| m.running))
                || !w.replicas_of(id).is_empty();
            if holds {
                continue;
            }
            masters_removed = true;
        }
        // Only members that stay are told to forget: leaving ones are deleted in this same
        // pass, and a node deleted earlier in the list could not answer anyway.
        for &other in w.reachable.keys() {
            let its_master = w.me(other).and_then(|me| me.master_id.as_deref()) == Some(id);
            if w.in_range(other) && w.view(other, id).is_some() && !its_master {
                effects.push(Effect::Forget {
                    on: other,
                    node_id: id.to_string(),
                });
            }
        }
        effects.extend(delete_for_good(ord));
    }
    (effects, masters_removed)
}

/// A member leaving for good: its process first, then its storage, in the same decision. The
/// storage goes only after the delete succeeded (the pass stops at the first failure), and a
/// member whose delete succeeded but whose storage is still there is decided again next pass.
pub(crate) fn delete_for_good(ordinal: Ordinal) -> [Effect; 2] {
    [
        Effect::DeleteNode { ordinal },
        Effect::DeleteData { ordinal },
    ]
}
