//! The seed's Getting Started, in kube-sandbox: `helm upgrade --install` of the chart brings
//! up the operator (the sandbox runs the workspace's `redis-operator` binary for its image)
//! under the chart's own ServiceAccount and RBAC; the seed's RedisCluster applied with
//! kubectl reaches Ready; the HTTP API answers on the operator pod's address; the audit log
//! shows no 403 for the operator. Then monitoring for real: the chart's Prometheus (Debian's
//! prometheus, with the chart's static discovery since that build has no Kubernetes
//! discovery) scrapes the operator and every exporter sidecar, and each dashboard query is
//! run against it.
//!
//! Needs the `redis-operator` binary beside the test (`cargo nextest run --workspace` builds
//! it), helm and kubectl (`scripts/kube-tools.sh`), prometheus and prometheus-redis-exporter
//! (`scripts/setup.sh`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::eventually;
use common::tools::Cluster;
use common::workloads::{is_ready, pod_ip};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OPERATOR_SA: &str = "system:serviceaccount:redis-operator:redis-operator";

/// GET over HTTP/1.0 (the connection closes after the answer): (status, body).
async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .ok()
        .flatten()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn one_ready_pod(pods: &Api<Pod>, selector: &str, what: &str, secs: u64) -> Pod {
    eventually(secs, what, || async {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .ok()?;
        let ready: Vec<Pod> = list.items.into_iter().filter(is_ready).collect();
        (ready.len() == 1).then(|| ready[0].clone())
    })
    .await
}

#[tokio::test]
async fn helm_install_runs_the_operator_under_its_service_account_and_the_seed_cluster_gets_ready()
{
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/redis-operator");
    assert!(
        std::env::var_os("KUBE_SANDBOX_OPERATOR_BIN").is_some() || bin.is_file(),
        "build the operator first: cargo build --bin redis-operator"
    );
    let c = Cluster::start_with_nodes(3).await;
    let chart = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/redis-operator")
        .display()
        .to_string();
    // Pods share the machine's network in the sandbox: the operator and Prometheus listen on
    // their own pod address rather than 0.0.0.0:9090. Grafana's image cannot run here.
    let base = [
        "upgrade",
        "--install",
        "redis-operator",
        chart.as_str(),
        "--create-namespace",
        "-n",
        "redis-operator",
        "--set",
        "redisOperator.listenHost=$(POD_IP)",
        "--set",
        "prometheus.listenHost=$(POD_IP)",
        "--set",
        "prometheus.discovery=static",
        "--set",
        "prometheus.scrapeInterval=1s",
        "--set",
        "grafana.enabled=false",
    ];
    let out = c.ok("helm", &base).await;
    assert!(out.contains("STATUS: deployed"), "{out}");

    let client = c.client();
    let ns_pods: Api<Pod> = Api::namespaced(client.clone(), "redis-operator");
    let operator = one_ready_pod(
        &ns_pods,
        "app.kubernetes.io/name=redis-operator,app.kubernetes.io/component=operator",
        "the operator pod Ready (/readyz)",
        90,
    )
    .await;
    assert_eq!(
        operator
            .spec
            .as_ref()
            .unwrap()
            .service_account_name
            .as_deref(),
        Some("redis-operator")
    );
    assert_eq!(
        operator.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    let api_addr = format!("{}:9090", pod_ip(&operator));
    let (status, _) = http_get(&api_addr, "/readyz").await.unwrap();
    assert_eq!(status, 200);

    // The seed's Getting Started: kubectl apply of its RedisCluster.
    c.kubectl(&["create", "namespace", "cache"]).await;
    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/seed-cluster.yaml")
        .display()
        .to_string();
    c.kubectl(&["apply", "-f", &seed]).await;
    let rdc: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "cache",
        &kube::api::ApiResource {
            group: "redis.redis".into(),
            version: "v1beta1".into(),
            api_version: "redis.redis/v1beta1".into(),
            kind: "RedisCluster".into(),
            plural: "redisclusters".into(),
        },
    );
    eventually(240, "rediscluster1 Ready", || async {
        let obj = rdc.get("rediscluster1").await.ok()?;
        let conds = obj.data["status"]["conditions"].as_array()?.clone();
        conds
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(())
    })
    .await;

    // The HTTP API through the operator pod's address: the seed's answer shape.
    let (status, body) = http_get(&api_addr, "/cluster/nodes?clusterName=rediscluster1")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let nodes: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(nodes.len(), 6, "{body}");
    for n in &nodes {
        let keys: BTreeSet<&str> = n.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, BTreeSet::from(["ip", "port"]), "{body}");
    }

    // A scale-out under the chart's RBAC: new nodes, slot moves, and the shard labels of the
    // running pods brought to the new layout (`ordinal % masters`).
    c.kubectl(&[
        "patch",
        "rediscluster",
        "rediscluster1",
        "-n",
        "cache",
        "--type=merge",
        "-p",
        r#"{"spec":{"masters":4}}"#,
    ])
    .await;
    eventually(
        240,
        "rediscluster1 Ready with 4 masters and 8 nodes",
        || async {
            let obj = rdc.get("rediscluster1").await.ok()?;
            let st = &obj.data["status"];
            let current = st["observedGeneration"].as_i64() == obj.metadata.generation;
            let ready = st["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let nodes = st["nodes"].as_array()?.len();
            (current && ready && nodes == 8).then_some(())
        },
    )
    .await;
    let cache_pods: Api<Pod> = Api::namespaced(client.clone(), "cache");
    for pod in cache_pods.list(&Default::default()).await.unwrap() {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let ordinal: u32 = labels["redis.redis/ordinal"].parse().unwrap();
        assert_eq!(
            labels.get("redis.redis/shard").map(String::as_str),
            Some((ordinal % 4).to_string().as_str()),
            "pod {:?}",
            pod.metadata.name
        );
    }

    // The operator never met a 403 with the chart's RBAC.
    let audit = c.sb.audit_log();
    let mine: Vec<_> = audit.iter().filter(|e| e.user == OPERATOR_SA).collect();
    assert!(!mine.is_empty(), "the operator acts as its ServiceAccount");
    let refused: Vec<_> = mine.iter().filter(|e| e.code == 403).collect();
    assert!(refused.is_empty(), "403s for the operator: {refused:#?}");
    let used: BTreeSet<String> = mine
        .iter()
        .map(|e| {
            let res = if e.subresource.is_empty() {
                e.resource.clone()
            } else {
                format!("{}/{}", e.resource, e.subresource)
            };
            format!("{} {} {}", e.group, res, e.verb)
        })
        .collect();
    let mut granted = BTreeSet::new();
    let roles = [
        c.kubectl(&["get", "clusterrole", "redis-operator", "-o", "json"])
            .await,
        c.kubectl(&[
            "get",
            "role",
            "-n",
            "redis-operator",
            "redis-operator-leader-election",
            "-o",
            "json",
        ])
        .await,
    ];
    for role in roles {
        let role: Value = serde_json::from_str(&role).unwrap();
        for rule in role["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for v in rule["verbs"].as_array().unwrap() {
                        granted.insert(format!(
                            "{} {} {}",
                            g.as_str().unwrap(),
                            r.as_str().unwrap(),
                            v.as_str().unwrap()
                        ));
                    }
                }
            }
        }
    }
    let ungranted: Vec<_> = used.difference(&granted).collect();
    assert!(
        ungranted.is_empty(),
        "calls outside the chart's RBAC: {ungranted:?}"
    );
    // Creating a cluster exercises most of the rules; deletions and scale-in the rest.
    eprintln!(
        "granted but not used while creating a cluster: {:#?}",
        granted.difference(&used).collect::<Vec<_>>()
    );

    // Monitoring for real: point the chart's Prometheus at the operator and the exporter
    // sidecars (static targets: each exporter is on its pod's address, container port
    // `metrics`), then run every dashboard query.
    let redis_pods: Api<Pod> = Api::namespaced(client.clone(), "cache");
    let pods = redis_pods
        .list(&ListParams::default().labels(
            "app.kubernetes.io/managed-by=redis-operator,app.kubernetes.io/component=redis-node",
        ))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 8, "4 masters x 1 after the scale-out");
    let mut sets: Vec<String> = vec![format!("prometheus.static.operator={{{api_addr}}}")];
    for (i, p) in pods.items.iter().enumerate() {
        let exporter = p
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .find(|c| c.name == "exporter")
            .expect("exporter sidecar");
        let port = exporter
            .ports
            .as_ref()
            .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some("metrics")))
            .expect("metrics port")
            .container_port;
        let labels = p.metadata.labels.clone().unwrap_or_default();
        sets.push(format!(
            "prometheus.static.exporters[{i}].targets={{{}:{port}}}",
            pod_ip(p)
        ));
        for (key, value) in [
            ("namespace", "cache".to_string()),
            ("cluster", labels["app.kubernetes.io/instance"].clone()),
            ("pod", p.metadata.name.clone().unwrap()),
        ] {
            sets.push(format!(
                "prometheus.static.exporters[{i}].labels.{key}={value}"
            ));
        }
    }
    let mut args: Vec<&str> = base.to_vec();
    for s in &sets {
        args.push("--set");
        args.push(s);
    }
    c.ok("helm", &args).await;
    let prom = eventually(90, "Prometheus with the new targets up", || async {
        let list = ns_pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=prometheus"))
            .await
            .ok()?;
        let pod = list.items.into_iter().find(is_ready)?;
        let addr = format!("{}:9090", pod_ip(&pod));
        let (_, body) = http_get(&addr, "/api/v1/targets?state=active").await?;
        let targets: Value = serde_json::from_str(&body).ok()?;
        let active = targets["data"]["activeTargets"].as_array()?;
        let up = active.iter().filter(|t| t["health"] == "up").count();
        // The operator and the 8 nodes' exporters.
        (active.len() == 9 && up == 9).then_some(addr)
    })
    .await;

    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/redis-operator/files/dashboard.json"),
    )
    .unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    // Give rate() two samples of everything.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut report: BTreeMap<String, bool> = BTreeMap::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$namespace", ".*")
                .replace("$cluster", ".*");
            let (status, body) =
                http_get(&prom, &format!("/api/v1/query?query={}", url_encode(&expr)))
                    .await
                    .unwrap();
            assert_eq!(status, 200, "{expr}: {body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["status"], "success", "{expr}: {body}");
            let has_data = answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            report.insert(
                format!("{} :: {}", panel["title"].as_str().unwrap(), expr),
                has_data,
            );
        }
    }
    eprintln!("dashboard queries with data in the sandbox: {report:#?}");
    // What a Ready 3x1 cluster with no traffic must show.
    for must in [
        "Cluster state (1 = ok)",
        "Ready (operator)",
        "Nodes up",
        "Operator is leader",
        "Slots ok / pfail / fail",
        "Known nodes",
        "Memory used / maxmemory",
        "Keys",
        "Connected replicas",
        "Replication offset lag",
        "Masters",
    ] {
        let with_data = report
            .iter()
            .any(|(k, v)| k.starts_with(&format!("{must} ::")) && *v);
        assert!(with_data, "panel {must} has no data: {report:#?}");
    }
}
