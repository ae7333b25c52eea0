//! The scheduler's filters, and the end of a grace period. Pods here use an image with no
//! local program where only placement matters, so nothing runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::eventually;
use common::workloads::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

fn placeholder(name: &str, spec: Value) -> Pod {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "example.com/placeholder:1"}]}});
    if let (Some(s), Some(extra)) = (pod["spec"].as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    pod_manifest(pod)
}

async fn placement(api: &Api<Pod>, name: &str) -> (Option<String>, Option<String>) {
    eventually(20, &format!("{name} considered by the scheduler"), || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let p = api.get(&name).await.ok()?;
            let node = p.spec.as_ref()?.node_name.clone();
            let scheduled = p
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled")?;
            Some((node, scheduled.reason))
        }
    })
    .await
}

#[tokio::test]
async fn a_node_selector_picks_the_node_and_a_taken_host_port_leaves_the_next_pod_unschedulable() {
    let (sb, client) = start_with_nodes(3).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let on_one = json!({"nodeSelector": {"kubernetes.io/hostname": "node-1"}});
    api.create(&PostParams::default(), &placeholder("picky", on_one))
        .await
        .unwrap();
    assert_eq!(placement(&api, "picky").await.0.as_deref(), Some("node-1"));
    let port = |extra: Value| {
        let mut spec = json!({"nodeSelector": {"kubernetes.io/hostname": "node-2"},
            "containers": [{"name": "c", "image": "example.com/placeholder:1",
                "ports": [{"containerPort": 80, "hostPort": 7080}]}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        spec
    };
    api.create(
        &PostParams::default(),
        &placeholder("first", port(json!({}))),
    )
    .await
    .unwrap();
    assert_eq!(placement(&api, "first").await.0.as_deref(), Some("node-2"));
    api.create(
        &PostParams::default(),
        &placeholder("second", port(json!({}))),
    )
    .await
    .unwrap();
    let (node, reason) = placement(&api, "second").await;
    assert_eq!(node, None);
    assert_eq!(reason.as_deref(), Some("Unschedulable"));
    let nowhere = json!({"nodeSelector": {"disk": "ssd"}});
    api.create(&PostParams::default(), &placeholder("nowhere", nowhere))
        .await
        .unwrap();
    assert_eq!(
        placement(&api, "nowhere").await.1.as_deref(),
        Some("Unschedulable")
    );
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn preferred_anti_affinity_outweighs_the_emptier_node() {
    let (sb, client) = start_with_nodes(3).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pinned = |node: &str| json!({"nodeSelector": {"kubernetes.io/hostname": node}});
    let spread = [("app".to_string(), "spread".to_string())];
    // node-0 holds two unrelated pods, node-1 and node-2 one matching pod each.
    for (name, node, label) in [
        ("u0", "node-0", false),
        ("u1", "node-0", false),
        ("s1", "node-1", true),
        ("s2", "node-2", true),
    ] {
        let mut pod = placeholder(name, pinned(node));
        if label {
            pod.metadata.labels = Some(spread.clone().into());
        }
        api.create(&PostParams::default(), &pod).await.unwrap();
        assert_eq!(placement(&api, name).await.0.as_deref(), Some(node));
    }
    let prefer = json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["spread"]}]}}}]}}});
    let mut pod = placeholder("p", prefer);
    pod.metadata.labels = Some(spread.into());
    api.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(placement(&api, "p").await.0.as_deref(), Some("node-0"));
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_process_that_ignores_sigterm_is_killed_when_its_grace_period_ends() {
    let (sb, client) = start_with_nodes(1).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stubborn"},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{"name": "sh", "image": "redis:7",
            "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    eventually(20, "stubborn Ready", || {
        let api = api.clone();
        async move { api.get("stubborn").await.ok().filter(is_ready) }
    })
    .await;
    let pids = sb.started_pids();
    let started = tokio::time::Instant::now();
    api.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        api.get_opt("stubborn").await.unwrap().is_some(),
        "still in its grace period"
    );
    assert!(
        pids.iter().all(|p| process_alive(*p)),
        "SIGTERM was ignored"
    );
    eventually(20, "stubborn removed", || {
        let api = api.clone();
        async move {
            api.get_opt("stubborn")
                .await
                .ok()
                .and_then(|p| p.is_none().then_some(()))
        }
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        pids.iter().all(|p| !process_alive(*p)),
        "killed at the end of the grace period"
    );
    sb.stop().await.unwrap();
}
