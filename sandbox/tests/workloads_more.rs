//! More of the emulated cluster: updates of StatefulSets, probes, the downward API, node
//! faults, and processes going with a dropped handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::eventually;
use common::workloads::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn revision(pod: &Pod) -> String {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("controller-revision-hash").cloned())
        .unwrap_or_default()
}

async fn change_template(client: &kube::Client, name: &str) {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"changed": "yes"}}}}});
    Api::<StatefulSet>::default_namespaced(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rolling_update_replaces_every_pod_and_the_revisions_converge() {
    let (sb, client) = start_with_nodes(3).await;
    create_set(&client, &redis_set("roll", 2, json!({}))).await;
    let before = ready_pods(&client, "app=roll", &["roll-0", "roll-1"], 60).await;
    let old = revision(&before[0]);
    change_template(&client, "roll").await;
    let sets = Api::<StatefulSet>::default_namespaced(client.clone());
    let pods = Api::<Pod>::default_namespaced(client.clone());
    let status = eventually(60, "both pods on the new revision and Ready", || {
        let (sets, pods) = (sets.clone(), pods.clone());
        let old = old.clone();
        async move {
            let status = sets.get("roll").await.ok()?.status?;
            let update = status.update_revision.clone()?;
            let list = pods.list(&Default::default()).await.ok()?;
            let done = list.items.len() == 2
                && list
                    .items
                    .iter()
                    .all(|p| revision(p) == update && is_ready(p));
            (update != old && done && status.current_revision.as_deref() == Some(update.as_str()))
                .then_some(status)
        }
    })
    .await;
    assert_eq!(status.updated_replicas, Some(2));
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn on_delete_keeps_old_pods_until_one_is_deleted_and_recreates_it_from_the_new_template() {
    let (sb, client) = start_with_nodes(3).await;
    let strategy =
        json!({"updateStrategy": {"type": "OnDelete"}, "podManagementPolicy": "Parallel"});
    create_set(&client, &redis_set("manual", 2, strategy)).await;
    let before = ready_pods(&client, "app=manual", &["manual-0", "manual-1"], 60).await;
    let old = revision(&before[0]);
    change_template(&client, "manual").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let pods = Api::<Pod>::default_namespaced(client.clone());
    assert_eq!(
        revision(&pods.get("manual-0").await.unwrap()),
        old,
        "not replaced on its own"
    );
    pods.delete("manual-1", &DeleteParams::default())
        .await
        .unwrap();
    let fresh = eventually(60, "manual-1 recreated", || {
        let pods = pods.clone();
        let old = old.clone();
        async move {
            let p = pods.get("manual-1").await.ok()?;
            (revision(&p) != old && is_ready(&p)).then_some(p)
        }
    })
    .await;
    assert_ne!(revision(&fresh), old);
    assert_eq!(revision(&pods.get("manual-0").await.unwrap()), old);
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_probes_decide_ready_a_tcp_probe_passes_and_a_failing_exec_probe_holds_it_back() {
    let (sb, client) = start_with_nodes(1).await;
    let pods = Api::<Pod>::default_namespaced(client.clone());
    for (name, probe) in [
        (
            "tcp",
            json!({"tcpSocket": {"port": 6379}, "periodSeconds": 1}),
        ),
        (
            "never",
            json!({"exec": {"command": ["false"]}, "periodSeconds": 1}),
        ),
    ] {
        let pod = pod_manifest(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"probe": "yes"}},
            "spec": {"containers": [{"name": "redis", "image": "redis:7", "readinessProbe": probe}]}}));
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    eventually(30, "tcp Ready", || {
        let pods = pods.clone();
        async move { pods.get("tcp").await.ok().filter(is_ready) }
    })
    .await;
    let never = pods.get("never").await.unwrap();
    let status = never.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(!status.container_statuses.unwrap()[0].ready);
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn the_downward_api_gives_a_container_its_pod_name_address_and_node() {
    let dir = common::scratch_dir("downward");
    let sb = kube_sandbox::Sandbox::builder()
        .nodes(2)
        .state_dir(&dir)
        .start()
        .await
        .unwrap();
    let client = sb.client().unwrap();
    let pods = Api::<Pod>::default_namespaced(client.clone());
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "who"},
        "spec": {"containers": [{"name": "sh", "image": "redis:7",
            "command": ["sh", "-c", "echo \"$NAME $IP $NODE $GREETING\" > /out/env; exec sleep 600"],
            "env": [
                {"name": "NAME", "valueFrom": field("metadata.name")},
                {"name": "IP", "valueFrom": field("status.podIP")},
                {"name": "NODE", "valueFrom": field("spec.nodeName")},
                {"name": "GREETING", "value": "hello-$(NAME)"},
            ],
            "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
            "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": "out"}}]}}),
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let file = dir.join("workloads/pvcs/default/out/env");
    let text = eventually(30, "the env file", || {
        let file = file.clone();
        async move {
            std::fs::read_to_string(file)
                .ok()
                .filter(|t| t.ends_with('\n'))
        }
    })
    .await;
    let running = pods.get("who").await.unwrap();
    let expected = format!(
        "who {} {} hello-who",
        pod_ip(&running),
        running.spec.unwrap().node_name.unwrap()
    );
    assert_eq!(text.trim(), expected);
    sb.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stopped_node_freezes_its_pods_and_goes_not_ready_until_started_again() {
    let (sb, client) = start_with_nodes(1).await;
    create_set(&client, &redis_set("frozen", 1, json!({}))).await;
    ready_pods(&client, "app=frozen", &["frozen-0"], 60).await;
    let pid = sb.started_pids()[0];
    sb.workload_faults().stop_node("node-0");
    let nodes = Api::<Node>::all(client.clone());
    let ready_status = |n: Node| {
        n.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status)
    };
    eventually(10, "node-0 not Ready", || {
        let nodes = nodes.clone();
        async move {
            nodes
                .get("node-0")
                .await
                .ok()
                .and_then(ready_status)
                .filter(|s| s != "True")
        }
    })
    .await;
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = state
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(state, "T", "redis-server is stopped");
    sb.workload_faults().start_node("node-0");
    eventually(10, "node-0 Ready", || {
        let nodes = nodes.clone();
        async move {
            nodes
                .get("node-0")
                .await
                .ok()
                .and_then(ready_status)
                .filter(|s| s == "True")
        }
    })
    .await;
    let pod = Api::<Pod>::default_namespaced(client.clone())
        .get("frozen-0")
        .await
        .unwrap();
    assert_eq!(ping(&pod_ip(&pod)).await, "PONG");
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn dropping_the_handle_kills_every_process_the_sandbox_started() {
    let (sb, client) = start_with_nodes(1).await;
    create_set(&client, &redis_set("dropped", 1, json!({}))).await;
    ready_pods(&client, "app=dropped", &["dropped-0"], 60).await;
    let pids = sb.started_pids();
    assert!(!pids.is_empty());
    drop(sb);
    eventually(10, "no process left", || {
        let pids = pids.clone();
        async move { pids.iter().all(|p| !process_alive(*p)).then_some(()) }
    })
    .await;
    eventually(10, "the temporary workload directory removed", || async {
        workload_dirs_of_this_process().is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_failing_liveness_probe_kills_the_container_and_it_restarts() {
    let (sb, client) = start_with_nodes(1).await;
    let pods = Api::<Pod>::default_namespaced(client.clone());
    let probe = json!({"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2});
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sick"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7", "livenessProbe": probe}]}}),
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = eventually(30, "sick restarted", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("sick").await.ok()?;
            let cs = p.status?.container_statuses?.into_iter().next()?;
            (cs.restart_count >= 1).then_some(cs)
        }
    })
    .await;
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 137);
    sb.stop().await.unwrap();
}
