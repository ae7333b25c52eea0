//! The local backend against real `redis-server` (or `valkey-server`) processes on loopback.
//! Each test owns a block of ports within 12500–12999 (bus ports + 10000 stay below the
//! ephemeral range) and a temp directory; a guard kills every node even when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redis_operator_local::resp::{self, Reply};
use redis_operator_local::{LocalBackend, LocalConfig, LocalError};
use std::path::PathBuf;

struct Guard {
    backend: LocalBackend,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.backend.kill_all_now();
        let _ = std::fs::remove_dir_all(&self.backend.config().dir);
    }
}

fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rol-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A config running the test server: `REDIS_OPERATOR_TEST_SERVER` when set (scripts/test.sh
/// points it at Valkey for its second run), else `redis-server` from PATH.
fn config(test: &str, dir: impl Into<PathBuf>, base_port: u16) -> LocalConfig {
    match std::env::var_os("REDIS_OPERATOR_TEST_SERVER").filter(|p| !p.is_empty()) {
        Some(server) => LocalConfig::with_server(test, dir, base_port, server.into()),
        None => LocalConfig::new(test, dir, base_port).unwrap(),
    }
}

fn backend(test: &str, base_port: u16) -> (LocalBackend, Guard) {
    let mut cfg = config(test, temp_dir(test), base_port);
    cfg.node_timeout_ms = 2000;
    let b = LocalBackend::new(cfg).unwrap();
    (b.clone(), Guard { backend: b })
}

async fn text(addr: &str, password: Option<&str>, args: &[&str]) -> String {
    match resp::command(addr, password, args).await.unwrap() {
        Reply::Text(t) => t,
        other => panic!("{args:?} on {addr}: {other:?}"),
    }
}

async fn wait_cluster_ok(addr: &str, pw: Option<&str>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text(addr, pw, &["CLUSTER", "INFO"])
        .await
        .contains("cluster_state:ok")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "cluster never became ok"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn starting_a_node_makes_it_answer_ping_on_base_port_plus_its_ordinal() {
    let (b, _g) = backend("ping", 12500);
    let info = b.ensure_running(1).await.unwrap();
    assert_eq!(info.addr.to_string(), "127.0.0.1:12501");
    assert!(info.running);
    assert_eq!(text("127.0.0.1:12501", None, &["PING"]).await, "PONG");
    assert_eq!(
        text("127.0.0.1:12501", None, &["CLUSTER", "INFO"])
            .await
            .lines()
            .next(),
        Some("cluster_state:fail")
    );
    let members = b.members().unwrap();
    assert_eq!(members.keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(members[&1].pid, info.pid);
    let node_dir = b.config().node_dir(1);
    for f in ["redis.conf", "nodes.conf", "redis.pid", "redis.log"] {
        assert!(node_dir.join(f).is_file(), "{f} missing");
    }
    b.destroy().await.unwrap();
    assert!(!b.config().dir.exists());
}

#[tokio::test]
async fn a_killed_node_shows_not_running_and_restarts_with_the_same_node_id() {
    let (b, _g) = backend("restart", 12510);
    let first = b.ensure_running(0).await.unwrap();
    let id_before = text("127.0.0.1:12510", None, &["CLUSTER", "MYID"]).await;
    let pid = first.pid.unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while b.members().unwrap()[&0].running {
        assert!(
            std::time::Instant::now() < deadline,
            "still reported running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(b.members().unwrap()[&0].pid, None);
    let second = b.ensure_running(0).await.unwrap();
    assert_ne!(second.pid, first.pid);
    assert_eq!(
        text("127.0.0.1:12510", None, &["CLUSTER", "MYID"]).await,
        id_before
    );
    b.destroy().await.unwrap();
}

#[tokio::test]
async fn a_second_backend_on_the_same_dir_adopts_running_nodes_without_restarting_them() {
    let (b, _g) = backend("adopt", 12520);
    let started = [
        b.ensure_running(0).await.unwrap(),
        b.ensure_running(2).await.unwrap(),
    ];
    let other = LocalBackend::new(b.config().clone()).unwrap();
    let seen = other.members().unwrap();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
    assert!(seen.values().all(|m| m.running));
    assert_eq!(seen[&0].pid, started[0].pid);
    assert_eq!(seen[&2].pid, started[1].pid);
    let again = other.ensure_running(2).await.unwrap();
    assert_eq!(
        again.pid, started[1].pid,
        "an adopted node must not be restarted"
    );
    other.destroy().await.unwrap();
}

#[tokio::test]
async fn deleting_a_member_stops_its_process_and_keeps_its_directory_until_its_data_is_deleted() {
    let (b, _g) = backend("delete", 12530);
    let keep = b.ensure_running(0).await.unwrap();
    let gone = b.ensure_running(1).await.unwrap();
    b.delete(1).await.unwrap();
    assert!(b.config().node_dir(1).join("nodes.conf").exists());
    assert!(!b.members().unwrap()[&1].running);
    b.delete_data(1).await.unwrap();
    assert!(!b.config().node_dir(1).exists());
    assert!(
        !std::path::Path::new(&format!("/proc/{}", gone.pid.unwrap())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", gone.pid.unwrap()))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
    );
    assert!(
        resp::command("127.0.0.1:12531", None, &["PING"])
            .await
            .is_err()
    );
    assert_eq!(b.members().unwrap()[&0].pid, keep.pid);
    b.delete(1).await.expect("deleting twice is fine");
    b.delete_data(1)
        .await
        .expect("deleting the data twice is fine");
    b.destroy().await.unwrap();
}

#[tokio::test]
async fn a_busy_port_gives_an_error_that_says_so() {
    let (b, _g) = backend("busy", 12540);
    let _squatter = std::net::TcpListener::bind("127.0.0.1:12540").unwrap();
    let err = b.ensure_running(0).await.unwrap_err();
    assert!(matches!(err, LocalError::PortInUse { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("127.0.0.1:12540 is already in use"),
        "{err}"
    );
    assert!(!b.members().unwrap()[&0].running);
}

#[tokio::test]
async fn a_missing_redis_server_binary_is_refused_with_its_path() {
    let mut cfg = config("nobin", temp_dir("nobin"), 12550);
    cfg.redis_server = "/nonexistent/redis-server".into();
    let err = LocalBackend::new(cfg).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/redis-server"),
        "{err}"
    );
}

#[tokio::test]
async fn stop_all_keeps_node_ids_and_keys_for_the_next_start_even_with_a_password() {
    let dir = temp_dir("stopall");
    let mut cfg = config("stopall", &dir, 12560);
    cfg.password = Some("hunter2".into());
    let b = LocalBackend::new(cfg).unwrap();
    let _g = Guard { backend: b.clone() };
    b.ensure_running(0).await.unwrap();
    let addr = "127.0.0.1:12560";
    let pw = Some("hunter2");
    assert!(
        resp::command(addr, None, &["PING"]).await.is_err(),
        "password not enforced"
    );
    let id = text(addr, pw, &["CLUSTER", "MYID"]).await;
    // A lone cluster node refuses keys in slots it does not own, so it takes them all.
    text(addr, pw, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !text(addr, pw, &["CLUSTER", "INFO"])
        .await
        .contains("cluster_state:ok")
    {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    text(addr, pw, &["SET", "k", "v"]).await;
    b.stop_all().await.unwrap();
    assert!(!b.members().unwrap()[&0].running);
    b.ensure_running(0).await.unwrap();
    assert_eq!(text(addr, pw, &["CLUSTER", "MYID"]).await, id);
    wait_cluster_ok(addr, pw).await;
    assert_eq!(text(addr, pw, &["GET", "k"]).await, "v");
    b.destroy().await.unwrap();
}

#[tokio::test]
async fn replacing_a_member_restarts_it_with_the_new_configuration_keeping_its_id_and_persistent_keys()
 {
    let dir = temp_dir("replace");
    let mut cfg = config("replace", &dir, 12570);
    cfg.appendonly = true;
    let b = LocalBackend::new(cfg.clone()).unwrap();
    let _g = Guard { backend: b.clone() };
    let first = b.ensure_running(0).await.unwrap();
    assert_eq!(first.fingerprint, Some(cfg.fingerprint()));
    let addr = "127.0.0.1:12570";
    let id = text(addr, None, &["CLUSTER", "MYID"]).await;
    text(addr, None, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).await;
    wait_cluster_ok(addr, None).await;
    text(addr, None, &["SET", "k", "v"]).await;

    let mut next = cfg.clone();
    next.extra_config
        .insert("latency-tracking".into(), "no".into());
    assert_ne!(next.fingerprint(), cfg.fingerprint());
    let second = b.replace(0, &next).await.unwrap();
    assert_ne!(second.pid, first.pid);
    assert_eq!(
        b.members().unwrap()[&0].fingerprint,
        Some(next.fingerprint())
    );
    let conf = std::fs::read_to_string(b.config().node_dir(0).join("redis.conf")).unwrap();
    assert!(conf.contains("latency-tracking no\n"), "{conf}");
    assert_eq!(text(addr, None, &["CLUSTER", "MYID"]).await, id);
    wait_cluster_ok(addr, None).await;
    assert_eq!(text(addr, None, &["GET", "k"]).await, "v");
    b.destroy().await.unwrap();
}
