//! Workloads through the binary and kubectl: `up --nodes`, `fault --kill-container`,
//! `kubectl get pods -o wide`, and `down` taking every pod process with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::cli::{BIN, Running, client_once_written, down_and_wait};
use common::tools::Cluster;
use common::workloads::*;
use common::{eventually, scratch_dir};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

fn container_pid(pod: &Pod) -> Option<u32> {
    let id = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .clone()?;
    id.strip_prefix("kube-sandbox://")?.parse().ok()
}

#[tokio::test]
async fn up_with_nodes_runs_pods_the_fault_command_kills_one_and_down_leaves_no_process() {
    let dir = scratch_dir("cli-nodes");
    let kubeconfig = dir.join("kubeconfig");
    let child = Command::new(BIN)
        .args(["up", "--nodes", "1", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--state-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let client = client_once_written(&kubeconfig, "http://127.0.0.1:").await;
    create_set(&client, &redis_set("cli", 1, json!({}))).await;
    let pods = ready_pods(&client, "app=cli", &["cli-0"], 60).await;
    let first = container_pid(&pods[0]).expect("a pid in containerID");

    let fault = Command::new(BIN)
        .args(["fault", "--kill-container", "default/cli-0", "--kubeconfig"])
        .arg(&kubeconfig)
        .status()
        .unwrap();
    assert!(fault.success());
    let api = Api::<Pod>::default_namespaced(client.clone());
    let restarted = eventually(30, "cli-0 restarted", || {
        let api = api.clone();
        async move {
            let p = api.get("cli-0").await.ok()?;
            let count = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .restart_count;
            (count == 1 && is_ready(&p)).then_some(p)
        }
    })
    .await;
    let second = container_pid(&restarted).expect("a pid after the restart");
    assert_ne!(first, second);
    assert!(!process_alive(first));
    assert!(process_alive(second));

    down_and_wait(&dir, &mut running, 10).await;
    assert!(!process_alive(second), "redis-server outlived `down`");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn kubectl_get_pods_wide_shows_each_pods_address_and_node() {
    let c = Cluster::start_with_nodes(2).await;
    create_set(
        &c.client(),
        &redis_set("wide", 2, json!({"podManagementPolicy": "Parallel"})),
    )
    .await;
    let pods = ready_pods(&c.client(), "app=wide", &["wide-0", "wide-1"], 60).await;
    let out = c.kubectl(&["get", "pods", "-o", "wide"]).await;
    let header = out.lines().next().unwrap();
    assert!(header.contains("IP") && header.contains("NODE"), "{out}");
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
        let line = out
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            line.contains(&pod_ip(pod)) && line.contains(&node),
            "{line}"
        );
        assert!(line.contains("Running") && line.contains("1/1"), "{line}");
    }
    drop(c);
}
