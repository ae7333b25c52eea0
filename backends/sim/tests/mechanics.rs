//! The simulator's Redis behaviour, driven by hand with effects (no engine decisions), so a
//! change in the model that breaks fidelity shows up here and not as a mysterious seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::{Effect, FailoverMode, SlotRange};
use redis_operator_sim::{ApplyError, StepBudget};

#[test]
fn a_cluster_built_by_hand_converges_with_every_node_agreeing() {
    let mut c = cluster(3, 1);
    let obs = c.observe();
    let desired = engine::Desired::new(3, 1);
    let violations = engine::invariants::check_converged(&desired, &obs);
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn addslots_on_a_busy_slot_is_refused() {
    let mut c = cluster(3, 0);
    let err = apply(
        &mut c,
        Effect::AddSlots {
            on: 1,
            slots: vec![SlotRange::single(0)],
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("already busy"), "{err}");
}

#[test]
fn replicate_on_a_master_with_slots_is_refused() {
    let mut c = cluster(3, 0);
    let master_id = id(&c, 1);
    let err = apply(&mut c, Effect::Replicate { on: 0, master_id }).unwrap_err();
    assert!(err.to_string().contains("must be empty"), "{err}");
}

#[test]
fn forget_of_myself_or_of_my_master_is_refused() {
    let mut c = cluster(3, 1);
    let me = id(&c, 3);
    let master = id(&c, 0);
    assert!(apply(&mut c, Effect::Forget { on: 3, node_id: me }).is_err());
    let err = apply(
        &mut c,
        Effect::Forget {
            on: 3,
            node_id: master,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("my master"), "{err}");
}

#[test]
fn setslot_node_away_from_a_node_holding_keys_is_refused() {
    let mut c = cluster(3, 0);
    let mut client = redis_operator_sim::client::Client::default();
    write_keys(&mut c, &mut client, 200);
    let (key, slot) = client
        .acked
        .iter()
        .find(|(_, s)| **s < 5462)
        .map(|(k, s)| (*k, *s))
        .unwrap();
    assert!(c.members[&0].node.holds(slot, key));
    let owner_id = id(&c, 1);
    let err = apply(
        &mut c,
        Effect::SetSlotOwner {
            on: 0,
            slot,
            owner_id,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("still hold keys"), "{err}");
}

#[test]
fn migrating_a_slot_the_source_does_not_own_is_refused() {
    let mut c = cluster(3, 0);
    let (from_id, to_id) = (id(&c, 1), id(&c, 2));
    let e = Effect::MigrateSlots {
        from: 1,
        from_id,
        to: 2,
        to_id,
        slots: vec![SlotRange::single(0)],
    };
    let err = apply(&mut c, e).unwrap_err();
    assert!(err.to_string().contains("not the owner"), "{err}");
}

#[test]
fn a_full_migration_moves_every_key_and_the_slot_and_survives_a_second_run() {
    let mut c = cluster(3, 1);
    let mut client = redis_operator_sim::client::Client::default();
    write_keys(&mut c, &mut client, 500);
    let (from_id, to_id) = (id(&c, 0), id(&c, 1));
    let slots = vec![SlotRange::new(0, 99)];
    let e = Effect::MigrateSlots {
        from: 0,
        from_id,
        to: 1,
        to_id: to_id.clone(),
        slots,
    };
    apply(&mut c, e.clone()).unwrap();
    apply(&mut c, e).unwrap(); // idempotent: already moved slots are skipped
    ticks(&mut c, 3);
    let obs = c.observe();
    for o in 0..6 {
        let view = obs.members[&o].redis.as_ref().unwrap();
        let owner = view
            .nodes
            .iter()
            .find(|n| n.slots.iter().any(|r| r.start <= 50 && 50 <= r.end))
            .unwrap();
        assert_eq!(owner.id, to_id, "#{o} sees the new owner");
    }
    assert!(client.missing(&mut c).is_empty());
    assert!(myself(&obs, 0).open_slots.is_empty() && myself(&obs, 1).open_slots.is_empty());
}

#[test]
fn an_interrupted_migration_leaves_markers_and_keys_on_both_sides() {
    let mut c = cluster(3, 0);
    let mut client = redis_operator_sim::client::Client::default();
    // Keys planted straight into one slot, enough for several MIGRATE batches.
    let slot = 7u16;
    for k in 1_000_000..1_000_025u64 {
        c.members
            .get_mut(&0)
            .unwrap()
            .node
            .keys
            .entry(slot)
            .or_default()
            .insert(k);
        client.acked.insert(k, slot);
    }
    let (from_id, to_id) = (id(&c, 0), id(&c, 1));
    let e = Effect::MigrateSlots {
        from: 0,
        from_id,
        to: 1,
        to_id,
        slots: vec![SlotRange::single(slot)],
    };
    // importing, migrating, one batch: then the operator dies.
    let err = c
        .apply(&e, &mut StepBudget::interrupt_after(3))
        .unwrap_err();
    assert_eq!(err, ApplyError::Interrupted);
    let obs = c.observe();
    let src = obs.members[&0].redis.as_ref().unwrap();
    let dst = obs.members[&1].redis.as_ref().unwrap();
    assert!(matches!(
        myself(&obs, 0).open_slots[..],
        [engine::OpenSlot::Migrating { .. }]
    ));
    assert!(matches!(
        myself(&obs, 1).open_slots[..],
        [engine::OpenSlot::Importing { .. }]
    ));
    assert!(src.open_slot_keys[&slot] > 0 && dst.open_slot_keys[&slot] > 0);
    // Finishing it later loses nothing.
    apply(&mut c, e).unwrap();
    ticks(&mut c, 2);
    assert!(client.missing(&mut c).is_empty());
}

#[test]
fn a_crashed_master_is_replaced_by_its_replica_and_rejoins_as_its_replica() {
    let mut c = cluster(3, 1);
    let mut client = redis_operator_sim::client::Client::default();
    write_keys(&mut c, &mut client, 300);
    c.members.get_mut(&0).unwrap().running = false;
    ticks(&mut c, 10);
    let obs = c.observe();
    assert!(myself(&obs, 3).flags.master, "the replica took over");
    assert_eq!(myself(&obs, 3).slot_count(), 5462);
    assert!(
        client.missing(&mut c).is_empty(),
        "the replica had every acknowledged key"
    );
    apply(&mut c, Effect::CreateNode { ordinal: 0 }).unwrap();
    ticks(&mut c, 3);
    let obs = c.observe();
    let old = myself(&obs, 0);
    assert_eq!(
        old.master_id.as_deref(),
        Some(id(&c, 3).as_str()),
        "the old master follows its replacement"
    );
    assert_eq!(
        obs.members[&0].redis.as_ref().unwrap().keys,
        obs.members[&3].redis.as_ref().unwrap().keys
    );
}

#[test]
fn restarting_a_crashed_master_before_its_replica_takes_over_loses_its_keys() {
    let mut c = cluster(3, 1);
    let mut client = redis_operator_sim::client::Client::default();
    write_keys(&mut c, &mut client, 300);
    c.members.get_mut(&0).unwrap().running = false;
    ticks(&mut c, 1);
    apply(&mut c, Effect::CreateNode { ordinal: 0 }).unwrap();
    ticks(&mut c, 3);
    let obs = c.observe();
    assert!(
        myself(&obs, 0).flags.master,
        "it came back with its slots, from nodes.conf"
    );
    assert!(
        !client.missing(&mut c).is_empty(),
        "the replica resynced from the empty master"
    );
}

#[test]
fn a_restart_without_nodes_conf_gets_a_new_id_and_an_ip_change_keeps_the_id() {
    let mut c = cluster(3, 1);
    let before = id(&c, 4);
    let m = c.members.get_mut(&4).unwrap();
    m.running = false;
    m.address_generation += 1;
    apply(&mut c, Effect::CreateNode { ordinal: 4 }).unwrap();
    ticks(&mut c, 2);
    assert_eq!(id(&c, 4), before);
    let obs = c.observe();
    let new_ip = c.members[&4].ip();
    let seen = obs.members[&0]
        .redis
        .as_ref()
        .unwrap()
        .view_of(&before)
        .unwrap()
        .addr
        .clone()
        .unwrap();
    assert_eq!(
        seen.ip, new_ip,
        "peers learn the new address when it pings them"
    );
    let m = c.members.get_mut(&4).unwrap();
    m.running = false;
    m.has_nodes_conf = false;
    apply(&mut c, Effect::CreateNode { ordinal: 4 }).unwrap();
    assert_ne!(id(&c, 4), before);
}

#[test]
fn forced_failover_without_a_majority_of_masters_does_not_happen_but_takeover_does() {
    let mut c = cluster(3, 1);
    for o in [0, 1] {
        c.members.get_mut(&o).unwrap().running = false;
    }
    ticks(&mut c, 1);
    apply(
        &mut c,
        Effect::Failover {
            on: 3,
            mode: FailoverMode::Force,
        },
    )
    .unwrap();
    assert!(!c.members[&3].node.is_master());
    apply(
        &mut c,
        Effect::Failover {
            on: 3,
            mode: FailoverMode::Takeover,
        },
    )
    .unwrap();
    assert!(c.members[&3].node.is_master());
}

#[test]
fn a_partitioned_minority_is_flagged_failed_and_heals_afterwards() {
    let mut c = cluster(3, 1);
    c.isolated.insert(2);
    ticks(&mut c, 8);
    let obs = c.observe();
    let view = obs.members[&0].redis.as_ref().unwrap();
    assert!(view.view_of(&id(&c, 2)).unwrap().flags.fail);
    assert!(
        myself(&obs, 5).flags.master,
        "the majority side promoted #2's replica"
    );
    c.isolated.clear();
    ticks(&mut c, 10);
    let obs = c.observe();
    let violations = engine::invariants::check_converged(&engine::Desired::new(3, 1), &obs);
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let cfg = redis_operator_sim::SimConfig {
        fault_steps: 30,
        settle_steps: 30,
        ..Default::default()
    };
    let a = redis_operator_sim::record_seed(7, &cfg).1;
    let b = redis_operator_sim::record_seed(7, &cfg).1;
    assert_eq!(a, b);
}

/// Redis 7.0 (`clusterHandleSlaveFailover`): a replica that started an election starts no
/// other, forced or its own, within its retry time (twice its auth timeout, 4 node timeouts).
/// So a forced election that loses holds back the replica's own election well past the node
/// timeout after which Redis alone would have elected it: what the engine's early path must
/// never cause.
#[test]
fn a_replica_whose_forced_election_lost_elects_itself_only_after_its_retry_time() {
    let mut c = cluster(3, 1);
    // No majority: the forced election of #3 (master #0 dead) finds one vote of two needed.
    c.members.get_mut(&0).unwrap().running = false;
    c.members.get_mut(&1).unwrap().running = false;
    apply(
        &mut c,
        Effect::Failover {
            on: 3,
            mode: FailoverMode::Force,
        },
    )
    .unwrap();
    assert!(!c.members[&3].node.is_master());
    // #1 answers again at once: Redis alone would elect #3 about a node timeout on.
    c.members.get_mut(&1).unwrap().running = true;
    let retry_s = (4 * TIMEOUT / 1000) as u32;
    let mut promoted_after = None;
    for s in 1..=retry_s + 5 {
        ticks(&mut c, 1);
        if c.members[&3].node.is_master() {
            promoted_after = Some(s);
            break;
        }
    }
    let after = promoted_after.expect("elected once the retry time is over");
    assert!(
        after >= retry_s,
        "elected {after} s after the lost forced election, within its retry time"
    );
}
