//! What a pod's process sees: configMap files at remapped paths, secrets in its
//! environment, emptyDir directories, and the node's address with hostNetwork.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::eventually;
use common::workloads::*;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;

async fn redis_cli(ip: &str, port: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-h", ip, "-p", port])
        .args(args)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn ready(api: &Api<Pod>, name: &str) -> Pod {
    eventually(30, &format!("{name} Ready"), || {
        let api = api.clone();
        let name = name.to_string();
        async move { api.get(&name).await.ok().filter(is_ready) }
    })
    .await
}

#[tokio::test]
async fn a_config_file_from_a_config_map_a_secret_password_and_an_empty_dir_reach_redis() {
    let (sb, client) = start_with_nodes(1).await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "conf"},
        "data": {"redis.conf": "port 6390\nappendonly yes\n"}}))
    .unwrap();
    Api::<ConfigMap>::default_namespaced(client.clone())
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "auth"},
        "stringData": {"password": "s3cret"}}))
    .unwrap();
    Api::<Secret>::default_namespaced(client.clone())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "configured"},
        "spec": {"containers": [{"name": "redis", "image": "docker.io/library/redis:7.2",
            "command": ["redis-server"],
            "args": ["/etc/redis/redis.conf", "--dir", "/scratch", "--requirepass", "$(PASSWORD)"],
            "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "auth", "key": "password"}}}],
            "volumeMounts": [
                {"name": "conf", "mountPath": "/etc/redis"},
                {"name": "scratch", "mountPath": "/scratch"},
            ]}],
            "volumes": [
                {"name": "conf", "configMap": {"name": "conf"}},
                {"name": "scratch", "emptyDir": {}},
            ]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    let running = ready(&api, "configured").await;
    let ip = pod_ip(&running);
    let pong = eventually(10, "redis on 6390 with the password", || {
        let ip = ip.clone();
        async move {
            let out = redis_cli(&ip, "6390", &["-a", "s3cret", "--no-auth-warning", "ping"]).await;
            (out == "PONG").then_some(out)
        }
    })
    .await;
    assert_eq!(pong, "PONG");
    let dir = redis_cli(
        &ip,
        "6390",
        &["-a", "s3cret", "--no-auth-warning", "config", "get", "dir"],
    )
    .await;
    assert!(
        dir.lines()
            .nth(1)
            .is_some_and(|d| d.ends_with("/volumes/scratch")),
        "{dir}"
    );
    let aof = redis_cli(
        &ip,
        "6390",
        &[
            "-a",
            "s3cret",
            "--no-auth-warning",
            "config",
            "get",
            "appendonly",
        ],
    )
    .await;
    assert_eq!(aof.lines().nth(1), Some("yes"), "the config file was read");
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_host_network_pod_takes_its_nodes_address() {
    let (sb, client) = start_with_nodes(1).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "host"},
        "spec": {"hostNetwork": true, "containers": [{"name": "redis", "image": "redis:7",
            "args": ["--port", "6391"], "ports": [{"containerPort": 6391}]}]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    let running = ready(&api, "host").await;
    let status = running.status.clone().unwrap();
    assert_eq!(status.pod_ip, status.host_ip);
    let ip = pod_ip(&running);
    let pong = eventually(10, "redis on the node address", || {
        let ip = ip.clone();
        async move {
            let out = redis_cli(&ip, "6391", &["ping"]).await;
            (out == "PONG").then_some(out)
        }
    })
    .await;
    assert_eq!(pong, "PONG");
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_app_container_and_share_its_volumes() {
    let (sb, client) = start_with_nodes(1).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "staged"},
        "spec": {
            "initContainers": [
                {"name": "one", "image": "redis:7", "command": ["sh", "-c", "echo 'port 6392' > /conf/redis.conf"],
                    "volumeMounts": [{"name": "conf", "mountPath": "/conf"}]},
                {"name": "two", "image": "redis:7", "command": ["sh", "-c", "test -f /conf/redis.conf"],
                    "volumeMounts": [{"name": "conf", "mountPath": "/conf"}]},
            ],
            "containers": [{"name": "redis", "image": "redis:7", "args": ["/conf/redis.conf"],
                "volumeMounts": [{"name": "conf", "mountPath": "/conf"}]}],
            "volumes": [{"name": "conf", "emptyDir": {}}]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    let running = ready(&api, "staged").await;
    let status = running.status.clone().unwrap();
    let inits = status.init_container_statuses.unwrap();
    assert_eq!(inits.len(), 2);
    for s in &inits {
        let done = s.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (done.exit_code, done.reason.as_deref()),
            (0, Some("Completed")),
            "{}",
            s.name
        );
    }
    let ip = pod_ip(&running);
    let pong = eventually(10, "redis on the port the init container wrote", || {
        let ip = ip.clone();
        async move {
            let out = redis_cli(&ip, "6392", &["ping"]).await;
            (out == "PONG").then_some(out)
        }
    })
    .await;
    assert_eq!(pong, "PONG");
    sb.stop().await.unwrap();
}

#[tokio::test]
async fn a_pod_waits_for_a_missing_config_map_and_starts_once_it_exists() {
    let (sb, client) = start_with_nodes(1).await;
    let api = Api::<Pod>::default_namespaced(client.clone());
    let pod = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "patient"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7",
            "volumeMounts": [{"name": "conf", "mountPath": "/conf"}]}],
            "volumes": [{"name": "conf", "configMap": {"name": "late"}}]}}),
    );
    api.create(&PostParams::default(), &pod).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let waiting = api.get("patient").await.unwrap();
    assert!(!is_ready(&waiting));
    assert_eq!(
        waiting.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "late"}, "data": {"a": "1"}})).unwrap();
    Api::<ConfigMap>::default_namespaced(client.clone())
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    ready(&api, "patient").await;
    sb.stop().await.unwrap();
}
