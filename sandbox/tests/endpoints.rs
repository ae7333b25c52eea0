//! Endpoints and EndpointSlices of Services, kept by the emulated cluster from the pods
//! the kubelet runs, read back with kube-rs and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::eventually;
use common::tools::Cluster;
use common::workloads::*;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

async fn create_service(client: &Client, manifest: Value) -> Service {
    let svc: Service = serde_json::from_value(manifest).unwrap();
    Api::<Service>::default_namespaced(client.clone())
        .create(&PostParams::default(), &svc)
        .await
        .unwrap()
}

fn ready_ips(ep: &Endpoints) -> BTreeSet<String> {
    ep.subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| a.ip.clone())
        .collect()
}

fn not_ready_ips(ep: &Endpoints) -> BTreeSet<String> {
    ep.subsets
        .iter()
        .flatten()
        .flat_map(|s| s.not_ready_addresses.iter().flatten())
        .map(|a| a.ip.clone())
        .collect()
}

async fn slices_of(client: &Client, svc: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::default_namespaced(client.clone())
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Waits until the Endpoints `name` has exactly `ips` as ready addresses.
async fn endpoints_with(client: &Client, name: &str, ips: &BTreeSet<String>) -> Endpoints {
    let api = Api::<Endpoints>::default_namespaced(client.clone());
    eventually(30, &format!("endpoints {name} = {ips:?}"), || {
        let api = api.clone();
        async move {
            let ep = api.get(name).await.ok()?;
            (&ready_ips(&ep) == ips).then_some(ep)
        }
    })
    .await
}

#[tokio::test]
async fn a_service_lists_its_ready_pods_in_endpoints_and_a_slice_with_the_named_target_port_resolved()
 {
    let (sb, client) = start_with_nodes(2).await;
    create_set(
        &client,
        &redis_set("cache", 2, json!({"podManagementPolicy": "Parallel"})),
    )
    .await;
    let svc = create_service(
        &client,
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "cache", "labels": {"tier": "db"}},
            "spec": {"clusterIP": "None", "selector": {"app": "cache"},
                "ports": [{"name": "client", "port": 7000, "targetPort": "redis"}]}}),
    )
    .await;
    let pods = ready_pods(&client, "app=cache", &["cache-0", "cache-1"], 60).await;
    let ips: BTreeSet<String> = pods.iter().map(pod_ip).collect();
    let ep = endpoints_with(&client, "cache", &ips).await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    let port = &subset.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("client"), 6379));
    for address in subset.addresses.as_ref().unwrap() {
        let pod = pods
            .iter()
            .find(|p| pod_ip(p) == address.ip)
            .expect("an address of a pod");
        let target = address.target_ref.as_ref().unwrap();
        assert_eq!(target.name, pod.metadata.name);
        assert_eq!(target.uid, pod.metadata.uid);
        assert_eq!(address.node_name, pod.spec.as_ref().unwrap().node_name);
        // StatefulSet pods whose subdomain is the Service get their hostname published.
        assert_eq!(address.hostname, pod.metadata.name);
    }
    let owner = &ep.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), &owner.uid),
        ("Service", svc.metadata.uid.as_ref().unwrap())
    );

    let slices = slices_of(&client, "cache").await;
    assert_eq!(slices.len(), 1, "{slices:?}");
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.labels.as_ref().unwrap()["tier"], "db");
    let slice_port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (slice_port.name.as_deref(), slice_port.port),
        (Some("client"), Some(6379))
    );
    let slice_ips: BTreeSet<String> = slice
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.clone())
        .collect();
    assert_eq!(slice_ips, ips);
    for e in &slice.endpoints {
        let c = e.conditions.as_ref().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(true), Some(true), Some(false))
        );
        assert!(e.node_name.is_some() && e.target_ref.is_some());
    }
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_pod_that_never_gets_ready_is_not_ready_unless_the_service_publishes_not_ready_addresses()
{
    let (sb, client) = start_with_nodes(1).await;
    let pod = pod_manifest(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "slow", "labels": {"app": "slow"}},
        "spec": {"containers": [{"name": "redis", "image": "redis:7",
            "ports": [{"containerPort": 6379}],
            "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1}}]}}));
    let pods = Api::<Pod>::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod).await.unwrap();
    for (name, publish) in [("slow", false), ("slow-all", true)] {
        create_service(
            &client,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"selector": {"app": "slow"}, "publishNotReadyAddresses": publish,
                    "ports": [{"port": 6379}]}}),
        )
        .await;
    }
    let ip = eventually(30, "slow running with an address", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("slow").await.ok()?;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            (running && !pod_ip(&p).is_empty()).then(|| pod_ip(&p))
        }
    })
    .await;
    let api = Api::<Endpoints>::default_namespaced(client.clone());
    let ep = eventually(30, "slow listed as not ready", || {
        let api = api.clone();
        async move {
            api.get("slow")
                .await
                .ok()
                .filter(|e| !not_ready_ips(e).is_empty())
        }
    })
    .await;
    assert_eq!(not_ready_ips(&ep), BTreeSet::from([ip.clone()]));
    assert!(ready_ips(&ep).is_empty());
    let slice = &slices_of(&client, "slow").await[0];
    let c = slice.endpoints[0].conditions.clone().unwrap();
    assert_eq!((c.ready, c.serving), (Some(false), Some(false)));

    let published = endpoints_with(&client, "slow-all", &BTreeSet::from([ip])).await;
    assert!(not_ready_ips(&published).is_empty());
    let slice = &slices_of(&client, "slow-all").await[0];
    assert_eq!(
        slice.endpoints[0].conditions.clone().unwrap().ready,
        Some(true)
    );
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn endpoints_are_not_rewritten_while_nothing_changes_follow_a_deleted_pod_and_go_with_the_service()
 {
    let (sb, client) = start_with_nodes(1).await;
    let pods = Api::<Pod>::default_namespaced(client.clone());
    for name in ["web-a", "web-b"] {
        pods.create(
            &PostParams::default(),
            &common::pod(name, &[("app", "web")]),
        )
        .await
        .unwrap();
    }
    create_service(
        &client,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 6379}]}}),
    )
    .await;
    let running = ready_pods(&client, "app=web", &["web-a", "web-b"], 60).await;
    let ips: BTreeSet<String> = running.iter().map(pod_ip).collect();
    let settled = endpoints_with(&client, "web", &ips).await;
    let slice_before = slices_of(&client, "web").await;
    // The cluster loop runs every 0.2 s at the least; a few seconds of it must not touch
    // objects whose content is already right.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let api = Api::<Endpoints>::default_namespaced(client.clone());
    let again = api.get("web").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        settled.metadata.resource_version
    );
    let slice_after = slices_of(&client, "web").await;
    assert_eq!(
        slice_after[0].metadata.resource_version,
        slice_before[0].metadata.resource_version
    );

    pods.delete("web-b", &DeleteParams::default())
        .await
        .unwrap();
    let left = pod_ip(
        running
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("web-a"))
            .unwrap(),
    );
    endpoints_with(&client, "web", &BTreeSet::from([left])).await;

    Api::<Service>::default_namespaced(client.clone())
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(15, "endpoints and slices gone with the service", || {
        let (api, client) = (api.clone(), client.clone());
        async move {
            let gone = api.get_opt("web").await.ok()?.is_none();
            (gone && slices_of(&client, "web").await.is_empty()).then_some(())
        }
    })
    .await;
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn kubectl_lists_the_endpoints_and_endpointslices_of_a_service() {
    let c = Cluster::start_with_nodes(1).await;
    let client = c.client();
    Api::<Pod>::default_namespaced(client.clone())
        .create(&PostParams::default(), &common::pod("kv", &[("app", "kv")]))
        .await
        .unwrap();
    let manifest = c.write(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: kv\nspec:\n  selector:\n    app: kv\n  ports:\n  - port: 6379\n",
    );
    c.kubectl(&["apply", "-f", &manifest]).await;
    let running = ready_pods(&client, "app=kv", &["kv"], 60).await;
    let ip = pod_ip(&running[0]);
    endpoints_with(&client, "kv", &BTreeSet::from([ip.clone()])).await;
    let out = c
        .kubectl(&[
            "get",
            "endpoints",
            "kv",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}",
        ])
        .await;
    assert_eq!(out, ip);
    let out = c
        .kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=kv",
            "-o",
            "jsonpath={.items[0].endpoints[0].addresses[0]}",
        ])
        .await;
    assert_eq!(out, ip);
    drop(c);
}
