//! Deployment → ReplicaSet → Pods with the emulated cluster running them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::eventually;
use common::workloads::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn redis_deployment(name: &str, replicas: i32, strategy: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "strategy": {"type": strategy},
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "redis", "image": "redis:7"}]}}},
    }))
    .unwrap()
}

fn hash(pod: &Pod) -> String {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash").cloned())
        .unwrap_or_default()
}

async fn ready_count(api: &Api<Pod>, selector: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn rolls_out(strategy: &str) {
    let (sb, client) = start_with_nodes(2).await;
    let deployments = Api::<Deployment>::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &redis_deployment("web", 2, strategy),
        )
        .await
        .unwrap();
    let pods = Api::<Pod>::default_namespaced(client.clone());
    let first = eventually(60, "two Ready pods", || {
        let pods = pods.clone();
        async move {
            let list = ready_count(&pods, "app=web").await;
            (list.len() == 2 && list.iter().all(is_ready)).then_some(list)
        }
    })
    .await;
    for p in &first {
        assert_eq!(ping(&pod_ip(p)).await, "PONG");
    }
    let old_hash = hash(&first[0]);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    eventually(
        60,
        "two Ready pods of the new template and no old one",
        || {
            let pods = pods.clone();
            let old_hash = old_hash.clone();
            async move {
                let list = ready_count(&pods, "app=web").await;
                let done =
                    list.len() == 2 && list.iter().all(|p| is_ready(p) && hash(p) != old_hash);
                done.then_some(())
            }
        },
    )
    .await;
    let status = eventually(20, "deployment status", || {
        let deployments = deployments.clone();
        async move {
            let s = deployments.get("web").await.ok()?.status?;
            (s.updated_replicas == Some(2) && s.available_replicas == Some(2)).then_some(s)
        }
    })
    .await;
    let available = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");
    let sets = Api::<ReplicaSet>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        sets.items.len(),
        2,
        "the old ReplicaSet is kept, scaled to zero"
    );
    assert!(
        sets.items
            .iter()
            .any(|rs| rs.spec.as_ref().and_then(|s| s.replicas) == Some(0))
    );
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_rolling_update_deployment_runs_its_pods_and_replaces_them_with_the_new_template() {
    rolls_out("RollingUpdate").await;
}

#[tokio::test]
async fn a_recreate_deployment_runs_its_pods_and_replaces_them_with_the_new_template() {
    rolls_out("Recreate").await;
}

#[tokio::test]
async fn scaling_a_deployment_down_removes_pods() {
    let (sb, client) = start_with_nodes(2).await;
    let deployments = Api::<Deployment>::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &redis_deployment("scale", 3, "RollingUpdate"),
        )
        .await
        .unwrap();
    let pods = Api::<Pod>::default_namespaced(client.clone());
    eventually(60, "three Ready pods", || {
        let pods = pods.clone();
        async move {
            let list = ready_count(&pods, "app=scale").await;
            (list.len() == 3 && list.iter().all(is_ready)).then_some(())
        }
    })
    .await;
    deployments
        .patch(
            "scale",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually(60, "one pod left", || {
        let pods = pods.clone();
        async move { (ready_count(&pods, "app=scale").await.len() == 1).then_some(()) }
    })
    .await;
    sb.stop().await.unwrap();
}
