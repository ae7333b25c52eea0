//! Introducing nodes the cluster does not know, or knows at an old address (`CLUSTER MEET`).

use crate::bootstrap::anchor;
use crate::effect::Effect;
use crate::work::{Kind, Work};
use crate::world::World;

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
