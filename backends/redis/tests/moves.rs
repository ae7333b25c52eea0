//! Moving slots between masters, against real redis-server processes: several (source,
//! target) pairs at once, every master ending up agreeing on every new owner however many
//! pairs share a node, and a move that outlasts a source refusing writes for a moment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::Effect;
use redis_operator_redis::{AdapterConfig, RedisAdapter};
use std::time::Duration;

const FIVE_THOUSAND: usize = 5000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_slots_moves_thousands_of_keys_and_every_master_agrees_on_the_new_owner() {
    let c = Cluster::start(&[12010, 12011, 12012], 3, None).await;
    // Slots 0..8 live on #0; 10923..10927 on #2.
    let a_slots: Vec<u16> = (0..8).collect();
    let b_slots: Vec<u16> = (10923..10927).collect();
    let mut a_keys = Vec::new();
    for s in &a_slots {
        a_keys.extend(keys_in_slot(*s, FIVE_THOUSAND / a_slots.len()));
    }
    let b_keys: Vec<String> = b_slots.iter().flat_map(|s| keys_in_slot(*s, 300)).collect();
    fill(&mut c.client(0, None).await, &a_keys).await;
    fill(&mut c.client(2, None).await, &b_keys).await;

    let ctx = c.ctx().await;
    let effects = vec![
        c.migrate_effect(0, 1, &a_slots),
        c.migrate_effect(2, 0, &b_slots),
    ];
    c.adapter
        .execute_parallel_migrations(&effects, &ctx)
        .await
        .expect("migrations succeed");

    let mut to1 = c.client(1, None).await;
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&a_keys[..10])
        .query_async(&mut to1)
        .await
        .unwrap();
    assert!(values.iter().all(Option::is_some));
    for k in &a_keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut to1)
            .await
            .unwrap();
        assert_eq!(v, Some(format!("v-{k}")), "key {k} on the new owner");
    }
    let mut to0 = c.client(0, None).await;
    for k in &b_keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut to0)
            .await
            .unwrap();
        assert_eq!(v, Some(format!("v-{k}")));
    }
    for s in &a_slots {
        assert!(
            c.owners_of(*s)
                .await
                .iter()
                .all(|o| o.as_deref() == Some(c.ids[1].as_str())),
            "slot {s}"
        );
    }
    for s in &b_slots {
        assert!(
            c.owners_of(*s)
                .await
                .iter()
                .all(|o| o.as_deref() == Some(c.ids[0].as_str())),
            "slot {s}"
        );
    }
    let obs = c.observe().await;
    assert!(obs.members.values().all(|m| {
        m.redis
            .as_ref()
            .unwrap()
            .myself()
            .unwrap()
            .open_slots
            .is_empty()
    }));
    let progress = c.adapter.progress().snapshot();
    assert_eq!(progress.slots_done, 12);
    assert_eq!(progress.keys_moved, (a_keys.len() + b_keys.len()) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_sharing_a_node_take_turns_and_every_master_learns_every_new_owner() {
    let c = Cluster::start(&[12230, 12231, 12232, 12233], 4, None).await;
    // One pair per node at a time: the three moves into #3 and the one out of it must queue
    // behind each other without deadlock, and the masters outside each pair learn the owner
    // from the shared announcer, not from the move.
    let adapter = RedisAdapter::new(AdapterConfig {
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(3),
        migrate_batch: 100,
        pairs_per_node: 1,
        ..AdapterConfig::default()
    });
    let mut moves = Vec::new();
    let mut keys = Vec::new();
    for (from, to) in [(0u32, 3u32), (1, 3), (2, 3), (3, 0)] {
        let first = c.first_slot_of(from).await;
        let slots: Vec<u16> = (first..first + 3).collect();
        for s in &slots {
            let k = keys_in_slot(*s, 200);
            fill(&mut c.client(from as usize, None).await, &k).await;
            keys.push((to, k));
        }
        moves.push((from, to, slots));
    }
    let effects: Vec<Effect> = moves
        .iter()
        .map(|(from, to, slots)| c.migrate_effect(*from, *to, slots))
        .collect();
    adapter
        .execute_parallel_migrations(&effects, &c.ctx().await)
        .await
        .expect("migrations succeed");

    for (from, to, slots) in &moves {
        for s in slots {
            let owners = c.owners_of(*s).await;
            let by_member: Vec<Option<usize>> = owners
                .iter()
                .map(|o| o.as_ref().and_then(|id| c.ids.iter().position(|x| x == id)))
                .collect();
            assert!(
                by_member.iter().all(|o| *o == Some(*to as usize)),
                "slot {s} moved {from} -> {to}: the masters name {by_member:?} as its owner"
            );
        }
    }
    for (to, ks) in &keys {
        let mut conn = c.client(*to as usize, None).await;
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(ks)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ks.iter()
                .zip(&values)
                .all(|(k, v)| v.as_deref() == Some(format!("v-{k}").as_str())),
            "a key is missing or wrong on member {to}"
        );
    }
    assert_eq!(adapter.progress().snapshot().slots_done, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_waits_while_its_source_sees_the_cluster_down_and_finishes_when_it_recovers() {
    let c = Cluster::start(&[12240, 12241, 12242], 3, None).await;
    let slots: Vec<u16> = (0..4).collect();
    let keys: Vec<String> = slots.iter().flat_map(|s| keys_in_slot(*s, 100)).collect();
    fill(&mut c.client(0, None).await, &keys).await;
    let ctx = c.ctx().await;

    // A master outside the move stops answering: once the others mark it failed, the source
    // counts slots without a live owner and refuses every write, `MIGRATE` included, with
    // CLUSTERDOWN; nothing about the move itself is wrong.
    c.nodes[2].freeze();
    let source = c.client(0, None).await;
    eventually(200, "the source reports cluster_state:fail", || {
        let mut source = source.clone();
        async move {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut source)
                .await
                .unwrap();
            info.contains("cluster_state:fail")
        }
    })
    .await;
    let adapter = c.adapter.clone();
    let effect = c.migrate_effect(0, 1, &slots);
    let moving = tokio::spawn(async move { adapter.execute(&effect, &ctx).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.nodes[2].thaw();

    moving
        .await
        .unwrap()
        .expect("the move waits for the source instead of leaving its slots open");
    let mut target = c.client(1, None).await;
    for k in &keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut target)
            .await
            .unwrap();
        assert_eq!(v, Some(format!("v-{k}")), "key {k} on the new owner");
    }
    let obs = c.observe().await;
    assert!(
        obs.members.values().all(|m| m
            .redis
            .as_ref()
            .and_then(|s| s.myself())
            .is_some_and(|me| me.open_slots.is_empty())),
        "no slot is left open"
    );
}
