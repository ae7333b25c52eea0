//! Configuration on Kubernetes: an image change rolls the cluster through the core's safe
//! replacement with a writer running; with persistence, every pod deleted at once brings the
//! same cluster back with its data; a password from a Secret protects every node and rotating
//! it keeps the cluster up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use sandboxed::{
    Env, Writer, cluster_check, cluster_client, eventually, load_keys, missing_keys, redis_cli,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;

fn manifest(name: &str, ns: &str, body: &str) -> String {
    format!(
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  masters: 3\n  replicas: 1\n  clusterNodeTimeoutMs: 2000\n{body}"
    )
}

fn images(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter_map(|p| {
            p.spec
                .as_ref()?
                .containers
                .iter()
                .find(|c| c.name == "redis")?
                .image
                .clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_change_rolls_every_node_with_a_writer_running_and_nothing_lost() {
    let env = Env::start("roll", 3).await;
    let _operator = env.operator(&["--no-leader-election"]);
    env.apply(&manifest(
        "roll",
        "conf",
        "  basePort: 15000\n  image: redis:7.0\n",
    ))
    .await;
    let addrs = env.wait_shape("conf", "roll", 3, 6, 180).await;
    let mut client = cluster_client(&addrs);
    load_keys(&mut client, "k", 5_000);
    let writer = Writer::start(&addrs);
    let started = Instant::now();
    env.patch_spec("conf", "roll", json!({"image": "redis:7.2"}))
        .await;
    eventually(
        300,
        "every pod runs the new image in a ready cluster",
        || async {
            let pods = env.pods("conf", "roll").await;
            let rc = env.clusters("conf").get("roll").await.ok()?;
            let st = rc.status?;
            let ready = st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let running = pods.iter().all(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && p.metadata.deletion_timestamp.is_none()
            });
            (ready
                && running
                && pods.len() == 6
                && images(&pods) == BTreeSet::from(["redis:7.2".to_string()]))
            .then_some(())
        },
    )
    .await;
    println!(
        "rolling replacement of 3x1 on kube-sandbox: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let addrs = env.wait_shape("conf", "roll", 3, 6, 60).await;
    cluster_check(&addrs[0]).expect("clean after the roll");
    let (acked, lost) = writer.stop_and_lost(&addrs);
    assert!(acked > 100, "the writer made progress ({acked})");
    assert!(
        lost.is_empty(),
        "{} of {acked} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let mut client = cluster_client(&addrs);
    assert_eq!(missing_keys(&mut client, "k", 5_000), Vec::<usize>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_persistence_every_pod_deleted_at_once_comes_back_as_the_same_cluster_with_its_data() {
    let env = Env::start("persist", 3).await;
    let _operator = env.operator(&["--no-leader-election"]);
    env.apply(&manifest(
        "keep",
        "conf",
        "  basePort: 15100\n  persistence:\n    enabled: true\n",
    ))
    .await;
    let addrs = env.wait_shape("conf", "keep", 3, 6, 180).await;
    let mut client = cluster_client(&addrs);
    load_keys(&mut client, "k", 3_000);
    let ids = |st: spec::RedisClusterStatus| {
        st.nodes
            .into_iter()
            .map(|n| n.node_id)
            .collect::<BTreeSet<_>>()
    };
    let before = ids(env
        .clusters("conf")
        .get("keep")
        .await
        .unwrap()
        .status
        .unwrap());
    // appendfsync everysec: give the last writes a second to reach the file.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    Api::<Pod>::namespaced(env.client.clone(), "conf")
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app.kubernetes.io/instance=keep"),
        )
        .await
        .expect("pods deleted");
    eventually(60, "the pods are replaced", || async {
        let pods = env.pods("conf", "keep").await;
        (pods.len() == 6 && pods.iter().all(|p| p.metadata.deletion_timestamp.is_none()))
            .then_some(())
    })
    .await;
    let addrs = env.wait_shape("conf", "keep", 3, 6, 180).await;
    let after = ids(env
        .clusters("conf")
        .get("keep")
        .await
        .unwrap()
        .status
        .unwrap());
    assert_eq!(before, after, "the same nodes came back");
    let mut client = cluster_client(&addrs);
    assert_eq!(missing_keys(&mut client, "k", 3_000), Vec::<usize>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_from_a_secret_guards_every_node_and_rotating_it_keeps_the_cluster_up() {
    let env = Env::start("password", 3).await;
    let _operator = env.operator(&["--no-leader-election"]);
    env.namespace("auth").await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "auth");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"},
        "stringData": {"password": "first-secret"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    env.apply(&manifest(
        "guarded",
        "auth",
        "  basePort: 15200\n  passwordSecret:\n    name: redis-auth\n",
    ))
    .await;
    let addrs = env.wait_shape("auth", "guarded", 3, 6, 180).await;
    let (host, port) = (&addrs[0].0, addrs[0].1.to_string());
    let (_, out) = redis_cli(&["-h", host, "-p", &port, "ping"]);
    assert!(
        out.contains("NOAUTH"),
        "a node answers without the password: {out}"
    );
    let authed = |pw: &str| {
        addrs.iter().all(|(h, p)| {
            redis_cli(&[
                "--no-auth-warning",
                "-a",
                pw,
                "-h",
                h,
                "-p",
                &p.to_string(),
                "ping",
            ])
            .1
            .contains("PONG")
        })
    };
    assert!(authed("first-secret"));

    secrets
        .patch(
            "redis-auth",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"password": "second-secret"}})),
        )
        .await
        .expect("secret rotated");
    eventually(60, "every node takes the new password", || async {
        authed("second-secret").then_some(())
    })
    .await;
    // Replication links stayed up, and the cluster is still ready.
    for (h, p) in &addrs {
        let (_, info) = redis_cli(&[
            "--no-auth-warning",
            "-a",
            "second-secret",
            "-h",
            h,
            "-p",
            &p.to_string(),
            "info",
            "replication",
        ]);
        if info.contains("role:slave") {
            assert!(info.contains("master_link_status:up"), "{h}:{p}: {info}");
        }
    }
    env.wait_shape("auth", "guarded", 3, 6, 60).await;
    let rc = env.clusters("auth").get("guarded").await.unwrap();
    let shown = serde_json::to_string(&rc).unwrap();
    assert!(
        !shown.contains("second-secret") && !shown.contains("first-secret"),
        "the password reached the object"
    );
}
