//! The replication gate: a new process is let serve replicas only when none of them would
//! copy fewer keys than it holds (engine::replication_gate).

mod fixture;

use fixture::*;
use redis_operator_engine::model::Addr;
use redis_operator_engine::*;

fn desired(m: u32, r: u32) -> Desired {
    Desired::new(m, r)
}

fn gate(obs: &mut Observation, ord: u32, open: bool) {
    if let Some(s) = obs.members.get_mut(&ord).and_then(|m| m.redis.as_mut()) {
        s.serves_replicas = open;
    }
}

fn allow(d: &Decision) -> Vec<u32> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::AllowReplicas { on } => Some(*on),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restarted_replica_is_let_serve_replicas_in_the_same_pass_as_any_other_work() {
    let nodes = healthy(3, 1);
    let mut obs = observe(&nodes, false, 10_000);
    gate(&mut obs, 4, false);
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert_eq!(allow(&d), vec![4], "{}", d.summary);
    assert_eq!(d.effects.first(), Some(&Effect::AllowReplicas { on: 4 }));
}

/// The kube-sandbox case: master #0's node lost power and came back at once; the kubelet
/// started #0 as a new, empty node at the same address, while its replica #3 (holding all
/// of #0's keys) still follows that address and Redis has not promoted it yet.
#[test]
fn a_new_process_at_a_dead_masters_address_stays_shut_while_its_replica_holds_the_keys() {
    let mut nodes = healthy(3, 1);
    // The old master's id is still in every view; member #0 now runs a new id, alone.
    let mut fresh = Node::new(0);
    fresh.id = id(90);
    fresh.keys = 0;
    nodes[0].running = false;
    let mut obs = observe(&nodes, false, 10_000);
    let alone = observe(&[fresh], true, 10_000);
    obs.members.insert(0, alone.members[&0].clone());
    gate(&mut obs, 0, false);
    if let Some(r) = obs.members.get_mut(&3).and_then(|m| m.redis.as_mut()) {
        r.master_link_up = false;
        r.replicates_from = Some(addr(0));
    }
    assert_eq!(
        replication_gate::at_risk(&obs, 0).map(|r| r.replica),
        Some(3)
    );
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert!(!allow(&d).contains(&0), "{:?}", d.effects);
    // Once the replica has taken over (it is a master now), nobody follows #0: it opens.
    if let Some(r) = obs.members.get_mut(&3).and_then(|m| m.redis.as_mut()) {
        for e in r.nodes.entries_mut().iter_mut().filter(|e| e.flags.myself) {
            e.master_id = None;
            e.flags.replica = false;
            e.flags.master = true;
        }
        r.replicates_from = None;
    }
    assert_eq!(replication_gate::at_risk(&obs, 0), None);
}

#[test]
fn a_replica_that_follows_another_address_does_not_hold_a_gate_shut() {
    let nodes = healthy(3, 1);
    let mut obs = observe(&nodes, false, 10_000);
    gate(&mut obs, 1, false);
    if let Some(r) = obs.members.get_mut(&3).and_then(|m| m.redis.as_mut()) {
        r.master_link_up = false;
        r.replicates_from = Some(Addr::new("127.0.0.1", 1));
    }
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert_eq!(allow(&d), vec![1], "{}", d.summary);
}

/// A master restarted with its `nodes.conf` (same id, its slots) but without its data: its
/// replica keeps the keys behind the shut gate and is forced over.
#[test]
fn a_master_back_with_its_old_identity_and_fewer_keys_hands_its_slots_to_its_replica() {
    let mut nodes = healthy(3, 1);
    nodes[0].keys = 2;
    let mut obs = observe(&nodes, false, 10_000);
    gate(&mut obs, 0, false);
    if let Some(r) = obs.members.get_mut(&3).and_then(|m| m.redis.as_mut()) {
        r.master_link_up = false;
        r.replicates_from = Some(addr(0));
    }
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert!(
        d.effects.contains(&Effect::Failover {
            on: 3,
            mode: FailoverMode::Force
        }),
        "{:?}",
        d.effects
    );
    assert!(!allow(&d).contains(&0));
}

/// A master elected while the old one was away still shares slots with it: should Redis
/// settle the claims for the old one, the new one would follow and copy it.
#[test]
fn a_returning_master_stays_shut_while_a_master_with_more_keys_claims_its_slots() {
    let nodes = healthy(3, 1);
    let mut obs = observe(&nodes, false, 10_000);
    gate(&mut obs, 0, false);
    if let Some(s) = obs.members.get_mut(&0).and_then(|m| m.redis.as_mut()) {
        s.keys = 0;
    }
    // #3, once #0's replica, was elected and claims #0's slots on its own line.
    if let Some(r) = obs.members.get_mut(&3).and_then(|m| m.redis.as_mut()) {
        for e in r.nodes.entries_mut().iter_mut().filter(|e| e.flags.myself) {
            e.master_id = None;
            e.flags.replica = false;
            e.flags.master = true;
            e.slots = nodes[0].slots.clone();
        }
    }
    assert_eq!(
        replication_gate::at_risk(&obs, 0).map(|r| r.replica),
        Some(3)
    );
}
