//! `local up --record FILE` on a password-protected cluster of real redis-server processes
//! (127.0.0.1:19200-19205, bus ports 29200-29205): the trace replays, never holds the
//! password, and the log written to a pipe carries no ANSI colour codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::trace::TraceRecord;
use std::path::PathBuf;
use std::process::{Command, Output};

const SECRET: &str = "tr4ce-s3cret-9f1c";

struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_redis-operator"))
            .args(args)
            .current_dir(&self.dir)
            .env("REDIS_OPERATOR_PASSWORD", SECRET)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .output()
            .expect("redis-operator runs")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let state = self.dir.join("state").to_string_lossy().into_owned();
        let _ = self.run(&[
            "local", "down", "--name", "recorded", "--dir", &state, "--purge",
        ]);
        if let Ok(entries) = std::fs::read_dir(self.dir.join("state")) {
            for e in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("redis.pid")) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn local_up_records_a_replayable_trace_without_the_password_and_logs_to_a_pipe_without_colour() {
    let dir = std::env::temp_dir().join(format!("rop-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let c = Cluster { dir: dir.clone() };
    std::fs::write(
        dir.join("cluster.yaml"),
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: recorded\n\
         spec:\n  masters: 3\n  replicas: 1\n  basePort: 19200\n  maxMemory: 128mb\n  \
         clusterNodeTimeoutMs: 2000\n  passwordSecret:\n    name: auth\n    key: password\n",
    )
    .unwrap();
    let trace = dir.join("trace.jsonl");
    let state = dir.join("state").to_string_lossy().into_owned();
    let out = c.run(&[
        "local",
        "up",
        "-f",
        "cluster.yaml",
        "--dir",
        &state,
        "--listen",
        "off",
        "--until-ready",
        "--ready-timeout",
        "120",
        "--record",
        trace.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "local up failed: {stderr}");

    // The nodes really require the password (so it was in play while recording).
    let denied = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "19200", "PING"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&denied.stdout).contains("NOAUTH"));

    let text = std::fs::read_to_string(&trace).unwrap();
    let records: Vec<TraceRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is a trace record"))
        .collect();
    assert!(records.len() >= 3, "{} record(s)", records.len());
    assert!(
        records.last().unwrap().decision.phase == engine::Phase::Ready,
        "the last pass saw a ready cluster"
    );
    assert!(!text.contains(SECRET), "the trace holds the password");
    let replay = c.run(&["simulate", "replay", trace.to_str().unwrap(), "--quiet"]);
    assert!(
        String::from_utf8_lossy(&replay.stdout).contains("0 violation(s)"),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
    let page = dir.join("trace.html");
    let html = c.run(&[
        "simulate",
        "replay",
        trace.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert!(page.exists(), "{}", String::from_utf8_lossy(&html.stderr));
    assert!(!std::fs::read_to_string(&page).unwrap().contains(SECRET));

    // The log went to a pipe: plain text, no escape sequences.
    assert!(stderr.contains("INFO"), "local up logs at info: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in a piped log: {stderr:?}"
    );
}
