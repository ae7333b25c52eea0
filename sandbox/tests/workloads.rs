//! Workloads run for real: nodes, the scheduler, the StatefulSet controller and the
//! kubelet, which runs every `redis:7` pod as a redis-server on the pod's own address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::eventually;
use common::workloads::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn three_nodes_register_ready_each_with_its_own_loopback_address() {
    let (sb, client) = start_with_nodes(3).await;
    let nodes = Api::<Node>::all(client.clone());
    let listed = eventually(10, "three Ready nodes", || {
        let nodes = nodes.clone();
        async move {
            let list = nodes.list(&ListParams::default()).await.ok()?;
            let ready = list.items.iter().all(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            (list.items.len() == 3 && ready).then_some(list.items)
        }
    })
    .await;
    let mut ips: Vec<String> = listed
        .iter()
        .map(|n| {
            let addrs = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default();
            addrs
                .into_iter()
                .find(|a| a.type_ == "InternalIP")
                .map(|a| a.address)
                .unwrap_or_default()
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "{ips:?}");
    for ip in &ips {
        let parsed: std::net::Ipv4Addr = ip.parse().unwrap();
        assert!(
            parsed.is_loopback() && parsed != std::net::Ipv4Addr::LOCALHOST,
            "{ip}"
        );
    }
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_statefulset_of_three_redis_pods_comes_up_ready_on_distinct_addresses_answering_ping() {
    let (sb, client) = start_with_nodes(3).await;
    create_set(&client, &redis_set("cache", 3, json!({}))).await;
    let pods = ready_pods(&client, "app=cache", &["cache-0", "cache-1", "cache-2"], 60).await;
    let mut ips: Vec<String> = pods.iter().map(pod_ip).collect();
    for ip in &ips {
        assert_eq!(ping(ip).await, "PONG");
        let bind = tokio::process::Command::new("redis-cli")
            .args(["-h", ip, "config", "get", "bind"])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bind.stdout).to_string();
        assert_eq!(
            text.lines().nth(1),
            Some(ip.as_str()),
            "bound to its pod address alone"
        );
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3);
    let claims = Api::<PersistentVolumeClaim>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut names: Vec<String> = claims
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["data-cache-0", "data-cache-1", "data-cache-2"]);
    assert!(
        claims
            .items
            .iter()
            .all(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
    );
    let sets = Api::<StatefulSet>::default_namespaced(client.clone());
    let status = eventually(10, "statefulset status", || {
        let sets = sets.clone();
        async move {
            let s = sets.get("cache").await.ok()?.status?;
            (s.ready_replicas == Some(3)).then_some(s)
        }
    })
    .await;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(status.observed_generation, Some(1));
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_deleted_pod_is_recreated_with_the_same_name_and_keeps_its_data() {
    let (sb, client) = start_with_nodes(3).await;
    create_set(&client, &redis_set("keep", 1, json!({}))).await;
    let pods = ready_pods(&client, "app=keep", &["keep-0"], 60).await;
    let old_uid = pods[0].metadata.uid.clone();
    let ip = pod_ip(&pods[0]);
    ping(&ip).await;
    let set = tokio::process::Command::new("redis-cli")
        .args(["-h", &ip, "set", "k", "v"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&set.stdout).contains("OK"));
    let saved = tokio::process::Command::new("redis-cli")
        .args(["-h", &ip, "save"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&saved.stdout).contains("OK"));
    Api::<Pod>::default_namespaced(client.clone())
        .delete("keep-0", &DeleteParams::default())
        .await
        .unwrap();
    let api = Api::<Pod>::default_namespaced(client.clone());
    let again = eventually(60, "keep-0 recreated and Ready", || {
        let api = api.clone();
        let old_uid = old_uid.clone();
        async move {
            let p = api.get("keep-0").await.ok()?;
            (p.metadata.uid != old_uid && is_ready(&p)).then_some(p)
        }
    })
    .await;
    let ip = pod_ip(&again);
    ping(&ip).await;
    let got = tokio::process::Command::new("redis-cli")
        .args(["-h", &ip, "get", "k"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "v",
        "data on the claim survives"
    );
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn scaling_down_removes_the_highest_ordinal_and_keeps_its_claim() {
    let (sb, client) = start_with_nodes(3).await;
    create_set(
        &client,
        &redis_set("shrink", 3, json!({"podManagementPolicy": "Parallel"})),
    )
    .await;
    ready_pods(
        &client,
        "app=shrink",
        &["shrink-0", "shrink-1", "shrink-2"],
        60,
    )
    .await;
    Api::<StatefulSet>::default_namespaced(client.clone())
        .patch(
            "shrink",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    ready_pods(&client, "app=shrink", &["shrink-0", "shrink-1"], 60).await;
    let claims = Api::<PersistentVolumeClaim>::default_namespaced(client.clone());
    assert!(
        claims.get("data-shrink-2").await.is_ok(),
        "the claim of the removed pod stays"
    );
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn required_anti_affinity_spreads_three_pods_and_leaves_a_fourth_unschedulable() {
    let (sb, client) = start_with_nodes(3).await;
    let affinity = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {"app": "spread"}},
    }]}});
    let mut sts = redis_set("spread", 4, json!({"podManagementPolicy": "Parallel"}));
    if let Some(spec) = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.affinity = Some(serde_json::from_value(affinity).unwrap());
    }
    create_set(&client, &sts).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pods = eventually(60, "three pods Ready and one Unschedulable", || {
        let api = api.clone();
        async move {
            let list = api
                .list(&ListParams::default().labels("app=spread"))
                .await
                .ok()?;
            let ready = list.items.iter().filter(|p| is_ready(p)).count();
            let unschedulable = list
                .items
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| {
                                c.type_ == "PodScheduled"
                                    && c.status == "False"
                                    && c.reason.as_deref() == Some("Unschedulable")
                            })
                        })
                })
                .count();
            (ready == 3 && unschedulable == 1).then_some(list.items)
        }
    })
    .await;
    let mut nodes: Vec<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-0", "node-1", "node-2"]);
    let pending = pods.iter().find(|p| !is_ready(p)).unwrap();
    assert_eq!(
        pending.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_container_killed_through_the_fault_api_is_restarted_and_counted() {
    let (sb, client) = start_with_nodes(3).await;
    create_set(&client, &redis_set("victim", 1, json!({}))).await;
    ready_pods(&client, "app=victim", &["victim-0"], 60).await;
    sb.workload_faults()
        .kill_container("default", "victim-0", None);
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pod = eventually(30, "victim-0 restarted and Ready", || {
        let api = api.clone();
        async move {
            let p = api.get("victim-0").await.ok()?;
            let cs = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            (cs.restart_count == 1 && is_ready(&p)).then_some(p)
        }
    })
    .await;
    let ip = pod_ip(&pod);
    let status = pod.status.unwrap().container_statuses.unwrap().remove(0);
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 137, "SIGKILL");
    assert_eq!(last.reason.as_deref(), Some("Error"));
    ping(&ip).await;
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn an_image_with_no_local_program_reports_image_not_runnable_and_is_never_running() {
    let (sb, client) = start_with_nodes(1).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    let status = eventually(20, "web reports its image", || {
        let api = api.clone();
        async move {
            let p = api.get("web").await.ok()?;
            let cs = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            let waiting = cs.state.as_ref()?.waiting.clone()?;
            (waiting.reason.as_deref() == Some("ImageNotRunnable")).then_some(p.status?)
        }
    })
    .await;
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(!status.container_statuses.unwrap()[0].ready);
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_deletion_sends_sigterm_and_the_pod_goes_when_its_process_exits() {
    let dir = common::scratch_dir("graceful");
    let sb = kube_sandbox::Sandbox::builder()
        .nodes(1)
        .state_dir(&dir)
        .start()
        .await
        .unwrap();
    let client = sb.client().unwrap();
    let api = Api::<Pod>::default_namespaced(client.clone());
    let script = "trap 'echo TERM > /log/signal; exit 0' TERM; echo up > /log/signal; while true; do sleep 0.1; done";
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "polite"},
        "spec": {"terminationGracePeriodSeconds": 25, "containers": [{"name": "sh", "image": "redis:7",
            "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "log", "mountPath": "/log"}]}],
            "volumes": [{"name": "log", "persistentVolumeClaim": {"claimName": "log"}}]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    let signal_file = dir.join("workloads/pvcs/default/log/signal");
    eventually(30, "the script runs", || {
        let f = signal_file.clone();
        async move { std::fs::read_to_string(f).ok().filter(|s| s.trim() == "up") }
    })
    .await;
    let started = tokio::time::Instant::now();
    api.delete("polite", &DeleteParams::default())
        .await
        .unwrap();
    let marked = api.get("polite").await.unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "deletion starts with a timestamp"
    );
    eventually(20, "polite removed", || {
        let api = api.clone();
        async move {
            api.get_opt("polite")
                .await
                .ok()
                .and_then(|p| p.is_none().then_some(()))
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "went before its grace period ended"
    );
    assert_eq!(
        std::fs::read_to_string(&signal_file).unwrap().trim(),
        "TERM"
    );
    sb.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stopping_the_sandbox_leaves_no_process_it_started() {
    let (sb, client) = start_with_nodes(2).await;
    create_set(
        &client,
        &redis_set("gone", 2, json!({"podManagementPolicy": "Parallel"})),
    )
    .await;
    ready_pods(&client, "app=gone", &["gone-0", "gone-1"], 60).await;
    let pids = sb.started_pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.iter().all(|p| process_alive(*p)));
    sb.stop().await.unwrap();
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} outlived the sandbox");
    }
    assert!(
        workload_dirs_of_this_process().is_empty(),
        "temporary directory removed"
    );
}
