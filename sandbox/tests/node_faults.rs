//! Killing a whole node: its pods' processes die at once, the Node goes NotReady
//! (Unknown) and nothing runs there until it is started again, when the containers
//! restart as on a rebooted node. From Rust and through `kube-sandbox fault`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::{BIN, Running, client_once_written, down_and_wait};
use common::workloads::*;
use common::{eventually, scratch_dir};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use serde_json::json;

/// One `redis-cli ping`, no retry: whether a server answers right now.
async fn answers(ip: &str) -> bool {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-h", ip, "-p", "6379", "ping"])
        .output()
        .await
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

async fn node_ready(client: &Client, node: &str) -> Option<String> {
    let n = Api::<Node>::all(client.clone()).get(node).await.ok()?;
    n.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status)
}

async fn wait_node_ready(client: &Client, node: &str, want: &str) {
    eventually(15, &format!("{node} Ready={want}"), || async {
        (node_ready(client, node).await.as_deref() == Some(want)).then_some(())
    })
    .await;
}

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

/// Waits until the pod is Ready again after at least one restart, and returns it.
async fn restarted(client: &Client, name: &str) -> Pod {
    let api = Api::<Pod>::default_namespaced(client.clone());
    eventually(30, &format!("{name} restarted and Ready"), || {
        let api = api.clone();
        async move {
            let p = api.get(name).await.ok()?;
            let cs = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            (cs.restart_count >= 1 && is_ready(&p)).then_some(p)
        }
    })
    .await
}

#[tokio::test]
async fn a_killed_node_loses_its_processes_stays_down_and_restarts_its_containers_when_started() {
    let (sb, client) = start_with_nodes(1).await;
    create_set(&client, &redis_set("lost", 1, json!({}))).await;
    let pod = ready_pods(&client, "app=lost", &["lost-0"], 60)
        .await
        .remove(0);
    let ip = pod_ip(&pod);
    let pid = container_pid(&pod).expect("a pid");
    assert_eq!(ping(&ip).await, "PONG");

    sb.workload_faults().kill_node("node-0");
    wait_node_ready(&client, "node-0", "Unknown").await;
    eventually(10, "redis-server gone", || async {
        (!process_alive(pid)).then_some(())
    })
    .await;
    assert!(!answers(&ip).await, "a killed node's redis still answers");
    // The kubelet of a node that is down restarts nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !answers(&ip).await,
        "a container came back while the node was down"
    );

    sb.workload_faults().start_node("node-0");
    wait_node_ready(&client, "node-0", "True").await;
    let back = restarted(&client, "lost-0").await;
    let status = back
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .clone();
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        last.exit_code, 137,
        "SIGKILL recorded as the last termination"
    );
    assert_ne!(container_pid(&back), Some(pid));
    assert_eq!(ping(&pod_ip(&back)).await, "PONG");
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn the_fault_command_kills_a_node_and_starts_it_again() {
    let dir = scratch_dir("cli-kill-node");
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
    let pod = ready_pods(&client, "app=cli", &["cli-0"], 60)
        .await
        .remove(0);
    let ip = pod_ip(&pod);
    assert_eq!(ping(&ip).await, "PONG");

    let fault = |flag: &str| {
        Command::new(BIN)
            .args(["fault", flag, "node-0", "--kubeconfig"])
            .arg(&kubeconfig)
            .status()
            .unwrap()
    };
    assert!(fault("--kill-node").success());
    wait_node_ready(&client, "node-0", "Unknown").await;
    eventually(10, "redis at the pod address gone", || {
        let ip = ip.clone();
        async move { (!answers(&ip).await).then_some(()) }
    })
    .await;
    assert!(fault("--start-node").success());
    wait_node_ready(&client, "node-0", "True").await;
    let back = restarted(&client, "cli-0").await;
    assert_eq!(ping(&pod_ip(&back)).await, "PONG");

    down_and_wait(&dir, &mut running, 10).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
