//! A brand-new cluster: slots assigned to the first masters, everyone introduced to one
//! anchor node.

use crate::effect::Effect;
use crate::model::Ordinal;
use crate::replicas::natural_master;
use crate::slots::even_split;
use crate::work::{Kind, Work};
use crate::world::World;

/// A brand-new cluster: every node is empty and knows no one. Assign slots to the first
/// `masters` ordinals and introduce everyone to node 0; replicas attach once gossip settles.
pub(crate) fn bootstrap(w: &World) -> Work {
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
    // An epoch of its own for every master, first: Redis takes one only before the node knows
    // another (see `Effect::SetConfigEpoch`). A master that has one already keeps it.
    let mut effects: Vec<Effect> = masters
        .iter()
        .zip(1u64..)
        .filter(|(on, _)| w.me(**on).is_some_and(|me| me.config_epoch == 0))
        .map(|(&on, epoch)| Effect::SetConfigEpoch { on, epoch })
        .collect();
    effects.extend(
        even_split(w.desired.masters)
            .into_iter()
            .zip(&masters)
            .map(|(range, &on)| Effect::AddSlots {
                on,
                slots: vec![range],
            }),
    );
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
pub(crate) fn anchor(w: &World) -> Option<Ordinal> {
    let owners = w.numbers(w.slots_by_owner().keys().copied());
    let known = w.known_in_views(&owners);
    w.reachable
        .keys()
        .map(|ord| {
            let known = known.get(ord).copied().unwrap_or(0);
            (std::cmp::Reverse(known), *ord)
        })
        .min()
        .map(|(_, ord)| ord)
}
