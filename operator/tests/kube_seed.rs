//! The seed's flow on Kubernetes: apply the seed's manifest as written, get a healthy cluster,
//! ask the HTTP API where the nodes are; bad specs are refused and change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use sandboxed::{Env, eventually, pod_addresses, redis_cli};
use serde_json::Value;

const SEED: &str = include_str!("../../examples/seed-cluster.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_manifest_becomes_a_ready_cluster_of_six_real_pods_the_api_points_to() {
    let env = Env::start("seed", 3).await;
    let operator = env.operator(&["--no-leader-election"]);
    env.apply(SEED).await;
    let rc = env
        .wait_condition("cache", "rediscluster1", "Ready", "True", 180)
        .await;
    let status = rc.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Ready"));
    assert_eq!(status.nodes.len(), 6, "{:?}", status.nodes);
    assert_eq!(status.observed_generation, rc.metadata.generation);

    let pods = env.pods("cache", "rediscluster1").await;
    assert_eq!(pods.len(), 6);
    let addrs = pod_addresses(&pods);
    // Host networking: each pod listens on its node's address, on basePort + ordinal.
    let mut ports: Vec<u16> = addrs.iter().map(|a| a.1).collect();
    ports.sort();
    assert_eq!(ports, (10000..10006).collect::<Vec<_>>());
    for p in &pods {
        let st = p.status.as_ref().expect("pod status");
        assert_eq!(
            st.pod_ip, st.host_ip,
            "host networking: the pod's address is its node's"
        );
    }

    // Every pod runs the server this pass is about: Valkey when the sandbox is told to run
    // it (the suite's second pass), else Redis.
    let want_valkey = std::env::var("KUBE_SANDBOX_REDIS_SERVER")
        .is_ok_and(|s| std::path::Path::new(&s).ends_with("valkey-server"));
    for (ip, port) in &addrs {
        let port = port.to_string();
        let (ok, info) = redis_cli(&["-h", ip, "-p", &port, "INFO", "server"]);
        assert!(ok, "INFO server on {ip}:{port}");
        assert_eq!(
            info.contains("server_name:valkey"),
            want_valkey,
            "{ip}:{port} runs the wrong server:\n{info}"
        );
    }

    let (ip, port) = &addrs[0];
    let (ok, out) = redis_cli(&["--cluster", "check", &format!("{ip}:{port}")]);
    assert!(ok && out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(
        !out.contains("[WARNING]") && !out.contains("[ERR]"),
        "{out}"
    );

    let body = eventually(30, "the API lists six nodes", || async {
        let (code, body) = operator.get("/cluster/nodes?clusterName=rediscluster1")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v.as_array()?.len() == 6).then_some(v)
    })
    .await;
    let mut from_api: Vec<(String, u16)> = body
        .as_array()
        .expect("array")
        .iter()
        .map(|n| {
            let keys: Vec<&String> = n.as_object().expect("object").keys().collect();
            assert_eq!(keys, ["ip", "port"], "exactly the seed's shape");
            (
                n["ip"].as_str().expect("ip").to_string(),
                u16::try_from(n["port"].as_u64().expect("port")).expect("u16"),
            )
        })
        .collect();
    from_api.sort();
    assert_eq!(
        from_api, addrs,
        "the API reports where the pods really listen"
    );
    assert_eq!(
        operator.get("/cluster/nodes?clusterName=nope").map(|r| r.0),
        Some(404)
    );
    assert_eq!(operator.get("/cluster/nodes").map(|r| r.0), Some(400));
    assert_eq!(operator.get("/readyz").map(|r| r.0), Some(200));

    let events = env.events("cache", "rediscluster1").await;
    assert!(events.iter().any(|e| e.1 == "PhaseReady"), "{events:?}");
}
