//! Steady observations on real servers: a calm cluster's views are reused and the engine
//! decides on them exactly as on every view read now; a killed node and a slot moved behind
//! the operator's back are seen by the first steady observation after them, with every view
//! read again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cluster, eventually, members};
use engine::{Desired, Observation, Phase};
use redis_operator_redis::{Views, ViewsRead};

const MASTERS: usize = 4;
const NODES: usize = 2 * MASTERS;

/// Each test's own eight ports from `base` (tests run in parallel).
fn ports(base: u16) -> Vec<u16> {
    (base..base + NODES as u16).collect()
}

async fn steady(c: &Cluster) -> (Observation, ViewsRead) {
    c.adapter
        .observe_views(members(&c.nodes), 0, Views::Steady)
        .await
}

/// A cluster of 4 masters × 1 whose steady observations reuse views.
async fn calm_cluster(base: u16) -> Cluster {
    let c = Cluster::start(&ports(base), MASTERS, None).await;
    for master in 0..MASTERS {
        c.wait_replica_online(master).await;
    }
    eventually(600, "a steady observation reuses views", || async {
        steady(&c).await.1.reused > 0
    })
    .await;
    c
}

/// Every view with ping and pong times cleared, by ordinal.
fn views(obs: &Observation) -> Vec<(u32, Vec<engine::ClusterNode>)> {
    obs.members
        .iter()
        .map(|(o, m)| {
            let mut nodes = m.redis.as_ref().expect("answered").nodes.to_vec();
            for n in &mut nodes {
                n.ping_sent_ms = 0;
                n.pong_recv_ms = 0;
            }
            (*o, nodes)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_decides_the_same_on_reused_views_as_on_views_read_now() {
    let c = calm_cluster(22000).await;
    let (reused, read) = steady(&c).await;
    let full = c.observe().await;
    assert!(read.reused > 0 && read.all_because.is_none(), "{read:?}");
    assert!(
        read.read >= 3,
        "the oldest views are read every pass: {read:?}"
    );
    assert_eq!(views(&reused), views(&full));
    for desired in [
        Desired::new(MASTERS as u32, 1),
        Desired::new(MASTERS as u32 + 1, 1),
        Desired::new(MASTERS as u32 - 1, 1),
    ] {
        for hint in [Phase::Ready, Phase::Pending] {
            assert_eq!(
                engine::decide(&desired, hint, &reused),
                engine::decide(&desired, hint, &full),
                "{} masters, hint {hint:?}",
                desired.masters
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_seen_by_the_next_steady_observation_with_every_view_read() {
    let mut c = calm_cluster(22010).await;
    c.nodes[MASTERS + 1].kill();
    let (obs, read) = steady(&c).await;
    assert!(obs.members[&(MASTERS as u32 + 1)].redis.is_none());
    assert_eq!(read.reused, 0, "{read:?}");
    assert_eq!(read.read, NODES - 1);
    assert!(read.all_because.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_behind_the_operators_back_is_seen_by_the_next_steady_observation() {
    let c = calm_cluster(22020).await;
    let slot = c.first_slot_of(0).await;
    let new_owner = c.ids[1].clone();
    // As `redis-cli --cluster fix` assigns a slot: SETSLOT NODE on every master. No epoch
    // moves (the slot was not importing), so no summary shows it.
    for m in 0..MASTERS {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&new_owner)
            .query_async(&mut c.client(m, None).await)
            .await
            .unwrap();
    }
    // Once every node says so (read past the adapter, which remembers nothing of it) ...
    eventually(200, "every node sees the new owner", || async {
        let mut all = true;
        for i in 0..NODES {
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut c.client(i, None).await)
                .await
                .unwrap();
            let views = engine::parse::parse_cluster_nodes(&text).unwrap();
            all &= views.iter().any(|n| {
                n.id == new_owner && n.slots.iter().any(|r| r.start <= slot && slot <= r.end)
            });
        }
        all
    })
    .await;
    // ... the first steady observation shows it in every view.
    let (obs, read) = steady(&c).await;
    assert_eq!(read.reused, 0, "{read:?}");
    for (ordinal, m) in &obs.members {
        let owner = m
            .redis
            .as_ref()
            .unwrap()
            .nodes
            .iter()
            .find(|n| n.slots.iter().any(|r| r.start <= slot && slot <= r.end))
            .map(|n| n.id.clone());
        assert_eq!(owner.as_ref(), Some(&new_owner), "member {ordinal}");
    }
}
