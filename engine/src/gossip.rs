//! Introducing nodes the cluster does not know, or knows at an old address (`CLUSTER MEET`).

use crate::bootstrap::anchor;
use crate::effect::Effect;
use crate::work::{Kind, Work};
use crate::world::World;

/// How soon to look again after introducing nodes or attaching an empty replica: Redis
/// completes a `CLUSTER MEET` handshake within a cluster cron tick or two (100 ms each).
const HANDSHAKE_MS: u64 = 200;

/// [`HANDSHAKE_MS`], or 2.5 ms per member when that is longer: every look reads every node.
/// A 100 x 1 cluster (200 nodes on a 2-core machine, bench/pass_cost.py) looked at every
/// 200 ms while it formed once did not reach Ready, beside a build; with this pace it reached
/// Ready in every idle run since, so the pace is kept, not proven the cause. From 200
/// members on this is the 500 ms pace of any other settling wait.
pub(crate) fn recheck_ms(w: &World) -> u64 {
    HANDSHAKE_MS.max(w.obs.members.len() as u64 * 5 / 2)
}

/// Introduce nodes the cluster does not know, and re-introduce nodes whose address changed.
pub(crate) fn meet(w: &World, degraded: &mut Vec<String>) -> Option<Work> {
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
                // A node that will join a master as a replica at once (it holds nothing) is met
                // by that master, so that it knows its master one handshake later; the others
                // meet it once it is a replica (below).
                let on = crate::replicas::early_master_of(w, ord)
                    .filter(|m| *m != ord && w.reachable.contains_key(m))
                    .unwrap_or(anchor);
                effects.push(Effect::Meet {
                    on,
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
    for e in introduce_replicas(w) {
        if !effects.contains(&e) {
            effects.push(e);
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
    let mut work = Work::new(kind, effects, format!("{why} ({n})"));
    work.requeue_ms = Some(recheck_ms(w));
    Some(work)
}

/// A replica some node does not know yet is met by that node rather than left to gossip.
/// Redis announces a node's role only in that node's own messages: a node that learns a
/// replica through gossip shows it as a replica of no one until the replica itself pings it,
/// up to half a node timeout later. A node that meets the replica is met back by it within a
/// cron tick, and then knows whom it follows. Only nodes that know the replica's master meet
/// it, and none that is already introducing itself to it or being introduced.
fn introduce_replicas(w: &World) -> Vec<Effect> {
    let mut effects = Vec::new();
    // Settled gossip means every staying member knows every other: nothing to introduce, and
    // the pairwise look below (N² at 1000 × 1) is skipped on every converged pass.
    if w.gossip_settled() {
        return effects;
    }
    for (&ord, (_, addr, _)) in &w.reachable {
        if !w.in_range(ord) {
            continue;
        }
        let (Some(id), Some(master)) = (
            w.id_of.get(&ord),
            w.me(ord).and_then(|me| me.master_id.as_deref()),
        ) else {
            continue;
        };
        if !w.owns_slots(master) {
            continue;
        }
        for (&other, (_, other_addr, _)) in &w.reachable {
            if other == ord
                || !w.in_range(other)
                || w.view(other, id).is_some()
                || w.view(other, master).is_none()
                || w.handshaking(other, addr)
                || w.handshaking(ord, other_addr)
            {
                continue;
            }
            effects.push(Effect::Meet {
                on: other,
                ip: addr.ip.clone(),
                port: addr.port,
            });
        }
    }
    effects
}

/// `CLUSTER MEET` sent by a node towards a node that already knows it, so that it sends its
/// own header now: Redis takes a node's role, master, slots and config epoch only from that
/// node's own messages, and a node learnt through a handshake it started itself is known by
/// its flags alone (a replica of no one, a master of no slots at epoch 0) until the next ping
/// between the two, up to half a node timeout later. A MEET towards a known node costs one
/// handshake that Redis drops as soon as the answer names a node it knows, and the MEET
/// message itself is read like a ping. At most one per reachable node per pass.
pub(crate) fn announcements(w: &World) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (&subject, (_, _, _)) in &w.reachable {
        let (true, Some(me)) = (w.in_range(subject), w.me(subject)) else {
            continue;
        };
        for (&viewer, (_, viewer_addr, _)) in &w.reachable {
            if effects.len() >= w.reachable.len() {
                return effects;
            }
            if viewer == subject || !w.in_range(viewer) {
                continue;
            }
            let Some(seen) = w.view(viewer, &me.id) else {
                continue;
            };
            // Only over a link both ends hold healthy: a node cut off from the other is not
            // lagging, and a MEET towards it would only leave a handshake hanging.
            let healthy = |e: &crate::model::ClusterNode| {
                !e.flags.handshake
                    && !e.flags.pfail
                    && !e.flags.fail
                    && e.link == crate::model::LinkState::Connected
            };
            let knows_viewer = w
                .id_of
                .get(&viewer)
                .and_then(|id| w.view(subject, id))
                .is_some_and(healthy);
            if !healthy(seen) || !knows_viewer || w.handshaking(subject, viewer_addr) {
                continue;
            }
            if stale(seen, me) {
                effects.push(Effect::Meet {
                    on: subject,
                    ip: viewer_addr.ip.clone(),
                    port: viewer_addr.port,
                });
            }
        }
    }
    effects
}

/// `seen`, another node's entry for a node whose own line is `me`, lacks what only `me`'s own
/// header tells: whom a replica follows (a replica of no one, or still a master, as a view
/// shows a node attached a moment ago or known from a handshake), or, for a master serving
/// slots, that it serves any (a master of no slots at epoch 0: known from a handshake only).
/// A master that others see as a replica is left alone: that is a master whose own line is
/// stale (cut off while it was replaced), and Redis' UPDATE messages correct it.
fn stale(seen: &crate::model::ClusterNode, me: &crate::model::ClusterNode) -> bool {
    let follower_unheard = me.master_id.is_some() && seen.master_id != me.master_id;
    let master_unheard = me.is_master()
        && !me.slots.is_empty()
        && seen.is_master()
        && seen.slots.is_empty()
        && seen.config_epoch == 0;
    follower_unheard || master_unheard
}
