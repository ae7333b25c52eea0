//! The replication gate on real servers: a new process at a master's address refuses the
//! master's replica until its gate is opened, and a replica let in copies whatever runs
//! there — which is why the engine opens it only when nothing would be lost.

mod common;

use common::*;
use engine::{Effect, SlotRange};
use redis_operator_redis::{ExecContext, MemberInfo};
use std::time::Duration;

const MASTER: u16 = 12400;
const REPLICA: u16 = 12401;

async fn keys(adapter: &redis_operator_redis::RedisAdapter, node: &Node) -> u64 {
    adapter
        .observe_node(&node.addr())
        .await
        .map(|s| s.keys)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_at_a_dead_masters_address_cannot_empty_its_replica_until_its_gate_opens() {
    let mut master = Node::spawn_gated(MASTER, Some(PASSWORD));
    let master_addr = master.addr();
    let replica = Node::spawn_gated(REPLICA, Some(PASSWORD));
    let adapter = test_adapter(Some(PASSWORD));
    let members = || {
        vec![
            MemberInfo::new(0, Some(master_addr.clone()), true),
            MemberInfo::new(1, Some(replica.addr()), true),
        ]
    };
    for n in [&master, &replica] {
        let a = n.addr();
        eventually(100, "the server answers", || {
            let (adapter, a) = (adapter.clone(), a.clone());
            async move { adapter.observe_node(&a).await.is_ok() }
        })
        .await;
        // A process starts with its gate shut.
        let state = adapter.observe_node(&a).await.expect("observed");
        assert!(!state.serves_replicas, "{a} starts with its gate open");
    }
    let ctx = ExecContext::from_observation(&adapter.observe(members(), 0).await);
    let run = |e: Effect| {
        let (adapter, ctx) = (adapter.clone(), ctx.clone());
        async move { adapter.execute(&e, &ctx).await.expect("effect") }
    };
    run(Effect::AddSlots {
        on: 0,
        slots: vec![SlotRange::new(0, 16383)],
    })
    .await;
    run(Effect::Meet {
        on: 1,
        ip: "127.0.0.1".into(),
        port: MASTER,
    })
    .await;
    eventually(200, "the master serves every slot", || async {
        adapter
            .observe_node(&master.addr())
            .await
            .is_ok_and(|s| s.cluster_ok)
    })
    .await;
    let mut client = redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{MASTER}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("client");
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(i)
            .query_async(&mut client)
            .await
            .expect("SET");
    }
    run(Effect::AllowReplicas { on: 0 }).await;
    assert!(
        adapter
            .observe_node(&master.addr())
            .await
            .expect("observed")
            .serves_replicas
    );
    let master_id = adapter
        .observe_node(&master.addr())
        .await
        .expect("observed")
        .id;
    eventually(100, "the replica accepts its master", || {
        let (adapter, ctx, id) = (adapter.clone(), ctx.clone(), master_id.clone());
        async move {
            let e = Effect::Replicate {
                on: 1,
                master_id: id,
            };
            adapter.execute(&e, &ctx).await.is_ok()
        }
    })
    .await;
    eventually(200, "the replica holds every key", || async {
        keys(&adapter, &replica).await == 200
    })
    .await;
    let seen = adapter.observe_node(&replica.addr()).await.expect("state");
    assert_eq!(seen.replicates_from, Some(master.addr()));

    // The master dies and a new, empty process starts at once at its address (a kubelet
    // restarting a container whose nodes.conf went with it).
    master.kill();
    let fresh = Node::spawn_gated(MASTER, Some(PASSWORD));
    eventually(100, "the new process answers", || async {
        adapter.observe_node(&fresh.addr()).await.is_ok()
    })
    .await;
    // The replica retries every second and is refused: it keeps the shard's keys, and the
    // engine sees who would lose them if the new process were let serve.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(keys(&adapter, &replica).await, 200);
    let obs = adapter.observe(members(), 0).await;
    let risk = engine::replication_gate::at_risk(&obs, 0).expect("the replica is at risk");
    assert_eq!((risk.replica, risk.replica_keys), (1, 200));

    // What the gate prevents: let in, the replica copies the empty process.
    adapter.open_gate(&fresh.addr()).await.expect("gate opens");
    eventually(200, "the replica copied the empty process", || async {
        keys(&adapter, &replica).await == 0
    })
    .await;
}
