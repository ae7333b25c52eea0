//! Rolling replacement: members running an outdated configuration fingerprint are restarted
//! with the desired one, one at a time, replicas first, masters after a coordinated failover.
#![allow(clippy::unwrap_used)]

mod fixture;

use fixture::*;
use redis_operator_engine::invariants::check_decision;
use redis_operator_engine::model::OpenSlot;
use redis_operator_engine::*;

fn wanting(masters: u32, replicas: u32, fingerprint: &str) -> Desired {
    let mut d = Desired::new(masters, replicas);
    d.fingerprint = Some(fingerprint.to_string());
    d
}

/// Every member reports `fingerprint`, except those listed in `newer` which report `"new"`.
fn running_with(nodes: &[Node], fingerprint: &str, newer: &[u32]) -> Observation {
    let mut obs = observe(nodes, false, 60_000);
    for (o, m) in obs.members.iter_mut() {
        m.fingerprint = Some(
            if newer.contains(o) {
                "new"
            } else {
                fingerprint
            }
            .to_string(),
        );
    }
    obs
}

fn is_ready(d: &Decision) -> bool {
    d.is_true(ConditionKind::Ready)
}

fn decide_checked(desired: &Desired, phase: Phase, obs: &Observation) -> Decision {
    let d = decide(desired, phase, obs);
    let violations = check_decision(desired, obs, &d);
    assert!(violations.is_empty(), "{violations:?}");
    d
}

#[test]
fn replicas_with_an_outdated_configuration_are_replaced_first_and_one_at_a_time() {
    let obs = running_with(&healthy(3, 1), "old", &[]);
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Ready, &obs);
    assert_effects(&d, &[Effect::ReplaceNode { ordinal: 3 }]);
    assert_eq!(d.phase, Phase::Rolling);
    assert!(is_ready(&d), "{}", d.summary);
}

#[test]
fn a_master_hands_its_slots_to_a_synced_replica_before_it_is_replaced() {
    let obs = running_with(&healthy(3, 1), "old", &[3, 4, 5]);
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Rolling, &obs);
    assert_effects(
        &d,
        &[Effect::Failover {
            on: 3,
            mode: FailoverMode::Default,
        }],
    );
    assert!(is_ready(&d), "{}", d.summary);
}

#[test]
fn a_master_demoted_for_its_replacement_is_replaced_as_a_replica() {
    // #0 handed its slots to #3 and follows it now.
    let mut nodes = healthy(3, 1);
    nodes[3].slots = std::mem::take(&mut nodes[0].slots);
    nodes[3].master = None;
    nodes[0].master = Some(id(3));
    let obs = running_with(&nodes, "old", &[3, 4, 5]);
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Rolling, &obs);
    assert_effects(&d, &[Effect::ReplaceNode { ordinal: 0 }]);
}

#[test]
fn nothing_is_replaced_while_the_last_replaced_replica_is_still_syncing_yet_the_cluster_stays_ready()
 {
    let mut obs = running_with(&healthy(3, 1), "old", &[3]);
    let s = obs.members.get_mut(&3).unwrap().redis.as_mut().unwrap();
    s.master_link_up = false;
    s.repl_offset = 0;
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Rolling, &obs);
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    assert_eq!(d.phase, Phase::Rolling);
    assert!(d.summary.contains("sync"), "{}", d.summary);
    assert!(is_ready(&d), "{}", d.summary);
}

#[test]
fn nothing_is_replaced_while_a_node_is_flagged_failing() {
    let mut obs = running_with(&healthy(3, 1), "old", &[]);
    let view = obs.members.get_mut(&0).unwrap().redis.as_mut().unwrap();
    view.nodes
        .entries_mut()
        .iter_mut()
        .find(|n| n.id == id(5))
        .unwrap()
        .flags
        .pfail = true;
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Ready, &obs);
    assert!(
        !d.effects
            .iter()
            .any(|e| matches!(e, Effect::ReplaceNode { .. } | Effect::Failover { .. })),
        "{:?}",
        d.effects
    );
}

#[test]
fn nothing_is_replaced_while_a_member_is_down() {
    let mut nodes = healthy(3, 1);
    nodes[4].running = false;
    let obs = running_with(&nodes, "old", &[]);
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Rolling, &obs);
    assert!(
        !d.effects
            .iter()
            .any(|e| matches!(e, Effect::ReplaceNode { .. } | Effect::Failover { .. })),
        "{:?}",
        d.effects
    );
}

#[test]
fn nothing_is_replaced_while_a_slot_is_open() {
    let mut nodes = healthy(3, 1);
    nodes[0].open = vec![OpenSlot::Migrating {
        slot: 5,
        target: id(1),
    }];
    let obs = running_with(&nodes, "old", &[]);
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Ready, &obs);
    assert!(
        !d.effects
            .iter()
            .any(|e| matches!(e, Effect::ReplaceNode { .. } | Effect::Failover { .. })),
        "{:?}",
        d.effects
    );
}

#[test]
fn a_member_whose_fingerprint_is_unknown_is_never_replaced() {
    let mut obs = running_with(&healthy(3, 1), "old", &[]);
    for m in obs.members.values_mut() {
        m.fingerprint = None;
    }
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Ready, &obs);
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    assert_eq!(d.phase, Phase::Ready);
}

#[test]
fn no_member_is_replaced_when_no_fingerprint_is_desired() {
    let obs = running_with(&healthy(3, 1), "old", &[]);
    let d = decide_checked(&Desired::new(3, 1), Phase::Ready, &obs);
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    assert!(is_ready(&d));
}

#[test]
fn without_persistence_a_master_without_replica_is_never_replaced_and_the_summary_says_why() {
    let obs = running_with(&healthy(3, 0), "old", &[]);
    let d = decide_checked(&wanting(3, 0, "new"), Phase::Ready, &obs);
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    assert_eq!(d.phase, Phase::Ready);
    assert!(is_ready(&d));
    assert!(
        d.summary
            .contains("no replica and no persistence; add a replica or enable persistence"),
        "{}",
        d.summary
    );
}

/// Every answering node reports `appendonly` as given.
fn appendonly(obs: &mut Observation, value: &str) {
    for s in obs.members.values_mut().filter_map(|m| m.redis.as_mut()) {
        s.config.insert("appendonly".into(), value.into());
    }
}

#[test]
fn with_persistence_a_master_without_replica_is_replaced_in_place() {
    let mut obs = running_with(&healthy(3, 0), "old", &[]);
    appendonly(&mut obs, "yes");
    let mut want = wanting(3, 0, "new");
    want.persistent = true;
    let d = decide_checked(&want, Phase::Ready, &obs);
    assert_effects(&d, &[Effect::ReplaceNode { ordinal: 0 }]);
}

#[test]
fn a_master_without_replica_whose_node_does_not_persist_yet_is_not_replaced_even_when_persistence_is_wanted()
 {
    // Redis started with `appendonly yes` over a directory without an append-only file
    // starts empty: turning persistence on by a restart would empty the shard.
    let mut obs = running_with(&healthy(3, 0), "old", &[]);
    appendonly(&mut obs, "no");
    let mut want = wanting(3, 0, "new");
    want.persistent = true;
    let d = decide_checked(&want, Phase::Ready, &obs);
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    assert!(
        d.summary
            .contains("no replica and a node not persisting yet"),
        "{}",
        d.summary
    );
    let mut unsafe_decision = d.clone();
    unsafe_decision.effects = vec![Effect::ReplaceNode { ordinal: 0 }];
    assert_eq!(check_decision(&want, &obs, &unsafe_decision).len(), 1);
}

#[test]
fn once_every_member_runs_the_desired_configuration_the_cluster_is_ready_again() {
    let obs = running_with(&healthy(3, 1), "old", &[0, 1, 2, 3, 4, 5]);
    let d = decide_checked(&wanting(3, 1, "new"), Phase::Rolling, &obs);
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    assert_eq!(d.phase, Phase::Ready);
    assert!(is_ready(&d));
}

#[test]
fn replacing_a_master_that_owns_slots_without_persistence_is_flagged_unsafe() {
    let obs = running_with(&healthy(3, 1), "old", &[]);
    let want = wanting(3, 1, "new");
    let mut d = decide(&want, Phase::Ready, &obs);
    d.effects = vec![Effect::ReplaceNode { ordinal: 0 }];
    assert_eq!(check_decision(&want, &obs, &d).len(), 1);
}
