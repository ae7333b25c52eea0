//! Helpers for tests that run pods: a sandbox with nodes, manifests, and process checks.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kube_sandbox::{Sandbox, SandboxHandle};
use serde_json::{Value, json};

use super::eventually;

pub async fn start_with_nodes(nodes: usize) -> (SandboxHandle, Client) {
    let handle = Sandbox::builder()
        .nodes(nodes)
        .start()
        .await
        .expect("sandbox starts");
    let client = handle.client().expect("client");
    (handle, client)
}

/// A StatefulSet of `redis:7` pods with a `data` claim mounted at /data.
pub fn redis_set(name: &str, replicas: i32, extra_spec: Value) -> StatefulSet {
    let mut sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "redis", "image": "redis:7",
                    "ports": [{"containerPort": 6379, "name": "redis"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    });
    if let (Some(spec), Some(extra)) = (sts["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(sts).expect("statefulset manifest")
}

pub async fn create_set(client: &Client, sts: &StatefulSet) {
    Api::<StatefulSet>::default_namespaced(client.clone())
        .create(&PostParams::default(), sts)
        .await
        .expect("statefulset created");
}

pub fn pod_manifest(value: Value) -> Pod {
    serde_json::from_value(value).expect("pod manifest")
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// Waits until the pods matching `selector` are exactly `names`, all Ready.
pub async fn ready_pods(client: &Client, selector: &str, names: &[&str], secs: u64) -> Vec<Pod> {
    let api = Api::<Pod>::default_namespaced(client.clone());
    eventually(secs, &format!("pods {names:?} Ready"), || {
        let api = api.clone();
        async move {
            let pods = api
                .list(&ListParams::default().labels(selector))
                .await
                .ok()?;
            let mut found: Vec<String> = pods
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            found.sort();
            let all_ready = pods.items.iter().all(is_ready);
            (found == names && all_ready).then_some(pods.items)
        }
    })
    .await
}

/// `redis-cli -h ip ping`, retried while the server starts.
pub async fn ping(ip: &str) -> String {
    let ip = ip.to_string();
    eventually(10, &format!("redis at {ip} answers"), || {
        let ip = ip.clone();
        async move {
            let out = tokio::process::Command::new("redis-cli")
                .args(["-h", &ip, "-p", "6379", "ping"])
                .output()
                .await
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (text == "PONG").then_some(text)
        }
    })
    .await
}

/// Whether a process with this id is alive (not gone, not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Temporary workload directories of sandboxes started by this test process.
pub fn workload_dirs_of_this_process() -> Vec<std::path::PathBuf> {
    let prefix = format!("kube-sandbox-workloads-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}
