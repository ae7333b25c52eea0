//! The operator's own life: no API server → a one-line error and a non-zero exit; deleting a
//! cluster removes everything it owned and every process; two operators → one leader, and a
//! killed leader hands over within the lease.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use sandboxed::{Env, eventually};
use std::process::Command;
use std::time::Instant;

#[test]
fn without_a_reachable_api_server_the_operator_exits_non_zero_with_one_line() {
    let dir = std::env::temp_dir().join(format!("rop-noapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = sandboxed::free_port();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        kube_sandbox::kubeconfig_yaml(&format!("http://127.0.0.1:{port}"), None),
    )
    .unwrap();
    let out = Command::new(sandboxed::bin())
        .args([
            "run",
            "--no-leader-election",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("API server"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

const SMALL: &str = "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: small\n  namespace: life\nspec:\n  masters: 3\n  replicas: 0\n  basePort: 13000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_removes_every_object_and_process_it_owned() {
    let env = Env::start("delete", 3).await;
    let _operator = env.operator(&["--no-leader-election"]);
    env.apply(SMALL).await;
    env.wait_condition("life", "small", "Ready", "True", 120)
        .await;
    // Processes can be watched on this machine only: a real cluster's run on its nodes.
    let pids_before = env
        .sandbox_for("checking every process exited")
        .map(|sb| sb.started_pids())
        .unwrap_or_default();
    assert!(env.sandbox.is_none() || !pids_before.is_empty());
    env.clusters("life")
        .delete("small", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually(60, "the cluster and its objects are gone", || async {
        let rc = env.clusters("life").get_opt("small").await.ok()?;
        let sets = Api::<StatefulSet>::namespaced(env.client.clone(), "life")
            .list(&ListParams::default())
            .await
            .ok()?;
        let pods = Api::<Pod>::namespaced(env.client.clone(), "life")
            .list(&ListParams::default())
            .await
            .ok()?;
        (rc.is_none() && sets.items.is_empty() && pods.items.is_empty()).then_some(())
    })
    .await;
    eventually(
        30,
        "every redis-server of the cluster has exited",
        || async {
            pids_before
                .iter()
                .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_operators_only_the_leader_acts_and_a_killed_leader_hands_over_within_the_lease() {
    let env = Env::start("leader", 3).await;
    let args = [
        "--lease-duration-seconds",
        "4",
        "--leader-election-namespace",
        "default",
    ];
    let mut first = env.operator(&[&args[..], &["--identity", "first"]].concat());
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
    let holder = || async {
        leases
            .get_opt("redis-operator-leader")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };
    eventually(30, "the first operator leads", || async {
        (holder().await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let mut second = env.operator(&[&args[..], &["--identity", "second"]].concat());
    env.apply(&SMALL.replace("replicas: 0", "replicas: 1"))
        .await;
    env.wait_condition("life", "small", "Ready", "True", 120)
        .await;
    assert!(
        first.log_text().contains("starting node"),
        "the leader created the nodes"
    );
    assert!(
        !second.log_text().contains("starting node"),
        "the standby acted:\n{}",
        second.log_text()
    );
    // The standby's HTTP API answers too, from its own observation.
    eventually(30, "the standby's API lists the nodes", || async {
        let (code, body) = second.get("/cluster/nodes?clusterName=small")?;
        (code == 200 && body.matches("\"port\"").count() == 6).then_some(())
    })
    .await;

    let killed = Instant::now();
    first.kill();
    eventually(30, "the second operator takes over", || async {
        (holder().await.as_deref() == Some("second")).then_some(())
    })
    .await;
    let handover = killed.elapsed();
    println!(
        "leader handover after SIGKILL: {:.1} s (lease 4 s)",
        handover.as_secs_f64()
    );
    // The new leader acts: a deleted master pod heals (its replica takes over, and the pod
    // comes back as a replica).
    Api::<Pod>::namespaced(env.client.clone(), "life")
        .delete("small-1-0", &DeleteParams::default())
        .await
        .expect("pod deleted");
    let api = env.clusters("life");
    eventually(
        120,
        "node 1 back as a replica in a ready cluster",
        || async {
            let st = api.get("small").await.ok()?.status?;
            let ready = st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let node1 = st.nodes.iter().find(|n| n.name == "small-1")?;
            let masters = st.nodes.iter().filter(|n| n.role == "master").count();
            (ready && node1.role == "replica" && masters == 3 && st.nodes.len() == 6).then_some(())
        },
    )
    .await;
    assert!(second.exited().is_none());
    assert!(second.stop(), "SIGTERM stops the operator cleanly");
    eventually(10, "the lease is released on shutdown", || async {
        holder().await.is_none().then_some(())
    })
    .await;
}
