//! The hand-over of a moved slot (`SETSLOT NODE` on its source and its target) caught half-way
//! while the source's config epoch rises through a collision: with the target told first the
//! model loses the moved keys, as Redis did at 100 masters; with the source told first, as the
//! executors do, nothing is lost and the engine's repair finishes the move.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::{Desired, Effect, Phase, SlotRange};
use redis_operator_sim::apply::{MidSlotKill, Victim};
use redis_operator_sim::client::Client;
use redis_operator_sim::{ApplyError, ServerModel, StepBudget};

/// One of #0's slots.
const SLOT: u16 = 7;

fn migrate(c: &redis_operator_sim::Cluster) -> Effect {
    Effect::MigrateSlots {
        from: 0,
        from_id: id(c, 0),
        to: 1,
        to_id: id(c, 1),
        slots: vec![SlotRange::single(SLOT)],
    }
}

#[test]
fn a_target_told_first_loses_the_moved_keys_when_the_source_outbids_it_before_being_told() {
    let mut c = cluster(3, 0);
    let mut client = Client::default();
    let keys = plant(&mut c, &mut client, 0, SLOT, 6);
    // Markers, one batch of keys, then the operator stops before any `SETSLOT NODE`.
    let err = c
        .apply(&migrate(&c), &mut StepBudget::interrupt_after(3))
        .unwrap_err();
    assert_eq!(err, ApplyError::Interrupted);
    assert_eq!(c.members[&1].node.keys_in(SLOT), 6, "every key moved");
    assert_eq!(c.members[&0].node.keys_in(SLOT), 0);

    // The old order: the target takes the slot, and before the source is told its epoch
    // rises above the target's new one (nobody has heard of it yet).
    let source = &mut c.members.get_mut(&0).unwrap().node;
    source.current_epoch += 10;
    source.config_epoch = source.current_epoch;
    let owner_id = id(&c, 1);
    apply(
        &mut c,
        Effect::SetSlotOwner {
            on: 1,
            slot: SLOT,
            owner_id,
        },
    )
    .unwrap();
    ticks(&mut c, 2);
    let (s, t) = (&c.members[&0].node, &c.members[&1].node);
    assert_eq!(t.owner(SLOT), s.key, "the source's claim won back the slot");
    assert_eq!(t.keys_in(SLOT), 0, "and the target dropped what it held");
    let lost = client.missing(&mut c);
    assert_eq!(lost.len(), keys.len(), "{lost:?}");
}

#[test]
fn a_source_told_first_never_takes_the_slot_back_and_the_repair_gives_it_to_the_importer() {
    let mut c = cluster(3, 0);
    let mut client = Client::default();
    plant(&mut c, &mut client, 0, SLOT, 6);
    let mut budget = StepBudget::kill_at(MidSlotKill {
        after: 0,
        victim: Victim::CollidingSource,
    });
    let err = c.apply(&migrate(&c), &mut budget).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::NoAnswer {
                ordinal: 1,
                victim: Victim::CollidingSource
            }
        ),
        "{err}"
    );
    ticks(&mut c, 5);
    let (s, t) = (&c.members[&0].node, &c.members[&1].node);
    assert!(
        s.config_epoch > t.config_epoch,
        "the source outbids the target"
    );
    assert_ne!(s.owner(SLOT), s.key, "but no longer claims the slot");
    assert!(t.importing.contains_key(&SLOT));
    assert_eq!(t.keys_in(SLOT), 6, "the importer keeps every key");

    let decision = engine::decide(&Desired::new(3, 0), Phase::Ready, &c.observe());
    let claim = Effect::SetSlotOwner {
        on: 1,
        slot: SLOT,
        owner_id: id(&c, 1),
    };
    assert_eq!(
        decision.effects,
        std::slice::from_ref(&claim),
        "{}",
        decision.summary
    );
    apply(&mut c, claim).unwrap();
    ticks(&mut c, 2);
    let t = c.members[&1].node.key;
    for m in c.members.values() {
        assert_eq!(
            m.node.owner(SLOT),
            t,
            "#{} routes the slot to #1",
            m.ordinal
        );
    }
    assert!(client.missing(&mut c).is_empty());
}

/// Redis 7.0 drops the keys of a slot a master loses to another claim on the master alone
/// (chaos soak, seed 11; the model does not run that claim, so the test makes its outcome):
/// #0 claims `SLOT` no more and holds none of its keys, every other view still routes it to
/// #0, and #0's replica #3 holds them all. The engine has the keys copied back onto #0. (No
/// tick before the decision: the model's replicas mirror their master's whole dataset, so
/// they would drop the keys too, as Redis 7.2+ replicas do.)
#[test]
fn keys_a_master_dropped_while_its_replica_kept_them_are_copied_back_and_none_is_lost() {
    let mut c = cluster(3, 1);
    let mut client = Client::default();
    let keys = plant(&mut c, &mut client, 0, SLOT, 6);
    let master = &mut c.members.get_mut(&0).unwrap().node;
    master.keys.remove(&SLOT);
    master.set_owner(SLOT, redis_operator_sim::node::NONE);
    let k0 = c.members[&0].node.key;
    for o in 1..6 {
        assert_eq!(
            c.members[&o].node.owner(SLOT),
            k0,
            "#{o} still routes it to #0"
        );
    }
    assert_eq!(c.members[&3].node.keys_in(SLOT), keys.len());
    assert_eq!(client.missing(&mut c).len(), keys.len());

    let decision = engine::decide(&Desired::new(3, 1), Phase::Ready, &c.observe());
    let restore = Effect::RestoreDroppedKeys {
        from: 3,
        to: 0,
        to_id: id(&c, 0),
        slot: SLOT,
    };
    assert_eq!(
        decision.effects,
        std::slice::from_ref(&restore),
        "{}",
        decision.summary
    );
    apply(&mut c, restore).unwrap();
    ticks(&mut c, 2);
    assert_eq!(c.members[&0].node.owner(SLOT), k0);
    assert!(client.missing(&mut c).is_empty());
    let decision = engine::decide(&Desired::new(3, 1), Phase::Ready, &c.observe());
    assert!(decision.effects.is_empty(), "{:?}", decision.effects);
}

/// The mark a node keeps of a slot whose owner stopped claiming it (Redis'
/// `owner_not_claiming_slot`), as the real servers keep it
/// (`backends/redis/tests/handover.rs`, `a_stale_claim_takes_a_slot_back_…`): the source is
/// told first, the importing target sees it stop claiming the slot, then takes it under a new
/// epoch; a late claim from the source, under its older epoch, then arrives. Redis 7.0 keeps
/// the mark through the target's `SETSLOT NODE`, so the late claim wins and the target drops
/// the keys; Valkey 8 (and Redis 7.4+) drops it with the change of owner, and the target
/// keeps the slot. That is why the executor tells the target first on Redis 7.0.
#[test]
fn a_late_claim_takes_a_slot_back_from_its_new_owner_only_on_redis_7_0() {
    for server in [ServerModel::Valkey8, ServerModel::Redis70] {
        let mut c = cluster_on(server, 3, 0);
        let mut client = Client::default();
        plant(&mut c, &mut client, 0, SLOT, 6);
        c.apply(&migrate(&c), &mut StepBudget::interrupt_after(3))
            .unwrap_err();
        assert_eq!(c.members[&1].node.keys_in(SLOT), 6, "every key moved");
        let target = id(&c, 1);
        for on in [0, 1] {
            if on == 1 {
                ticks(&mut c, 1);
                let t = &c.members[&1].node;
                assert!(
                    t.not_claiming.contains(&SLOT),
                    "{server:?}: the mark is set"
                );
            }
            let tell = Effect::SetSlotOwner {
                on,
                slot: SLOT,
                owner_id: target.clone(),
            };
            apply(&mut c, tell).unwrap();
        }
        let (k0, k1) = (c.members[&0].node.key, c.members[&1].node.key);
        assert!(c.members[&1].node.config_epoch > c.members[&0].node.config_epoch);
        // The source's header from before it was told, late: it still claims the slot.
        c.members.get_mut(&0).unwrap().node.set_owner(SLOT, k0);
        ticks(&mut c, 1);
        let t = &c.members[&1].node;
        match server {
            ServerModel::Redis70 => {
                assert_eq!(t.owner(SLOT), k0, "the late claim wins on Redis 7.0");
                assert_eq!(t.keys_in(SLOT), 0, "and the new owner dropped the keys");
            }
            ServerModel::Valkey8 => {
                assert_eq!(t.owner(SLOT), k1, "Valkey keeps the new owner");
                assert_eq!(t.keys_in(SLOT), 6);
            }
        }
    }
}
