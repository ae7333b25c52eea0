//! `pods/log`: `kubectl logs` (with `-c`, `--tail`, `--previous`) and kube-rs'
//! `Api::logs` read the output of containers the kubelet runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::eventually;
use common::tools::Cluster;
use common::workloads::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;

async fn create_pod(c: &Cluster, manifest: serde_json::Value) -> Pod {
    let api = Api::<Pod>::default_namespaced(c.client());
    let pod = api
        .create(&PostParams::default(), &pod_manifest(manifest))
        .await
        .unwrap();
    let name = pod.metadata.name.clone().unwrap();
    eventually(60, &format!("{name} Ready"), || {
        let api = api.clone();
        let name = name.clone();
        async move { api.get(&name).await.ok().filter(is_ready) }
    })
    .await
}

/// `kubectl logs ARGS` once its output contains `needle` (the process writes a moment
/// after it starts).
async fn logs_containing(c: &Cluster, args: &[&str], needle: &str) -> String {
    let mut full = vec!["logs"];
    full.extend_from_slice(args);
    eventually(
        20,
        &format!("kubectl logs {args:?} shows {needle:?}"),
        || {
            let full = full.clone();
            async move {
                let (ok, out, _) = c.run("kubectl", &full).await;
                (ok && out.contains(needle)).then_some(out)
            }
        },
    )
    .await
}

#[tokio::test]
async fn kubectl_logs_shows_each_containers_output_and_honours_tail_and_the_container_flag() {
    let c = Cluster::start_with_nodes(1).await;
    create_pod(
        &c,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talk"},
        "spec": {"containers": [
            {"name": "redis", "image": "redis:7"},
            {"name": "side", "image": "redis:7",
                "command": ["sh", "-c", "echo one; echo two; echo three; exec sleep 600"]},
        ]}}),
    )
    .await;
    let out = logs_containing(&c, &["talk", "-c", "redis"], "Ready to accept connections").await;
    assert!(out.contains("Server initialized"), "{out}");
    // Without -c, kubectl picks the first container itself.
    logs_containing(&c, &["talk"], "Ready to accept connections").await;
    assert_eq!(
        logs_containing(&c, &["talk", "-c", "side"], "three").await,
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        c.kubectl(&["logs", "talk", "-c", "side", "--tail=2"]).await,
        "two\nthree\n"
    );

    let (ok, _, err) = c.run("kubectl", &["logs", "talk", "-c", "nope"]).await;
    assert!(!ok && err.contains("container nope is not valid"), "{err}");

    // kube-rs reads the same subresource.
    let api = Api::<Pod>::default_namespaced(c.client());
    let params = LogParams {
        container: Some("side".into()),
        tail_lines: Some(1),
        ..LogParams::default()
    };
    assert_eq!(api.logs("talk", &params).await.unwrap(), "three\n");
    // A pod with several containers needs a container name from kube-rs, as from the API.
    let err = api.logs("talk", &LogParams::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("a container name must be specified"),
        "{err}"
    );
    drop(c);
}

#[tokio::test]
async fn kubectl_logs_previous_shows_the_run_before_a_restart() {
    let c = Cluster::start_with_nodes(1).await;
    create_pod(
        &c,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "again"},
            "spec": {"containers": [{"name": "sh", "image": "redis:7",
                // `$$$$` is the shell's `$$` (the pid) once Kubernetes unescapes `$$`.
                "command": ["sh", "-c", "echo started by $$$$; exec sleep 600"]}]}}),
    )
    .await;
    let first = logs_containing(&c, &["again"], "started by").await;
    let (ok, _, err) = c.run("kubectl", &["logs", "again", "--previous"]).await;
    assert!(
        !ok && err.contains("previous terminated container"),
        "{err}"
    );

    c.sb.workload_faults()
        .kill_container("default", "again", None);
    let api = Api::<Pod>::default_namespaced(c.client());
    eventually(30, "again restarted", || {
        let api = api.clone();
        async move {
            let p = api.get("again").await.ok()?;
            let restarts = p.status.as_ref()?.container_statuses.as_ref()?[0].restart_count;
            (restarts == 1 && is_ready(&p)).then_some(())
        }
    })
    .await;
    let second = logs_containing(&c, &["again"], "started by").await;
    assert_ne!(first, second, "the current log is the new run's alone");
    assert_eq!(c.kubectl(&["logs", "again", "--previous"]).await, first);
    drop(c);
}
