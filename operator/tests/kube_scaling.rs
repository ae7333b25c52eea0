//! Scaling on Kubernetes with a client writing throughout: masters 3 → 5 → 3, then 3 × 1 →
//! 4 × 2 → 3 × 1 on three hosts, no key and no acknowledged write lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use sandboxed::{Env, Writer, cluster_check, cluster_client, load_keys, missing_keys};
use serde_json::json;

const CLUSTER: &str = "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: grow\n  namespace: scale\nspec:\n  masters: 3\n  replicas: 1\n  basePort: 14000\n  clusterNodeTimeoutMs: 2000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_and_replicas_scale_out_and_in_with_a_writer_running_and_nothing_lost() {
    let env = Env::start("scale", 3).await;
    let _operator = env.operator(&["--no-leader-election"]);
    env.apply(CLUSTER).await;
    let addrs = env.wait_shape("scale", "grow", 3, 6, 180).await;
    let mut client = cluster_client(&addrs);
    load_keys(&mut client, "k", 20_000);
    let writer = Writer::start(&addrs);

    env.patch_spec("scale", "grow", json!({"masters": 5})).await;
    let addrs = env.wait_shape("scale", "grow", 5, 10, 300).await;
    cluster_check(&addrs[0]).expect("clean after scale-out");

    env.patch_spec("scale", "grow", json!({"masters": 3})).await;
    let addrs = env.wait_shape("scale", "grow", 3, 6, 300).await;
    cluster_check(&addrs[0]).expect("clean after scale-in");

    // Masters and replicas at once, on three hosts: a shard's three nodes need all three, so
    // every node's shard label must follow the new layout (`ordinal % masters`); labels kept
    // from 3 masters put four pods in one shard and the last could never be scheduled.
    env.patch_spec("scale", "grow", json!({"masters": 4, "replicas": 2}))
        .await;
    let addrs = env.wait_shape("scale", "grow", 4, 12, 300).await;
    cluster_check(&addrs[0]).expect("clean after 3 x 1 -> 4 x 2");
    env.patch_spec("scale", "grow", json!({"masters": 3, "replicas": 1}))
        .await;
    let addrs_end = env.wait_shape("scale", "grow", 3, 6, 300).await;
    cluster_check(&addrs_end[0]).expect("clean after 4 x 2 -> 3 x 1");
    assert_eq!(
        env.pods("scale", "grow").await.len(),
        6,
        "drained nodes' pods are gone"
    );

    let (acked, lost) = writer.stop_and_lost(&addrs_end);
    assert!(acked > 100, "the writer made progress ({acked})");
    assert!(
        lost.is_empty(),
        "{} of {acked} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let mut client = cluster_client(&addrs);
    assert_eq!(missing_keys(&mut client, "k", 20_000), Vec::<usize>::new());
}
