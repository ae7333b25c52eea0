//! Recording on Kubernetes, in kube-sandbox with real redis-server pods (basePort 13050,
//! ports 13050-13057, bus ports 23050-23057): `run --record DIR` traces a password-protected
//! cluster scaling out 3 -> 4 masters, and `simulate record` traces the same cluster from
//! outside; both traces replay through today's engine without a difference, draw as a page,
//! and hold the password nowhere (nor does the operator's log).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use engine::trace::TraceRecord;
use engine::{Effect, Phase};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use sandboxed::{Env, bin, redis_cli};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "k8s-tr4ce-s3cret-7d2a";
const NS: &str = "rec";
const NAME: &str = "traced";

fn manifest() -> String {
    format!(
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {NAME}\n  namespace: {NS}\nspec:\n  masters: 3\n  replicas: 1\n  basePort: 13050\n  clusterNodeTimeoutMs: 2000\n  passwordSecret:\n    name: redis-auth\n"
    )
}

fn cli(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("redis-operator runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn records(path: &Path) -> Vec<TraceRecord> {
    let body = std::fs::read_to_string(path).unwrap();
    assert!(
        !body.contains(SECRET),
        "{} holds the password",
        path.display()
    );
    body.lines()
        .map(|l| serde_json::from_str(l).expect("every line is a trace record"))
        .collect()
}

/// `simulate replay` finds today's engine deciding exactly what was recorded, and the page
/// it draws has a lane for each of the 8 nodes and holds no password.
fn replays_and_draws(trace: &Path, count: usize) {
    let p = trace.to_str().unwrap();
    let replay = cli(&["simulate", "replay", p, "--quiet"]);
    let summary = text(&replay.stdout);
    assert!(replay.status.success(), "{summary}{}", text(&replay.stderr));
    assert!(
        summary.contains(&format!(
            "{count} record(s), 0 difference(s), 0 violation(s)"
        )),
        "{summary}"
    );
    let page = trace.with_extension("html");
    let html = cli(&["simulate", "replay", p, "--html", page.to_str().unwrap()]);
    assert!(html.status.success(), "{}", text(&html.stderr));
    let body = std::fs::read_to_string(&page).expect("the page is written");
    assert!(!body.contains(SECRET), "the page holds the password");
    let data: serde_json::Value =
        serde_json::from_str(timeline::embedded(&body).expect("the page embeds its data")).unwrap();
    let lanes: Vec<u64> = data[0]["lanes"]
        .as_array()
        .expect("lanes")
        .iter()
        .filter_map(|l| l["o"].as_u64())
        .collect();
    assert_eq!(lanes, (0..8).collect::<Vec<u64>>(), "a lane per node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_cluster_scaling_out_is_recorded_by_the_operator_and_from_outside_replayably_and_without_the_password()
 {
    let env = Env::start("record", 3).await;
    let dir = env.dir.join("traces");
    let mut operator = env.operator(&["--no-leader-election", "--record", dir.to_str().unwrap()]);
    env.namespace(NS).await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"},
        "stringData": {"password": SECRET}
    }))
    .unwrap();
    Api::<Secret>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    env.apply(&manifest()).await;
    env.wait_shape(NS, NAME, 3, 6, 180).await;
    env.patch_spec(NS, NAME, json!({"masters": 4})).await;
    let addrs = env.wait_shape(NS, NAME, 4, 8, 240).await;
    let (host, port) = (&addrs[0].0, addrs[0].1.to_string());
    let (_, pong) = redis_cli(&["-h", host, "-p", &port, "ping"]);
    assert!(
        pong.contains("NOAUTH"),
        "the nodes require the password: {pong}"
    );

    // From outside, while the operator runs: the same members, password and spec, decided and
    // not acted on.
    let outside = env.dir.join("outside.jsonl");
    let recorded = cli(&[
        "simulate",
        "record",
        "--kubeconfig",
        env.kubeconfig.to_str().unwrap(),
        "--namespace",
        NS,
        "--name",
        NAME,
        "-o",
        outside.to_str().unwrap(),
        "--samples",
        "3",
        "--interval-ms",
        "200",
    ]);
    let stderr = text(&recorded.stderr);
    assert!(recorded.status.success(), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let seen = records(&outside);
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(r.spec.masters, 4);
        assert_eq!(r.observation.members.len(), 8);
        assert!(
            r.observation.members.values().all(|m| m.redis.is_some()),
            "a node was not observed (the password was not used?)"
        );
    }
    let last = &seen[2].decision;
    assert!(
        last.phase == Phase::Ready && last.effects.is_empty(),
        "{:?}: {}",
        last.phase,
        last.summary
    );
    replays_and_draws(&outside, 3);

    // The operator's own trace, complete once it stopped.
    assert!(operator.stop(), "the operator stops cleanly");
    let trace = dir.join(NS).join(format!("{NAME}.jsonl"));
    let passes = records(&trace);
    assert!(
        passes.iter().any(|r| r.decision.phase == Phase::ScalingOut
            && r.decision
                .effects
                .iter()
                .any(|e| matches!(e, Effect::MigrateSlots { .. }))),
        "the scale-out's migrations are in the trace"
    );
    assert!(
        passes
            .iter()
            .any(|r| r.decision.phase == Phase::Bootstrapping),
        "the creation is in the trace"
    );
    replays_and_draws(&trace, passes.len());
    assert!(
        !operator.log_text().contains(SECRET),
        "the operator's log holds the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_a_cluster_that_does_not_exist_is_one_line_and_writes_no_file() {
    let env = Env::start("record-missing", 0).await;
    let out = env.dir.join("none.jsonl");
    let run = cli(&[
        "simulate",
        "record",
        "--kubeconfig",
        env.kubeconfig.to_str().unwrap(),
        "--namespace",
        "nowhere",
        "--name",
        "ghost",
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        ["error: RedisCluster nowhere/ghost does not exist"],
        "{stderr}"
    );
    assert!(!out.exists(), "a trace file was written");
}

#[test]
fn recording_without_a_reachable_api_server_is_one_line_naming_it() {
    let dir = std::env::temp_dir().join(format!("rop-record-noapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let port = sandboxed::free_port();
    std::fs::write(
        &kubeconfig,
        kube_sandbox::kubeconfig_yaml(&format!("http://127.0.0.1:{port}"), None),
    )
    .unwrap();
    let out = dir.join("none.jsonl");
    let run = cli(&[
        "simulate",
        "record",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--name",
        "any",
        "-o",
        out.to_str().unwrap(),
    ]);
    let written = out.exists();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("error: reach the API server: "),
        "{stderr}"
    );
    assert!(!written, "a trace file was written");
}
