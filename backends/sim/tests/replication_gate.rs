//! Replication by address, as Redis does it: a master restarted at once at its address (a
//! kubelet restarting its container) must not hand its empty dataset to its replica. The
//! engine keeps the new process's replication gate shut until nothing would be lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::{Desired, Effect};
use redis_operator_sim::StepBudget;
use redis_operator_sim::scenario::Stepper;

fn ready_cluster() -> Stepper {
    let mut desired = Desired::new(3, 1);
    desired.node_timeout_ms = 3000;
    let mut s = Stepper::new(7, desired);
    s.cluster.replicate_by_address = true;
    assert!(s.until_ready(60), "the cluster bootstraps");
    for _ in 0..200 {
        assert!(s.client.write(&mut s.cluster));
    }
    // A few passes so every replica holds every key.
    for _ in 0..3 {
        s.step();
    }
    s
}

/// Kills master #0 and starts it again at once at the same address: as a new node (the pod
/// script removes a non-persistent node's `nodes.conf`) or under its old identity.
fn restart_master_at_once(s: &mut Stepper, new_identity: bool) {
    s.cluster.kill(0);
    if new_identity {
        s.cluster.members.get_mut(&0).unwrap().has_nodes_conf = false;
    }
    s.cluster.restart(0);
}

fn replica_keys(s: &Stepper) -> usize {
    s.cluster.members[&3]
        .node
        .keys
        .values()
        .map(|k| k.len())
        .sum()
}

#[test]
fn a_master_restarted_at_once_as_a_new_node_loses_no_key_to_its_replica() {
    let mut s = ready_cluster();
    let before = replica_keys(&s);
    assert!(before > 0);
    restart_master_at_once(&mut s, true);
    assert!(s.until_ready(120), "the cluster heals");
    assert_eq!(s.client.missing(&mut s.cluster), Vec::new());
}

#[test]
fn a_master_restarted_at_once_under_its_old_identity_hands_its_slots_to_its_replica() {
    let mut s = ready_cluster();
    restart_master_at_once(&mut s, false);
    assert!(s.until_ready(120), "the cluster heals");
    assert_eq!(s.client.missing(&mut s.cluster), Vec::new());
    assert!(
        s.cluster.members[&3].node.is_master(),
        "the replica that kept the keys serves them"
    );
}

#[test]
fn a_replica_let_in_copies_whatever_runs_at_its_masters_address() {
    let mut s = ready_cluster();
    let before = replica_keys(&s);
    restart_master_at_once(&mut s, true);
    for _ in 0..3 {
        s.cluster.tick(1000);
    }
    assert_eq!(
        replica_keys(&s),
        before,
        "the shut gate keeps the replica's keys"
    );
    s.cluster
        .apply(
            &Effect::AllowReplicas { on: 0 },
            &mut StepBudget::unlimited(),
        )
        .unwrap();
    s.cluster.tick(1000);
    assert_eq!(
        replica_keys(&s),
        0,
        "opened, the replica copies the empty process"
    );
}
