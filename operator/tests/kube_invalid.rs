//! Bad input on Kubernetes: an invalid RedisCluster gets `Invalid` and a Warning event and no
//! pods; an invalid edit of a running cluster leaves every pod as it was; two clusters on the
//! same host ports: the later one is refused, naming the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use sandboxed::{Env, eventually};
use std::collections::BTreeMap;
use std::time::Duration;

fn manifest(name: &str, ns: &str, body: &str) -> String {
    format!(
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{body}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_cluster_gets_the_invalid_condition_and_a_warning_and_no_pods() {
    let env = Env::start("invalid", 3).await;
    let _operator = env.operator(&["--no-leader-election"]);
    env.apply(&manifest("two", "bad", "  masters: 2\n  basePort: 11000\n"))
        .await;
    let rc = env
        .wait_condition("bad", "two", "Invalid", "True", 60)
        .await;
    let status = rc.status.expect("status");
    let invalid = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Invalid")
        .expect("condition");
    assert!(invalid.message.contains("spec.masters"), "{invalid:?}");
    let events = eventually(20, "a warning event", || async {
        let ev = env.events("bad", "two").await;
        ev.iter().any(|e| e.0 == "Warning").then_some(ev)
    })
    .await;
    assert!(
        events.iter().any(|e| e.2.contains("spec.masters")),
        "{events:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        env.pods("bad", "two").await.is_empty(),
        "no pod for an invalid cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_of_a_running_cluster_changes_no_pod_and_a_port_clash_is_refused() {
    let env = Env::start("invalid-edit", 3).await;
    let _operator = env.operator(&["--no-leader-election"]);
    let valid = manifest(
        "edit",
        "edits",
        "  masters: 3\n  replicas: 0\n  basePort: 12000\n",
    );
    env.apply(&valid).await;
    env.wait_condition("edits", "edit", "Ready", "True", 120)
        .await;
    let before = pod_uids(&env).await;
    assert_eq!(before.len(), 3);

    env.apply(&manifest(
        "edit",
        "edits",
        "  masters: 2\n  replicas: 0\n  basePort: 12000\n",
    ))
    .await;
    let rc = env
        .wait_condition("edits", "edit", "Invalid", "True", 60)
        .await;
    // The nodes still run the last valid spec and are listed as before.
    assert_eq!(rc.status.expect("status").nodes.len(), 3);

    // A second cluster whose ports fall on the first one's host ports is refused.
    env.apply(&manifest(
        "clash",
        "edits",
        "  masters: 3\n  replicas: 0\n  basePort: 12001\n",
    ))
    .await;
    let rc = env
        .wait_condition("edits", "clash", "Invalid", "True", 60)
        .await;
    let msg = rc
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Invalid")
        .expect("invalid")
        .message;
    assert!(msg.contains("edits/edit") && msg.contains("12001"), "{msg}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(env.pods("edits", "clash").await.is_empty());
    let after = pod_uids(&env).await;
    assert_eq!(before, after, "no pod of the running cluster was touched");
}

/// The running cluster's pods, name → uid: a pod replaced gets a new uid.
async fn pod_uids(env: &Env) -> BTreeMap<String, String> {
    env.pods("edits", "edit")
        .await
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap(),
                p.metadata.uid.clone().unwrap(),
            )
        })
        .collect()
}
