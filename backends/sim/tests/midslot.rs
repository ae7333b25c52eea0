//! Migrations caught half-way by a dead end (source or target killed mid-slot), and what
//! Redis 7.0 refuses then, driven by hand with effects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::{Effect, FailoverMode, Ordinal, SlotRange};
use redis_operator_sim::node::PORT;
use redis_operator_sim::{ApplyError, Cluster, StepBudget};

use redis_operator_sim::apply::{MidSlotKill, Victim};
use redis_operator_sim::client::Client;

/// The slot the migration tests move: one of #0's.
const SLOT: u16 = 7;

fn migrate(c: &Cluster, from: Ordinal, to: Ordinal, slot: u16) -> Effect {
    Effect::MigrateSlots {
        from,
        from_id: id(c, from),
        to,
        to_id: id(c, to),
        slots: vec![SlotRange::single(slot)],
    }
}

fn move_stray(c: &Cluster, from: Ordinal, to: Ordinal, slot: u16) -> Effect {
    Effect::MoveStrayKeys {
        from,
        to,
        to_id: id(c, to),
        slot,
    }
}

fn kill_after(after: u32, victim: Victim) -> StepBudget {
    StepBudget::kill_at(MidSlotKill { after, victim })
}

fn holders(c: &Cluster, slot: u16, key: u64) -> Vec<Ordinal> {
    c.members
        .values()
        .filter(|m| m.node.holds(slot, key))
        .map(|m| m.ordinal)
        .collect()
}

fn cluster_ok(c: &mut Cluster, o: Ordinal) -> bool {
    c.observe().members[&o].redis.as_ref().unwrap().cluster_ok
}

/// Three masters with a replica each; slot 7 half-moved from #0 to #1 (6 keys, 2-key
/// batches) when #0 is SIGKILLed right after the first batch, then 10 s of cluster bus:
/// #3, #0's replica, has taken over. Returns the keys that had reached #1.
fn source_killed_mid_slot() -> (Cluster, Client, Vec<u64>) {
    let mut c = cluster(3, 1);
    c.migrate_batch = 2;
    let mut client = Client::default();
    let keys = plant(&mut c, &mut client, 0, SLOT, 6);
    let e = migrate(&c, 0, 1, SLOT);
    let err = c.apply(&e, &mut kill_after(0, Victim::Source)).unwrap_err();
    assert_eq!(
        err,
        ApplyError::Killed {
            ordinal: 0,
            victim: Victim::Source
        }
    );
    ticks(&mut c, 10);
    assert!(c.members[&3].node.is_master(), "#0's replica took over");
    let moved: Vec<u64> = keys
        .into_iter()
        .filter(|k| c.members[&1].node.holds(SLOT, *k))
        .collect();
    assert_eq!(moved.len(), 2, "one batch had reached the target");
    (c, client, moved)
}

#[test]
fn an_importing_node_keeps_a_dead_source_as_owner_when_its_replica_takes_over_and_reports_cluster_fail()
 {
    let (mut c, _, moved) = source_killed_mid_slot();
    let (dead, promoted) = (c.members[&0].node.key, c.members[&3].node.key);
    for o in [2, 3, 4, 5] {
        assert_eq!(c.members[&o].node.owner(SLOT), promoted, "#{o} follows #3");
    }
    let t = &c.members[&1].node;
    assert_eq!(t.owner(SLOT), dead, "the importing node ignored #3's claim");
    assert_eq!(t.owner(SLOT + 1), promoted, "but took #3's other slots");
    assert!(t.importing.contains_key(&SLOT));
    assert!(!cluster_ok(&mut c, 1), "its slot's owner is FAIL");
    assert!(cluster_ok(&mut c, 2) && cluster_ok(&mut c, 3));
    for k in moved {
        assert_eq!(
            holders(&c, SLOT, k),
            vec![1, 4],
            "moved keys live on #1 only"
        );
    }
}

#[test]
fn a_node_whose_cluster_is_down_refuses_migrate_with_clusterdown_and_keeps_its_keys() {
    let (mut c, _, moved) = source_killed_mid_slot();
    let e = move_stray(&c, 1, 3, SLOT);
    let err = apply(&mut c, e).unwrap_err();
    assert!(
        err.to_string().contains("CLUSTERDOWN The cluster is down"),
        "{err}"
    );
    assert!(moved.iter().all(|k| c.members[&1].node.holds(SLOT, *k)));
}

#[test]
fn migrate_into_a_node_whose_cluster_is_down_fails_with_the_targets_clusterdown() {
    let (mut c, _, _) = source_killed_mid_slot();
    let left = c.members[&3].node.keys_in(SLOT);
    assert_eq!(left, 4, "the promoted replica has the keys not moved yet");
    let e = migrate(&c, 3, 1, SLOT);
    let err = apply(&mut c, e).unwrap_err();
    assert!(
        err.to_string()
            .contains("ERR Target instance replied with error: CLUSTERDOWN The cluster is down"),
        "{err}"
    );
    assert_eq!(c.members[&3].node.keys_in(SLOT), left, "nothing left #3");
}

#[test]
fn setslot_node_to_the_new_owner_on_an_importing_node_keeps_the_marker_and_lets_the_keys_go_home() {
    let (mut c, client, _) = source_killed_mid_slot();
    let owner_id = id(&c, 3);
    apply(
        &mut c,
        Effect::SetSlotOwner {
            on: 1,
            slot: SLOT,
            owner_id,
        },
    )
    .unwrap();
    let t = &c.members[&1].node;
    assert_eq!(t.owner(SLOT), c.members[&3].node.key, "rebound");
    assert!(
        t.importing.contains_key(&SLOT),
        "Redis 7.0 clears importing only for SETSLOT NODE <myself>"
    );
    assert!(cluster_ok(&mut c, 1), "the owner it lists is alive now");
    let e = move_stray(&c, 1, 3, SLOT);
    apply(&mut c, e).unwrap();
    assert!(c.members[&1].node.importing.is_empty());
    assert_eq!(c.members[&3].node.keys_in(SLOT), 6);
    assert!(client.missing(&mut c).is_empty());
}

#[test]
fn setslot_node_to_itself_on_an_importing_node_clears_the_marker_and_bumps_its_epoch() {
    let mut c = cluster(3, 0);
    let e = migrate(&c, 0, 1, SLOT);
    // IMPORTING on #1, then the operator dies.
    let err = c
        .apply(&e, &mut StepBudget::interrupt_after(1))
        .unwrap_err();
    assert_eq!(err, ApplyError::Interrupted);
    assert!(c.members[&1].node.importing.contains_key(&SLOT));
    let before = c.members[&1].node.config_epoch;
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
    let t = &c.members[&1].node;
    assert!(t.importing.is_empty());
    assert_eq!(t.owner(SLOT), t.key);
    assert!(t.config_epoch > before);
}

#[test]
fn an_update_message_does_not_rebind_a_slot_the_receiver_imports() {
    let mut c = cluster(3, 1);
    // #1 imports slot 7 from #0 (the operator died right after IMPORTING).
    let e = migrate(&c, 0, 1, SLOT);
    assert!(c.apply(&e, &mut StepBudget::interrupt_after(1)).is_err());
    // #1 is cut off while #3 takes #0's slots over under a new epoch.
    c.isolated.insert(1);
    apply(
        &mut c,
        Effect::Failover {
            on: 3,
            mode: FailoverMode::Takeover,
        },
    )
    .unwrap();
    ticks(&mut c, 1);
    let promoted = c.members[&3].node.key;
    assert_eq!(c.members[&2].node.owner(SLOT), promoted);
    assert_ne!(
        c.members[&1].node.epoch_of(promoted),
        c.members[&3].node.config_epoch
    );
    // #1 now claims one of #0's old slots, which #3 owns under a newer epoch, and can talk
    // only to #2, which knows that: #2 answers #1's stale claim with an UPDATE about #3.
    let stale = SLOT + 1;
    let me = c.members[&1].node.key;
    c.members.get_mut(&1).unwrap().node.set_owner(stale, me);
    c.isolated.insert(2);
    ticks(&mut c, 1);
    let t = &c.members[&1].node;
    assert_eq!(
        t.epoch_of(promoted),
        c.members[&3].node.config_epoch,
        "UPDATE applied"
    );
    assert_eq!(t.owner(stale), promoted, "the stale claim was rebound");
    assert_eq!(
        t.owner(SLOT),
        c.members[&0].node.key,
        "the imported slot was not"
    );
}

#[test]
fn migrate_of_a_slot_the_node_neither_owns_nor_imports_is_refused_with_moved() {
    let mut c = cluster(3, 0);
    let mut client = Client::default();
    // Stray keys of #0's slot on #1, with no marker anywhere.
    let keys = plant(&mut c, &mut client, 1, SLOT, 3);
    let err = c.migrate_batch(1, 0, SLOT).unwrap_err();
    assert!(err.to_string().contains("MOVED 7"), "{err}");
    assert_eq!(holders(&c, SLOT, keys[0]), vec![1]);
    // MoveStrayKeys opens the slot on #1 first (IMPORTING from the owner), then closes it.
    let e = move_stray(&c, 1, 0, SLOT);
    apply(&mut c, e).unwrap();
    assert_eq!(holders(&c, SLOT, keys[0]), vec![0]);
    assert!(c.members[&1].node.importing.is_empty());
    assert!(client.missing(&mut c).is_empty());
}

#[test]
fn migrate_and_setslot_on_a_replica_are_refused() {
    let mut c = cluster(3, 1);
    let mut client = Client::default();
    plant(&mut c, &mut client, 0, SLOT, 3);
    assert!(c.members[&3].node.keys_in(SLOT) == 3, "#3 mirrors #0");
    let err = c.migrate_batch(3, 1, SLOT).unwrap_err();
    assert!(err.to_string().contains("MOVED"), "{err}");
    let e = move_stray(&c, 3, 0, SLOT);
    let err = apply(&mut c, e).unwrap_err();
    assert!(
        err.to_string().contains("SETSLOT only with masters"),
        "{err}"
    );
    let err = apply(&mut c, Effect::SetSlotStable { on: 3, slot: SLOT }).unwrap_err();
    assert!(
        err.to_string().contains("SETSLOT only with masters"),
        "{err}"
    );
    let owner_id = id(&c, 3);
    let err = apply(
        &mut c,
        Effect::SetSlotOwner {
            on: 3,
            slot: SLOT,
            owner_id,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("SETSLOT only with masters"),
        "{err}"
    );
}

/// Three masters with a replica each, plus #6, an empty master, with its replica #7.
fn cluster_with_an_empty_master() -> Cluster {
    let mut c = cluster(3, 1);
    for o in [6, 7] {
        apply(&mut c, Effect::CreateNode { ordinal: o }).unwrap();
        meet_node_0(&mut c, o);
    }
    ticks(&mut c, 3);
    let master_id = id(&c, 6);
    apply(&mut c, Effect::Replicate { on: 7, master_id }).unwrap();
    ticks(&mut c, 3);
    c
}

#[test]
fn failover_of_a_replica_whose_master_serves_no_slot_never_elects_it_only_takeover_does() {
    let mut c = cluster_with_an_empty_master();
    for mode in [FailoverMode::Default, FailoverMode::Force] {
        apply(&mut c, Effect::Failover { on: 7, mode }).unwrap();
        ticks(&mut c, 2);
        assert!(!c.members[&7].node.is_master(), "{mode:?} elected it");
    }
    c.kill(6);
    ticks(&mut c, 10);
    assert!(!c.members[&7].node.is_master(), "no automatic failover");
    apply(
        &mut c,
        Effect::Failover {
            on: 7,
            mode: FailoverMode::Force,
        },
    )
    .unwrap();
    assert!(!c.members[&7].node.is_master());
    apply(
        &mut c,
        Effect::Failover {
            on: 7,
            mode: FailoverMode::Takeover,
        },
    )
    .unwrap();
    assert!(c.members[&7].node.is_master());
}

#[test]
fn killing_the_target_mid_slot_leaves_the_moved_keys_on_its_replica_with_no_marker() {
    let mut c = cluster_with_an_empty_master();
    c.migrate_batch = 2;
    let mut client = Client::default();
    plant(&mut c, &mut client, 0, SLOT, 6);
    let e = migrate(&c, 0, 6, SLOT);
    let err = c.apply(&e, &mut kill_after(1, Victim::Target)).unwrap_err();
    assert_eq!(
        err,
        ApplyError::Killed {
            ordinal: 6,
            victim: Victim::Target
        }
    );
    ticks(&mut c, 10);
    let r = &c.members[&7].node;
    assert!(!r.is_master(), "a master with no slot is not failed over");
    assert!(r.importing.is_empty() && r.migrating.is_empty());
    assert_eq!(r.keys_in(SLOT), 4, "two batches had reached #6");
    // Every running node counts its keys of a slot open anywhere (#0 still migrates it).
    let obs = c.observe();
    let counts = |o: Ordinal| {
        obs.members[&o]
            .redis
            .as_ref()
            .unwrap()
            .open_slot_keys
            .clone()
    };
    assert_eq!(counts(7).get(&SLOT), Some(&4), "the dead target's replica");
    assert_eq!(
        counts(0).get(&SLOT),
        Some(&2),
        "the source, which has it open"
    );
    assert_eq!(counts(3).get(&SLOT), Some(&2), "the source's replica");
    assert_eq!(counts(1).get(&SLOT), None, "no key, not open: left out");
}

/// Only a move from a master with a copy to one without exposes keys: between two masters
/// without replicas (a cluster scaled in from none) they stay as exposed as they were.
#[test]
fn keys_migrated_between_masters_without_replicas_stay_a_faults_loss() {
    let mut c = cluster(3, 0);
    c.exposure_wanted = true;
    let mut client = Client::default();
    plant(&mut c, &mut client, 0, SLOT, 3);
    let e = migrate(&c, 0, 1, SLOT);
    apply(&mut c, e).unwrap();
    assert!(c.exposed.is_empty());
}

#[test]
fn keys_migrated_to_a_master_without_a_synced_replica_are_the_operators_loss_when_it_dies() {
    // #0 has its replica #3; #1 lost its replica #4: a move from #0 to #1 exposes the keys.
    let mut c = cluster(3, 1);
    c.exposure_wanted = true;
    let mut client = Client::default();
    let keys = plant(&mut c, &mut client, 0, SLOT, 3);
    c.kill(4);
    let e = migrate(&c, 0, 1, SLOT);
    apply(&mut c, e).unwrap();
    let holder = c.members[&1].node.key;
    assert!(keys.iter().all(|k| c.exposed.get(k) == Some(&holder)));
    c.kill(1);
    client.account_losses(&c);
    assert_eq!(client.lost_to_operator.len(), 3);
    assert!(client.lost_to_faults.is_empty());
}

#[test]
fn keys_lost_with_a_master_whose_replica_a_fault_killed_stay_the_faults_loss() {
    let mut c = cluster(3, 1);
    c.exposure_wanted = true;
    let mut client = Client::default();
    let keys = plant(&mut c, &mut client, 0, SLOT, 3);
    let e = migrate(&c, 0, 1, SLOT);
    apply(&mut c, e).unwrap();
    assert!(c.exposed.is_empty(), "#1's replica received them at once");
    c.kill(4);
    c.kill(1);
    client.account_losses(&c);
    assert!(client.lost_to_operator.is_empty());
    assert!(keys.iter().all(|k| client.lost_to_faults.contains(k)));
}

#[test]
fn a_replica_that_syncs_the_migrated_keys_ends_their_exposure() {
    let mut c = cluster(3, 1);
    c.exposure_wanted = true;
    let mut client = Client::default();
    plant(&mut c, &mut client, 0, SLOT, 3);
    c.kill(4);
    let e = migrate(&c, 0, 1, SLOT);
    apply(&mut c, e).unwrap();
    assert_eq!(c.exposed.len(), 3);
    apply(&mut c, Effect::CreateNode { ordinal: 6 }).unwrap();
    let ip = c.members[&6].ip();
    apply(
        &mut c,
        Effect::Meet {
            on: 1,
            ip,
            port: PORT,
        },
    )
    .unwrap();
    let master_id = id(&c, 1);
    apply(&mut c, Effect::Replicate { on: 6, master_id }).unwrap();
    ticks(&mut c, 1);
    c.prune_exposure(redis_operator_sim::client::slot_of);
    assert!(c.exposed.is_empty());
}

#[test]
fn a_killed_node_comes_back_with_its_keys_only_with_persistence() {
    for persistent in [false, true] {
        let mut c = cluster(3, 0);
        c.persistent = persistent;
        let mut client = Client::default();
        plant(&mut c, &mut client, 0, SLOT, 3);
        c.kill(0);
        client.account_losses(&c);
        assert_eq!(client.lost_to_faults.is_empty(), persistent);
        apply(&mut c, Effect::CreateNode { ordinal: 0 }).unwrap();
        assert_eq!(
            c.members[&0].node.keys_in(SLOT),
            if persistent { 3 } else { 0 }
        );
    }
}
