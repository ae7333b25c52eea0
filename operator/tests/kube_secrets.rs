//! A password from a Secret never shows on Kubernetes: a cluster guarded by one goes through
//! creation (3 x 1), a scale-out to 4 x 1 with keys to move, a master's pod killed and failed
//! over, the password rotated, and an invalid edit (`Invalid` and a Warning event), and then
//! every Event of the namespace, the RedisCluster object, the namespace's Pods, StatefulSets,
//! Services and ConfigMaps, every HTTP answer of the operator (metrics and errors included),
//! its log at debug level and every container log the sandbox kept are searched for both
//! passwords and their base64 forms. basePort 16600 (ports 16600-16607, bus 26600-26607).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use sandboxed::{Env, eventually, redis_cli, strip_ansi};
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const FIRST: &str = "kube-s3cret-first-4e1a9c";
const SECOND: &str = "kube-s3cret-second-b72d05";
const NS: &str = "secrets";
const NAME: &str = "hidden";

fn manifest() -> String {
    format!(
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {NAME}\n  namespace: {NS}\nspec:\n  masters: 3\n  replicas: 1\n  basePort: 16600\n  clusterNodeTimeoutMs: 2000\n  passwordSecret:\n    name: redis-auth\n"
    )
}

/// The raw answer (status line, headers, body) to one request on the operator's HTTP API.
fn http_raw(port: u16, method: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the API listens");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Every `*.log` under `dir` (the sandbox's container logs, previous runs included).
fn logs_under(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            logs_under(&path, out);
        } else if path.extension().is_some_and(|x| x == "log") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            out.push((format!("container log {}", path.display()), text));
        }
    }
}

/// Whether every node answers PING with `password`.
fn all_answer(addrs: &[(String, u16)], password: &str) -> bool {
    addrs.iter().all(|(h, p)| {
        let port = p.to_string();
        let args = ["--no-auth-warning", "-a", password, "-h", h, "-p", &port];
        redis_cli(&[&args[..], &["ping"]].concat())
            .1
            .contains("PONG")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_from_a_secret_never_shows_in_events_status_metrics_http_answers_or_logs() {
    let started = Instant::now();
    let env = Env::start("secrets", 3).await;
    let mut operator = env.operator_logging(&["--no-leader-election"], "debug");
    env.namespace(NS).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NS);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"},
        "stringData": {"password": FIRST}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");

    // Creation, then keys to move, then a scale-out.
    env.apply(&manifest()).await;
    let addrs = env.wait_shape(NS, NAME, 3, 6, 180).await;
    assert!(all_answer(&addrs, FIRST), "the nodes take the password");
    let urls: Vec<String> = addrs
        .iter()
        .map(|(ip, port)| format!("redis://:{FIRST}@{ip}:{port}"))
        .collect();
    let mut client = redis::cluster::ClusterClient::builder(urls)
        .retries(20)
        .build()
        .unwrap()
        .get_connection()
        .expect("a cluster connection with the password");
    sandboxed::load_keys(&mut client, "k", 1_000);
    drop(client);
    env.patch_spec(NS, NAME, json!({"masters": 4})).await;
    env.wait_shape(NS, NAME, 4, 8, 240).await;

    // A master's pod killed: its replica takes over, the pod comes back as a new node.
    let rc = env.clusters(NS).get(NAME).await.unwrap();
    let victim = rc
        .status
        .unwrap()
        .nodes
        .into_iter()
        .find(|n| n.role == "master")
        .expect("a master");
    let pod = env
        .pods(NS, NAME)
        .await
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(victim.ip.as_str()))
        .and_then(|p| p.metadata.name)
        .expect("the master's pod");
    match env.sandbox_for("killing a container") {
        Some(sandbox) => sandbox
            .workload_faults()
            .kill_container(NS, &pod, Some("redis")),
        None => {
            Api::<Pod>::namespaced(env.client.clone(), NS)
                .delete(&pod, &Default::default())
                .await
                .expect("pod deleted");
        }
    }
    eventually(
        120,
        "the killed master's id gone from the status",
        || async {
            let st = env.clusters(NS).get(NAME).await.ok()?.status?;
            (st.nodes.len() == 8 && st.nodes.iter().all(|n| n.node_id != victim.node_id))
                .then_some(())
        },
    )
    .await;
    let addrs = env.wait_shape(NS, NAME, 4, 8, 180).await;

    // The password rotated.
    secrets
        .patch(
            "redis-auth",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"password": SECOND}})),
        )
        .await
        .expect("secret rotated");
    eventually(60, "every node takes the new password", || async {
        all_answer(&addrs, SECOND).then_some(())
    })
    .await;

    // An invalid edit: two masters, and a key the Secret does not have.
    env.patch_spec(
        NS,
        NAME,
        json!({"masters": 2, "passwordSecret": {"key": "nope"}}),
    )
    .await;
    let rc = env.wait_condition(NS, NAME, "Invalid", "True", 60).await;
    let invalid = rc
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Invalid")
        .unwrap();
    assert!(
        invalid.message.contains("spec.masters") && invalid.message.contains("spec.passwordSecret"),
        "{invalid:?}"
    );
    eventually(20, "a warning event about the edit", || async {
        env.events(NS, NAME)
            .await
            .iter()
            .any(|(t, _, note)| t == "Warning" && note.contains("spec.passwordSecret"))
            .then_some(())
    })
    .await;
    env.patch_spec(
        NS,
        NAME,
        json!({"masters": 4, "passwordSecret": {"key": null}}),
    )
    .await;
    let addrs = env.wait_shape(NS, NAME, 4, 8, 120).await;
    assert!(all_answer(&addrs, SECOND));

    // Everything a user (or a log collector) can see.
    let mut seen: Vec<(String, String)> = Vec::new();
    let core: Api<Event> = Api::namespaced(env.client.clone(), NS);
    let events = core.list(&ListParams::default()).await.unwrap().items;
    for e in &events {
        seen.push((
            format!("core Event {}", e.metadata.name.clone().unwrap_or_default()),
            serde_json::to_string(e).unwrap(),
        ));
    }
    let new_api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), NS);
    for e in new_api.list(&ListParams::default()).await.unwrap().items {
        seen.push((
            format!(
                "events.k8s.io Event {}",
                e.metadata.name.clone().unwrap_or_default()
            ),
            serde_json::to_string(&e).unwrap(),
        ));
    }
    let rc = env.clusters(NS).get(NAME).await.unwrap();
    seen.push((
        "the RedisCluster".into(),
        serde_json::to_string(&rc).unwrap(),
    ));
    let pods = Api::<Pod>::namespaced(env.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    for p in &pods {
        seen.push((
            format!("Pod {}", p.metadata.name.clone().unwrap_or_default()),
            serde_json::to_string(p).unwrap(),
        ));
    }
    for s in Api::<StatefulSet>::namespaced(env.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        seen.push(("a StatefulSet".into(), serde_json::to_string(&s).unwrap()));
    }
    for s in Api::<Service>::namespaced(env.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        seen.push(("a Service".into(), serde_json::to_string(&s).unwrap()));
    }
    for c in Api::<ConfigMap>::namespaced(env.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        seen.push(("a ConfigMap".into(), serde_json::to_string(&c).unwrap()));
    }
    let q = format!("clusterName={NAME}&namespace={NS}");
    for (method, path) in [
        ("GET", format!("/cluster/nodes?clusterName={NAME}")),
        ("GET", format!("/cluster/nodes?{q}")),
        ("GET", format!("/cluster/nodes/detail?{q}")),
        ("GET", "/cluster/nodes?clusterName=nope".into()),
        ("GET", "/cluster/nodes".into()),
        ("GET", "/cluster/nodes?clusterName=%FF".into()),
        ("GET", "/metrics".into()),
        ("GET", "/healthz".into()),
        ("GET", "/readyz".into()),
        ("GET", "/no/such/path".into()),
        ("POST", format!("/cluster/nodes?{q}")),
    ] {
        seen.push((
            format!("{method} {path}"),
            http_raw(operator.port, method, &path),
        ));
    }
    assert!(operator.stop(), "the operator stops cleanly");
    seen.push(("the operator log".into(), operator.log_text()));
    let mut logs = Vec::new();
    match &env.sandbox {
        Some(_) => logs_under(&env.dir.join("workloads"), &mut logs),
        None => {
            let api = Api::<Pod>::namespaced(env.client.clone(), NS);
            for p in &pods {
                let name = p.metadata.name.clone().unwrap_or_default();
                for previous in [false, true] {
                    let lp = LogParams {
                        previous,
                        ..LogParams::default()
                    };
                    if let Ok(text) = api.logs(&name, &lp).await {
                        logs.push((format!("log of {name} (previous: {previous})"), text));
                    }
                }
            }
        }
    }
    seen.extend(logs.iter().cloned());

    // The search means something only if each place holds what it should.
    let text_of = |what: &str| {
        &seen
            .iter()
            .find(|(w, _)| w == what)
            .unwrap_or_else(|| panic!("nothing captured as {what}"))
            .1
    };
    let about_us: Vec<&Event> = events
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(NAME))
        .collect();
    assert!(
        about_us.len() >= 4
            && about_us
                .iter()
                .any(|e| e.type_.as_deref() == Some("Warning"))
            && about_us
                .iter()
                .all(|e| e.message.as_deref().is_some_and(|m| !m.is_empty())),
        "events about the cluster, a warning among them, each with a note: {about_us:?}"
    );
    assert_eq!(
        serde_json::to_value(&rc.spec.password_secret).unwrap(),
        json!({"name": "redis-auth"}),
        "the spec only names the Secret"
    );
    let status = rc.status.as_ref().expect("a status");
    assert!(
        status.nodes.len() == 8 && status.conditions.len() >= 2,
        "{status:?}"
    );
    let from_secret = |p: &Pod| {
        let redis = p
            .spec
            .as_ref()?
            .containers
            .iter()
            .find(|c| c.name == "redis")?;
        let var = redis
            .env
            .as_ref()?
            .iter()
            .find(|v| v.name == "REDIS_PASSWORD")?;
        let r = var.value_from.as_ref()?.secret_key_ref.as_ref()?;
        (var.value.is_none() && r.name == "redis-auth" && r.key == "password").then_some(())
    };
    assert!(
        pods.len() == 8 && pods.iter().all(|p| from_secret(p).is_some()),
        "every pod reads the password from the Secret"
    );
    let metrics = text_of("GET /metrics");
    for series in [
        "redis_operator_cluster_ready{",
        "redis_operator_migrated_keys_total{",
        "redis_operator_effects_total{",
    ] {
        assert!(
            metrics.contains(series),
            "no {series} in the metrics:\n{metrics}"
        );
    }
    assert!(text_of(&format!("GET /cluster/nodes/detail?{q}")).contains("\"role\""));
    assert!(text_of(&format!("GET /cluster/nodes?clusterName={NAME}")).contains("\"port\""));
    assert!(text_of("GET /cluster/nodes?clusterName=nope").starts_with("HTTP/1.1 404"));
    assert!(text_of("GET /cluster/nodes").starts_with("HTTP/1.1 400"));
    assert!(text_of(&format!("POST /cluster/nodes?{q}")).starts_with("HTTP/1.1 405"));
    let log = text_of("the operator log");
    assert!(
        log.contains("DEBUG") && log.contains("password changed on the running nodes"),
        "a debug log that saw the rotation"
    );
    assert!(
        logs.len() >= 8
            && logs
                .iter()
                .filter(|(_, t)| t.contains("Ready to accept connections"))
                .count()
                >= 8,
        "a server log per node: {:?}",
        logs.iter().map(|(w, t)| (w, t.len())).collect::<Vec<_>>()
    );

    let b64 = |s: &str| {
        serde_json::to_value(ByteString(s.as_bytes().to_vec()))
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    let needles = [
        FIRST.to_string(),
        SECOND.to_string(),
        b64(FIRST),
        b64(SECOND),
    ];
    for (place, text) in &seen {
        let text = strip_ansi(text);
        for needle in &needles {
            assert!(!text.contains(needle.as_str()), "{place} shows {needle}");
        }
    }
    let reasons: Vec<&str> = about_us
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .collect();
    println!(
        "searched {} places in {:.0} s: {} events ({} about the cluster: {reasons:?}), {} \
         container logs, an operator log of {} lines, {} bytes of metrics",
        seen.len(),
        started.elapsed().as_secs_f64(),
        events.len(),
        about_us.len(),
        logs.len(),
        log.lines().count(),
        metrics.len(),
    );
}
