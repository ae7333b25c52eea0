//! Nodes that misbehave, as the adapter sees them: one that never answers, one that answers
//! garbage, one that hangs up mid-command, one that refuses the password, one that is not a
//! cluster node. Each gives a precise error naming the node (never a hang or a panic), and an
//! observation reports it as not observed, which the engine treats as a node it must not touch.
//!
//! The fakes are tiny TCP servers on ephemeral loopback ports; the real servers use ports
//! 19500-19509.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::Addr;
use redis_operator_redis::{AdapterConfig, AdapterError, MemberInfo, RedisAdapter};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn adapter(password: Option<&str>) -> RedisAdapter {
    RedisAdapter::new(AdapterConfig {
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(800),
        password: password.map(str::to_string),
        ..AdapterConfig::default()
    })
}

/// How a fake node treats each connection.
#[derive(Clone, Copy)]
enum Fake {
    /// Reads everything, answers nothing.
    Silent,
    /// Answers every read with bytes that are not RESP.
    Garbage,
    /// Answers every command with a well-formed reply of the wrong kind.
    WrongShape,
    /// Reads the first command, then closes the connection.
    HangsUp,
    /// Answers every command as a Redis without cluster commands would.
    UnknownCommand,
}

async fn fake_node(kind: Fake) -> Addr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, kind));
        }
    });
    Addr::new("127.0.0.1", port)
}

async fn serve(mut stream: TcpStream, kind: Fake) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // One reply per command in what was read (RESP arrays start with `*`).
        let commands = buf[..n].iter().filter(|b| **b == b'*').count().max(1);
        let reply: Vec<u8> = match kind {
            Fake::Silent => continue,
            Fake::Garbage => b"\x00\x01 this is not RESP \xff\r\n".to_vec(),
            Fake::WrongShape => b":42\r\n".repeat(commands),
            Fake::HangsUp => return,
            Fake::UnknownCommand => {
                b"-ERR unknown command 'CLUSTER', with args beginning with: 'NODES'\r\n"
                    .repeat(commands)
            }
        };
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Observes `addr` alone, bounded: a hang fails the test instead of stalling it.
async fn observe(adapter: &RedisAdapter, addr: &Addr) -> Result<engine::NodeState, AdapterError> {
    tokio::time::timeout(Duration::from_secs(30), adapter.observe_node(addr))
        .await
        .expect("observing a misbehaving node must end")
}

async fn observed_as_absent(adapter: &RedisAdapter, addr: &Addr) {
    let members = vec![MemberInfo::new(0, Some(addr.clone()), true)];
    let obs = tokio::time::timeout(Duration::from_secs(30), adapter.observe(members, 1))
        .await
        .expect("an observation must end");
    assert!(obs.members[&0].redis.is_none(), "{obs:?}");
    assert!(
        obs.members[&0].running,
        "the process is still reported as running"
    );
}

#[tokio::test]
async fn a_node_that_never_answers_times_out_and_is_reported_unobserved() {
    let addr = fake_node(Fake::Silent).await;
    let adapter = adapter(None);
    let err = observe(&adapter, &addr).await.expect_err("no answer");
    assert!(matches!(err, AdapterError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{addr} did not answer")),
        "{err}"
    );
    observed_as_absent(&adapter, &addr).await;
}

#[tokio::test]
async fn a_node_that_answers_garbage_is_a_precise_error_and_reported_unobserved() {
    for kind in [Fake::Garbage, Fake::WrongShape] {
        let addr = fake_node(kind).await;
        let adapter = adapter(None);
        let err = observe(&adapter, &addr).await.expect_err("garbage");
        let text = err.to_string();
        assert!(text.starts_with(&addr.to_string()), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        observed_as_absent(&adapter, &addr).await;
    }
}

#[tokio::test]
async fn a_node_that_hangs_up_mid_command_is_unreachable_not_a_hang() {
    let addr = fake_node(Fake::HangsUp).await;
    let adapter = adapter(None);
    let err = observe(&adapter, &addr).await.expect_err("hung up");
    assert!(err.is_connectivity(), "{err:?}");
    observed_as_absent(&adapter, &addr).await;
}

#[tokio::test]
async fn a_server_without_cluster_commands_is_named_as_refusing_them() {
    let addr = fake_node(Fake::UnknownCommand).await;
    let adapter = adapter(None);
    let err = observe(&adapter, &addr)
        .await
        .expect_err("no CLUSTER command");
    let text = err.to_string();
    assert!(text.contains("unknown command"), "{text}");
    assert!(text.starts_with(&addr.to_string()), "{text}");
    observed_as_absent(&adapter, &addr).await;
}

/// A real redis-server on `port`, killed on drop.
struct Server(Child, std::path::PathBuf);

impl Server {
    fn start(port: u16, extra: &[&str]) -> Server {
        assert!(
            (19500..19510).contains(&port),
            "this file owns ports 19500-19509"
        );
        let dir = std::env::temp_dir().join(format!("hostile-nodes-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("/usr/bin/redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        Server(child, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Retries until the server accepts connections (it starts in a few milliseconds).
async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("redis-server on {port} never listened");
}

#[tokio::test]
async fn a_node_that_rejects_the_password_says_so_without_showing_it() {
    let secret = "the-right-secret";
    let _server = Server::start(
        19500,
        &["--cluster-enabled", "yes", "--requirepass", secret],
    );
    wait_listening(19500).await;
    let addr = Addr::new("127.0.0.1", 19500);
    let wrong = "a-wrong-password-42";
    let adapter = adapter(Some(wrong));
    let err = observe(&adapter, &addr).await.expect_err("wrong password");
    let text = err.to_string();
    assert!(matches!(err, AdapterError::AuthRefused { .. }), "{err:?}");
    assert!(text.contains("refused the password"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(secret), "{text}");
    observed_as_absent(&adapter, &addr).await;
    // No password at all: the refusal names the missing authentication.
    let err = observe(&self::adapter(None), &addr)
        .await
        .expect_err("no password");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
}

#[tokio::test]
async fn a_redis_without_cluster_mode_is_named_as_such() {
    let _server = Server::start(19501, &[]);
    wait_listening(19501).await;
    let addr = Addr::new("127.0.0.1", 19501);
    let adapter = adapter(None);
    let err = observe(&adapter, &addr)
        .await
        .expect_err("not a cluster node");
    let text = err.to_string();
    assert!(text.contains("cluster support disabled"), "{text}");
    observed_as_absent(&adapter, &addr).await;
}
