//! A cluster rebuilt from an observation (the start of a what-if) is the cluster the
//! observation shows, and the engine can carry it on to a changed shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::{Desired, Effect, Observation, Phase};
use redis_operator_sim::Cluster;
use redis_operator_sim::whatif::{Outcome, continue_from};

/// What a reader of an observation compares: per member, running, role, own slots, epoch,
/// master, keys and open slots.
fn shape(obs: &Observation) -> Vec<String> {
    obs.members
        .iter()
        .map(|(o, m)| match &m.redis {
            None => format!("#{o} running={} silent", m.running),
            Some(s) => {
                let me = s.myself().unwrap();
                format!(
                    "#{o} id={} master={:?} epoch={} slots={:?} open={:?} keys={} open_keys={:?}",
                    s.id,
                    me.master_id,
                    me.config_epoch,
                    me.slots,
                    me.open_slots,
                    s.keys,
                    s.open_slot_keys
                )
            }
        })
        .collect()
}

#[test]
fn a_cluster_restored_from_an_observation_shows_the_same_members_roles_slots_and_keys() {
    let mut c = cluster(3, 1);
    let mut client = redis_operator_sim::client::Client::default();
    write_keys(&mut c, &mut client, 40);
    ticks(&mut c, 2);
    let before = c.observe();
    let mut restored = Cluster::from_observation(&before, &Desired::new(3, 1), 7);
    let after = restored.observe();
    assert_eq!(shape(&after), shape(&before));
    let desired = Desired::new(3, 1);
    assert!(engine::invariants::check_converged(&desired, &after).is_empty());
}

#[test]
fn a_stopped_member_is_restored_stopped_with_the_id_the_others_list() {
    let mut c = cluster(3, 1);
    c.kill(0);
    ticks(&mut c, 1);
    let before = c.observe();
    let old_id = id(&c, 0);
    let mut restored = Cluster::from_observation(&before, &Desired::new(3, 1), 7);
    assert_eq!(id(&restored, 0), old_id);
    let after = restored.observe();
    assert!(!after.members[&0].running);
    // Started again, it comes back as the node the others know, with its slots.
    apply(&mut restored, Effect::CreateNode { ordinal: 0 }).unwrap();
    ticks(&mut restored, 2);
    let back = restored.observe();
    assert_eq!(myself(&back, 0).id, old_id);
    let listed = before.members[&1]
        .redis
        .as_ref()
        .unwrap()
        .view_of(&old_id)
        .unwrap()
        .slots
        .clone();
    assert!(!listed.is_empty());
    assert_eq!(
        myself(&back, 0).slots,
        listed,
        "its slot table came from the others"
    );
}

#[test]
fn the_engine_carries_a_restored_cluster_on_to_a_changed_shape() {
    let mut c = cluster(3, 1);
    let mut client = redis_operator_sim::client::Client::default();
    write_keys(&mut c, &mut client, 30);
    let start = c.observe();
    let wanted = Desired::new(4, 1);
    let run = continue_from(&start, &wanted, Phase::Ready, 120, 1000);
    assert!(
        matches!(run.outcome, Outcome::Converged { .. }),
        "{} after {} records",
        run.outcome,
        run.records.len()
    );
    let last = &run.records.last().unwrap().observation;
    assert!(engine::invariants::check_converged(&wanted, last).is_empty());
    let masters = last
        .members
        .values()
        .filter(|m| {
            m.redis
                .as_ref()
                .and_then(|s| s.myself())
                .is_some_and(|me| me.is_master())
        })
        .count();
    assert_eq!(masters, 4);
    let keys: u64 = last
        .members
        .values()
        .filter_map(|m| m.redis.as_ref())
        .filter(|s| s.myself().is_some_and(|me| me.is_master()))
        .map(|s| s.keys)
        .sum();
    assert_eq!(keys, 30, "the restored keys all end up on the masters");
}
