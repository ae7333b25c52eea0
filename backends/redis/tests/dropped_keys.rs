//! A master that dropped the keys of a slot its replica kept, on real servers: Redis 7.0 deletes
//! the keys of a slot a master loses to another node's claim on the master alone (its
//! `delKeysInSlot` sends no deletion to the replicas), and the master, claiming the slot no
//! more while every other view still routes it there, refuses every command (chaos soak,
//! seed 11). The test builds that state directly: the keys are deleted on the master by a
//! script that does not replicate its effects, and the master gives up the slot with
//! `CLUSTER DELSLOTS`. Ports 12270-12275.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::{Desired, Effect, Phase};
use redis_operator_redis::ExecContext;

/// Deletes `keys` on node `on` without sending the deletions to its replicas.
async fn delete_on_the_master_alone(c: &Cluster, on: usize, keys: &[String]) {
    let script = "redis.set_repl(redis.REPL_NONE) \
                  for _, k in ipairs(KEYS) do redis.call('DEL', k) end return 0";
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(k);
    }
    let _: i64 = cmd
        .query_async(&mut c.client(on, None).await)
        .await
        .unwrap();
}

async fn keys_held(c: &Cluster, on: usize, slot: u16) -> u64 {
    c.count_in_slot(on, slot).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_a_master_dropped_come_back_from_its_replica_with_their_expiry() {
    // Three masters, each with a replica; #3 replicates #0.
    let c = Cluster::start(&[12270, 12271, 12272, 12273, 12274, 12275], 3, None).await;
    let slot = c.first_slot_of(0).await;
    let keys = keys_in_slot(slot, 40);
    fill(&mut c.client(0, None).await, &keys).await;
    let _: bool = redis::cmd("PEXPIRE")
        .arg(&keys[0])
        .arg(600_000)
        .query_async(&mut c.client(0, None).await)
        .await
        .unwrap();
    eventually(400, "the replica holds every key", || async {
        keys_held(&c, 3, slot).await == 40
    })
    .await;

    delete_on_the_master_alone(&c, 0, &keys).await;
    let mut delslots = redis::cmd("CLUSTER");
    delslots.arg("DELSLOTS").arg(slot);
    let () = delslots
        .query_async(&mut c.client(0, None).await)
        .await
        .unwrap();
    eventually(
        200,
        "#0 claims the slot no more and refuses commands",
        || async {
            let owners = c.owners_of(slot).await;
            let obs = c.observe().await;
            owners[0].is_none()
                && owners[1..]
                    .iter()
                    .all(|o| o.as_deref() == Some(c.ids[0].as_str()))
                && !obs.members[&0].redis.as_ref().unwrap().cluster_ok
        },
    )
    .await;
    assert_eq!(keys_held(&c, 0, slot).await, 0);
    assert_eq!(keys_held(&c, 3, slot).await, 40);

    let obs = c.observe().await;
    let restore = Effect::RestoreDroppedKeys {
        from: 3,
        to: 0,
        to_id: c.ids[0].clone(),
        slot,
    };
    let decision = engine::decide(&Desired::new(3, 1), Phase::Ready, &obs);
    assert!(
        decision.effects.contains(&restore),
        "{}: {:?}",
        decision.summary,
        decision.effects
    );
    let ctx = ExecContext::from_observation(&obs);
    c.adapter.execute(&restore, &ctx).await.expect("restored");

    c.wait_ok().await;
    c.assert_serves(0, &keys).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut c.client(0, None).await)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "the expiry came back too: {ttl}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[1])
        .query_async(&mut c.client(0, None).await)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "a key without expiry stays without");
    assert_eq!(keys_held(&c, 3, slot).await, 40);

    // Run again (an operator restarted mid-way decides it again): every key is there, so
    // nothing is replaced and nothing fails.
    let mut newer = redis::cmd("SET");
    newer.arg(&keys[2]).arg("newer");
    let () = newer
        .query_async(&mut c.client(0, None).await)
        .await
        .unwrap();
    c.adapter
        .execute(&restore, &c.ctx().await)
        .await
        .expect("a second run is harmless");
    let kept: String = redis::cmd("GET")
        .arg(&keys[2])
        .query_async(&mut c.client(0, None).await)
        .await
        .unwrap();
    assert_eq!(kept, "newer", "a key written since is never replaced");
    let decision = engine::decide(&Desired::new(3, 1), Phase::Ready, &c.observe().await);
    assert!(
        !decision
            .effects
            .iter()
            .any(|e| matches!(e, Effect::RestoreDroppedKeys { .. })),
        "{:?}",
        decision.effects
    );
}
