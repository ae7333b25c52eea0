//! An API server that misbehaves while a cluster is created: writes answered 409 Conflict and
//! 500 InternalError, watches cut and their history compacted (410 Gone on resume), and the
//! API down (503) for a while. The operator retries through all of it, never exits, and the
//! cluster ends ready and healthy. (An API server that is not there at all when the operator
//! starts is `kube_lifecycle::without_a_reachable_api_server_the_operator_exits_non_zero_with_one_line`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use sandboxed::{Env, cluster_check, eventually};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_answering_409_410_500_or_going_away_delays_the_cluster_but_never_stops_the_operator()
 {
    let env = Env::start("api-errors", 3).await;
    let Some(sandbox) = env.sandbox_for("injecting API errors") else {
        return;
    };
    env.apply(
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: flaky\n  namespace: faults\nspec:\n  masters: 3\n  replicas: 0\n  basePort: 16500\n",
    )
    .await;
    let faults = sandbox.faults();
    // The operator's first pod creations and status writes fail.
    faults.inject_errors("pods", 2);
    faults.inject_conflicts("pods", 2);
    faults.inject_errors("redisclusters", 2);
    faults.inject_conflicts("redisclusters", 2);
    let mut operator = env.operator(&["--no-leader-election"]);
    eventually(60, "a pod of the cluster exists", || async {
        (!env.pods("faults", "flaky").await.is_empty()).then_some(())
    })
    .await;
    // Mid-creation: every watch is cut with its history gone, then the API goes away.
    faults.compact();
    faults.cut_watches();
    faults.api_down_for(Duration::from_secs(3));
    let addrs = env.wait_shape("faults", "flaky", 3, 3, 180).await;
    assert!(operator.exited().is_none(), "the operator exited");
    cluster_check(&addrs[0]).expect("a healthy cluster");
    let log = operator.log_text();
    assert!(
        log.contains("injected error") || log.contains("InternalError"),
        "the 500s were seen and retried:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
