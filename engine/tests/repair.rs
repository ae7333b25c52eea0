//! A node of a slot move dies mid-slot: the repairs of `repair.rs`, one scenario each. The
//! shapes are those of a scale-out from 3 masters x 1 replica to 4 x 1: masters #0-#2 with
//! replicas #3-#5, the new master #6 and its replica #7.
#![allow(clippy::unwrap_used)]

mod fixture;

use fixture::*;
use redis_operator_engine::model::{Observation, OpenSlot};
use redis_operator_engine::slots::{self, SlotRange, even_split};
use redis_operator_engine::*;

/// The slot being moved from #0 to #6 when a node died.
const SLOT: u16 = 5;

fn scaling_out() -> Vec<Node> {
    let mut nodes = healthy(3, 1);
    nodes.push(Node::new(6));
    let mut replica = Node::new(7);
    replica.master = Some(id(6));
    nodes.push(replica);
    nodes
}

/// #0 died mid-slot and its replica #3 took its slots over (a newer epoch); #6 was importing
/// `SLOT` and holds 7 of its keys. Redis applies no ownership update to a slot a node imports,
/// so #6's view still gives `SLOT` to #0.
fn source_died_and_was_replaced() -> Observation {
    source_died_mid_slots(&[SLOT])
}

/// The same with #6 importing each of `open` (7 keys of each already moved).
fn source_died_mid_slots(open: &[u16]) -> Observation {
    let mut nodes = scaling_out();
    let slots_of_0 = nodes[0].slots.clone();
    nodes[0].running = false;
    nodes[0].fail = true;
    nodes[0].slots = Vec::new();
    nodes[3].master = None;
    nodes[3].slots = slots_of_0.clone();
    nodes[6].open = open
        .iter()
        .map(|&slot| OpenSlot::Importing {
            slot,
            source: id(0),
        })
        .collect();
    for &slot in open {
        nodes[6].open_keys.insert(slot, 7);
    }
    nodes[6].keys = 7 * open.len() as u64;
    nodes[7].keys = nodes[6].keys;
    let mut obs = observe(&nodes, false, 60_000);
    let view_of_6 = obs.members.get_mut(&6).unwrap().redis.as_mut().unwrap();
    for e in view_of_6.nodes.entries_mut().iter_mut() {
        if e.id == id(0) {
            e.master_id = None;
            e.flags.replica = false;
            e.flags.master = true;
            e.slots = slots::to_ranges(open.iter().copied());
        } else if e.id == id(3) {
            e.slots = slots::to_ranges(slots::expand(&slots_of_0).filter(|s| !open.contains(s)));
        }
    }
    view_of_6.cluster_ok = false;
    obs
}

/// A source lost mid-move leaves many slots open towards one importer: the repair moves them
/// as one move, which the executor marks and drains many slots at a time, rather than one
/// move per slot, which it would run one after another while the new owner answers for the
/// moved keys as missing.
#[test]
fn the_slots_a_lost_source_left_open_towards_one_importer_are_finished_in_one_move() {
    let open = [SLOT, SLOT + 2, SLOT + 3];
    let d = decide(
        &Desired::new(4, 1),
        Phase::ScalingOut,
        &source_died_mid_slots(&open),
    );
    let moves: Vec<&Effect> = d
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::MigrateSlots { .. }))
        .collect();
    assert_eq!(
        moves,
        [&Effect::MigrateSlots {
            from: 3,
            from_id: id(3),
            to: 6,
            to_id: id(6),
            slots: vec![SlotRange::single(SLOT), SlotRange::new(SLOT + 2, SLOT + 3)],
        }],
        "{:#?}",
        d.effects
    );
    let owners_told = d
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::SetSlotOwner { on: 6, owner_id, .. } if *owner_id == id(3)))
        .count();
    assert_eq!(owners_told, open.len());
}

/// The new owner #3 has no replica (its master died), the importer #6 has one: the move is
/// finished towards #6, once #6 knows who owns the slot now.
#[test]
fn an_importing_node_whose_source_died_is_told_the_new_owner_then_receives_the_rest_of_the_slot() {
    let d = decide(
        &Desired::new(4, 1),
        Phase::ScalingOut,
        &source_died_and_was_replaced(),
    );
    assert_effects(
        &d,
        &[
            Effect::SetSlotOwner {
                on: 6,
                slot: SLOT,
                owner_id: id(3),
            },
            Effect::MigrateSlots {
                from: 3,
                from_id: id(3),
                to: 6,
                to_id: id(6),
                slots: vec![SlotRange::single(SLOT)],
            },
        ],
    );
    assert_eq!(d.phase, Phase::Recovering);
}

#[test]
fn an_open_slot_whose_owner_is_down_waits_for_the_failover_instead_of_moving_keys_to_it() {
    let mut nodes = scaling_out();
    nodes[0].running = false;
    nodes[0].fail = true;
    nodes[6].open = vec![OpenSlot::Importing {
        slot: SLOT,
        source: id(0),
    }];
    nodes[6].open_keys.insert(SLOT, 7);
    nodes[6].keys = 7;
    let d = decide(
        &Desired::new(4, 1),
        Phase::ScalingOut,
        &observe(&nodes, false, 1_000),
    );
    assert!(
        d.effects.iter().all(|e| !matches!(
            e,
            Effect::MoveStrayKeys { .. } | Effect::SetSlotStable { .. }
        )),
        "{:?}",
        d.effects
    );
}

/// #6 died while importing `SLOT` from #0, owning no slot yet; its replica #7 holds the 7 keys
/// that had moved, #0 still migrates the slot to #6.
fn target_died_owning_no_slot() -> Vec<Node> {
    let mut nodes = scaling_out();
    nodes[0].open = vec![OpenSlot::Migrating {
        slot: SLOT,
        target: id(6),
    }];
    nodes[0].open_keys.insert(SLOT, 3);
    nodes[6].running = false;
    nodes[6].fail = true;
    nodes[7].keys = 7;
    nodes[7].open_keys.insert(SLOT, 7);
    nodes
}

#[test]
fn the_replica_of_a_target_that_died_owning_no_slot_takes_over_before_the_target_restarts() {
    let d = decide(
        &Desired::new(4, 1),
        Phase::ScalingOut,
        &observe(&target_died_owning_no_slot(), false, 1_000),
    );
    assert_effects(
        &d,
        &[Effect::Failover {
            on: 7,
            mode: FailoverMode::Takeover,
        }],
    );
}

#[test]
fn a_target_that_is_only_cut_off_is_never_taken_over() {
    let nodes = target_died_owning_no_slot();
    let mut obs = observe(&nodes, false, 1_000);
    // Running, but it did not answer: a partition or a paused process.
    let m = obs.members.get_mut(&6).unwrap();
    m.running = true;
    m.redis = None;
    let d = decide(&Desired::new(4, 1), Phase::ScalingOut, &obs);
    assert!(
        d.effects
            .iter()
            .all(|e| !matches!(e, Effect::Failover { .. } | Effect::SetSlotStable { .. })),
        "{:?}",
        d.effects
    );
}

/// After the takeover: #7 is a master without slots holding the moved keys, with no marker.
fn promoted_replica_holds_the_moved_keys() -> Vec<Node> {
    let mut nodes = target_died_owning_no_slot();
    nodes[7].master = None;
    nodes
}

/// The owner still migrates the slot, so it would answer the keys' `RESTORE` with `ASK`:
/// the move is finished towards the node that holds them instead.
#[test]
fn the_move_is_finished_towards_the_promoted_replica_that_holds_the_moved_keys() {
    let mut obs = observe(&promoted_replica_holds_the_moved_keys(), false, 1_000);
    // #6 is cut off rather than stopped, so the member rules leave it alone.
    let m = obs.members.get_mut(&6).unwrap();
    m.running = true;
    m.redis = None;
    let d = decide(&Desired::new(4, 1), Phase::Recovering, &obs);
    assert_effects(
        &d,
        &[Effect::MigrateSlots {
            from: 0,
            from_id: id(0),
            to: 7,
            to_id: id(7),
            slots: vec![SlotRange::single(SLOT)],
        }],
    );
}

#[test]
fn the_source_keeps_its_marker_while_a_target_that_may_still_hold_keys_is_cut_off() {
    let mut nodes = promoted_replica_holds_the_moved_keys();
    nodes[7].keys = 0;
    nodes[7].open_keys.clear();
    let mut obs = observe(&nodes, false, 1_000);
    let m = obs.members.get_mut(&6).unwrap();
    m.running = true;
    m.redis = None;
    let d = decide(&Desired::new(4, 1), Phase::Recovering, &obs);
    assert!(
        !d.effects
            .contains(&Effect::SetSlotStable { on: 0, slot: SLOT }),
        "{:?}",
        d.effects
    );
}

#[test]
fn the_source_closes_the_slot_once_no_key_of_it_is_anywhere_else() {
    let mut nodes = promoted_replica_holds_the_moved_keys();
    nodes[7].keys = 0;
    nodes[7].open_keys.clear();
    // The dead target came back as a new, empty node; the old id is a ghost.
    nodes[6].running = true;
    nodes[6].fail = false;
    nodes[6].id = id(60);
    let d = decide(
        &Desired::new(4, 1),
        Phase::Recovering,
        &observe(&nodes, false, 1_000),
    );
    assert!(
        d.effects
            .contains(&Effect::SetSlotStable { on: 0, slot: SLOT }),
        "{:?}",
        d.effects
    );
}

/// The dead target came back as a new node; its old id is a ghost that #0 still migrates
/// `SLOT` to. Redis clears the markers naming a node it forgets, so forgetting the ghost now
/// would close the slot and strand the keys on #7 where no marker shows them.
#[test]
fn a_ghost_that_an_open_slot_still_names_is_not_forgotten_before_the_repair() {
    let mut nodes = promoted_replica_holds_the_moved_keys();
    nodes[0].open = vec![OpenSlot::Migrating {
        slot: SLOT,
        target: id(99),
    }];
    nodes[6].running = true;
    nodes[6].fail = false;
    let mut ghost = Node::new(99);
    ghost.running = false;
    ghost.fail = true;
    nodes.push(ghost);
    let mut obs = observe(&nodes, false, 1_000);
    obs.members.remove(&99);
    let d = decide(&Desired::new(4, 1), Phase::Recovering, &obs);
    // #7 holds the moved keys but has no replica: the dead target's member, back as an
    // empty node, becomes one before the move is finished towards #7.
    assert_effects(
        &d,
        &[Effect::Replicate {
            on: 6,
            master_id: id(7),
        }],
    );
    // Synced: the move is finished towards #7.
    nodes[6].master = Some(id(7));
    let mut obs = observe(&nodes, false, 2_000);
    obs.members.remove(&99);
    let d = decide(&Desired::new(4, 1), Phase::Recovering, &obs);
    assert_effects(
        &d,
        &[Effect::MigrateSlots {
            from: 0,
            from_id: id(0),
            to: 7,
            to_id: id(7),
            slots: vec![SlotRange::single(SLOT)],
        }],
    );
}

/// #2 lost its claim on a slot it had just received (its own line and view give it to #1)
/// while every other view routes the slot to #2: nobody advertises the slot any more, so the
/// views never agree. #2 takes the slot again.
#[test]
fn a_slot_the_views_route_to_a_master_that_does_not_claim_it_is_taken_by_that_master() {
    let nodes = healthy(3, 1);
    let mut obs = observe(&nodes, false, 1_000);
    let slot = even_split(3)[2].start;
    let view_of_2 = obs.members.get_mut(&2).unwrap().redis.as_mut().unwrap();
    for e in view_of_2.nodes.entries_mut().iter_mut() {
        if e.id == id(2) {
            e.slots = vec![SlotRange::new(slot + 1, 16383)];
        } else if e.id == id(1) {
            e.slots.push(SlotRange::single(slot));
        }
    }
    let d = decide(&Desired::new(3, 1), Phase::Recovering, &obs);
    assert_effects(
        &d,
        &[Effect::SetSlotOwner {
            on: 2,
            slot,
            owner_id: id(2),
        }],
    );
}

/// #6 died right after taking a slot with `SETSLOT NODE`, before it pinged its replica #7: every
/// view gives #6 the slot except #7's, and Redis never elects a replica whose view gives its
/// master no slot. With #6's process gone, #7 takes over, and at once claims the slot its view
/// never gave #6: otherwise #6, restarted empty, would keep serving it without its keys (the
/// node-loss script lost 1,189 keys that way).
#[test]
fn the_replica_of_a_dead_master_whose_slots_it_never_heard_of_takes_over() {
    let mut nodes = scaling_out();
    let split = even_split(3);
    nodes[0].slots = vec![SlotRange::new(split[0].start + 1, split[0].end)];
    nodes[6].slots = vec![SlotRange::single(split[0].start)];
    nodes[6].running = false;
    nodes[6].fail = true;
    nodes[6].keys = 3;
    nodes[7].keys = 3;
    let mut obs = observe(&nodes, false, 1_000);
    let view_of_7 = obs.members.get_mut(&7).unwrap().redis.as_mut().unwrap();
    for e in view_of_7.nodes.entries_mut().iter_mut() {
        if e.id == id(6) {
            e.slots.clear();
        } else if e.id == id(0) {
            e.slots = vec![split[0]];
        }
    }
    let d = decide(&Desired::new(4, 1), Phase::Recovering, &obs);
    assert_effects(&d, &takeover_by_7_claiming(split[0].start));
}

#[test]
fn a_holder_of_several_half_moved_slots_gets_one_replica_attached_once() {
    let mut nodes = promoted_replica_holds_the_moved_keys();
    nodes[0].open.push(OpenSlot::Migrating {
        slot: SLOT + 1,
        target: id(99),
    });
    nodes[0].open[0] = OpenSlot::Migrating {
        slot: SLOT,
        target: id(99),
    };
    nodes[7].open_keys.insert(SLOT + 1, 2);
    nodes[6].running = true;
    nodes[6].fail = false;
    let mut ghost = Node::new(99);
    ghost.running = false;
    ghost.fail = true;
    nodes.push(ghost);
    let mut obs = observe(&nodes, false, 1_000);
    obs.members.remove(&99);
    let d = decide(&Desired::new(4, 1), Phase::Recovering, &obs);
    assert_effects(
        &d,
        &[Effect::Replicate {
            on: 6,
            master_id: id(7),
        }],
    );
}

/// The move from #0 to #6 was handed over to the source only: #0 gave `SLOT` away (its own
/// line no longer claims it, every other view still gives it to #0) and #6 still imports it,
/// holding its 7 keys. No master claims the slot; the importer takes it.
fn handed_over_to_the_source_only() -> Observation {
    let mut nodes = scaling_out();
    nodes[6].open = vec![OpenSlot::Importing {
        slot: SLOT,
        source: id(0),
    }];
    nodes[6].open_keys.insert(SLOT, 7);
    nodes[6].keys = 7;
    nodes[7].keys = 7;
    let mut obs = observe(&nodes, false, 60_000);
    source_gave_slot_to(&mut obs, Some(id(6)));
    obs
}

#[test]
fn a_slot_its_source_gave_away_before_the_target_was_told_is_claimed_by_the_importing_target() {
    let obs = handed_over_to_the_source_only();
    let d = decide(&Desired::new(4, 1), Phase::ScalingOut, &obs);
    assert_effects(
        &d,
        &[Effect::SetSlotOwner {
            on: 6,
            slot: SLOT,
            owner_id: id(6),
        }],
    );
    assert_eq!(d.phase, Phase::Recovering);
    assert!(invariants::check_decision(&Desired::new(4, 1), &obs, &d).is_empty());
}

#[test]
fn an_importer_is_not_given_a_slot_whose_source_still_holds_keys_of_it() {
    let mut obs = handed_over_to_the_source_only();
    // The source never gave the slot away: it still claims it and migrates it, with keys.
    let mut nodes = scaling_out();
    nodes[0].open = vec![OpenSlot::Migrating {
        slot: SLOT,
        target: id(6),
    }];
    nodes[0].open_keys.insert(SLOT, 3);
    nodes[6].open = vec![OpenSlot::Importing {
        slot: SLOT,
        source: id(0),
    }];
    nodes[6].open_keys.insert(SLOT, 7);
    obs.members = observe(&nodes, false, 60_000).members;
    let d = decide(&Desired::new(4, 1), Phase::ScalingOut, &obs);
    assert!(
        !d.effects.iter().any(|e| matches!(
            e,
            Effect::SetSlotOwner { on: 6, owner_id, .. } if *owner_id == id(6)
        )),
        "{:?}",
        d.effects
    );
}

/// The move of `SLOT` from #0 to #6 was handed over to the source only, then #6 died: #0's own
/// line no longer claims `SLOT` (its view gives it to #6), the other views still give it to
/// #0, and #6's replica #7 holds the 7 moved keys with no marker.
#[test]
fn keys_of_a_slot_nobody_claims_on_the_replica_of_a_dead_target_that_owned_no_slot_are_taken_over()
{
    let mut nodes = scaling_out();
    nodes[6].running = false;
    nodes[6].fail = true;
    nodes[7].keys = 7;
    nodes[7].open_keys.insert(SLOT, 7);
    let mut obs = observe(&nodes, false, 60_000);
    source_gave_slot_to(&mut obs, Some(id(6)));
    let d = decide(&Desired::new(4, 1), Phase::ScalingOut, &obs);
    // Redis never elects a replica of a master without slots: `TAKEOVER`, and the promoted
    // replica claims the slot its master was being handed.
    assert_effects(&d, &takeover_by_7_claiming(SLOT));
}

/// #0's own line gives `SLOT` away: to `to` in its own view, or to nobody (the node it was
/// given to has been forgotten).
fn source_gave_slot_to(obs: &mut Observation, to: Option<String>) {
    let view_of_0 = obs.members.get_mut(&0).unwrap().redis.as_mut().unwrap();
    for e in view_of_0.nodes.entries_mut().iter_mut() {
        if e.id == id(0) {
            e.slots = vec![
                SlotRange::new(0, SLOT - 1),
                SlotRange::new(SLOT + 1, even_split(3)[0].end),
            ];
        } else if Some(&e.id) == to.as_ref() {
            e.slots.push(SlotRange::single(SLOT));
        }
    }
}

/// As above, but #6 owned slots: #7 won the election and claims them (not `SLOT`, which #6
/// never took), and #6 came back as a new, empty node replicating #7, its old id forgotten.
/// No master claims `SLOT`; the views still give it to #0, which holds nothing of it.
#[test]
fn a_slot_nobody_claims_goes_to_the_promoted_replica_holding_its_keys_never_back_to_the_source() {
    let mut nodes = scaling_out();
    nodes[2].slots = vec![SlotRange::new(even_split(3)[2].start, 15999)];
    nodes[7].master = None;
    nodes[7].slots = vec![SlotRange::new(16000, 16383)];
    nodes[7].keys = 7;
    nodes[7].open_keys.insert(SLOT, 7);
    nodes[6].id = "0000000000000000000000000000000000fresh6".into();
    nodes[6].master = Some(id(7));
    let mut obs = observe(&nodes, false, 60_000);
    source_gave_slot_to(&mut obs, None);
    let d = decide(&Desired::new(4, 1), Phase::Recovering, &obs);
    assert_effects(
        &d,
        &[Effect::SetSlotOwner {
            on: 7,
            slot: SLOT,
            owner_id: id(7),
        }],
    );
    assert!(invariants::check_decision(&Desired::new(4, 1), &obs, &d).is_empty());
}

/// #7 takes over its dead master by `TAKEOVER` and claims `slot`, which its view never gave it.
fn takeover_by_7_claiming(slot: u16) -> [Effect; 2] {
    [
        Effect::Failover {
            on: 7,
            mode: FailoverMode::Takeover,
        },
        Effect::SetSlotOwner {
            on: 7,
            slot,
            owner_id: id(7),
        },
    ]
}

/// Redis 7.0 deletes the keys of a slot a master loses to another claim without telling its
/// replicas. #0 lost slot `SLOT` that way and claims it no more, every other view still routes
/// it to #0, and only #0's replicas hold its keys: #3 all 15, #6 12 of them (chaos soak, seed
/// 11). The keys are copied back onto #0 from #3, the replica holding the most; no failover
/// (the keys would be lost at the next failover back: the old master rejoins by partial
/// resync, without them) and no bare claim (it would serve the slot empty).
#[test]
fn a_slot_whose_keys_only_the_replicas_of_its_named_master_kept_gets_them_back_from_the_fullest_replica()
 {
    let nodes = healthy(3, 2);
    let mut obs = observe(&nodes, false, 1_000);
    let own = obs.members.get_mut(&0).unwrap().redis.as_mut().unwrap();
    for e in own.nodes.entries_mut().iter_mut() {
        if e.id == id(0) {
            e.slots = slots::to_ranges(slots::expand(&e.slots).filter(|s| *s != SLOT));
        }
    }
    for (replica, keys) in [(3, 15), (6, 12)] {
        let r = obs
            .members
            .get_mut(&replica)
            .unwrap()
            .redis
            .as_mut()
            .unwrap();
        r.open_slot_keys.insert(SLOT, keys);
        r.master_link_up = true;
    }
    let d = decide(&Desired::new(3, 2), Phase::Recovering, &obs);
    assert_eq!(
        d.effects,
        [Effect::RestoreDroppedKeys {
            from: 3,
            to: 0,
            to_id: id(0),
            slot: SLOT,
        }]
    );
    let violations = invariants::check_decision(&Desired::new(3, 2), &obs, &d);
    assert!(violations.is_empty(), "{violations:?}");
}
