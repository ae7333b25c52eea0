//! `local up --record FILE` on a password-protected cluster of real redis-server processes
//! (127.0.0.1:19200-19207, bus ports 29200-29207): the trace replays, never holds the
//! password, and the log written to a pipe carries no ANSI colour codes; `local status`
//! shows a slot bar per master; on a terminal (a pty from util-linux `script`) `local up`
//! redraws its block in place.
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

    // The log went to a pipe: plain text, no escape sequences, the phase and the slot bars.
    assert!(stderr.contains("INFO"), "local up logs at info: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in a piped log: {stderr:?}"
    );
    assert!(stderr.contains("[Bootstrapping]"), "{stderr}");
    assert!(
        stderr.contains("  #0   127.0.0.1:19200"),
        "a bar for #0: {stderr}"
    );

    let status = c.run(&["local", "status", "--name", "recorded", "--dir", &state]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bars: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains(" slots ") && l.contains('%'))
        .collect();
    assert_eq!(bars.len(), 3, "a bar per master: {shown}");
    let total: u32 = bars
        .iter()
        .map(|l| {
            let before = l.split(" slots ").next().unwrap();
            before.rsplit(' ').next().unwrap().parse::<u32>().unwrap()
        })
        .sum();
    assert_eq!(total, 16384, "{shown}");
    assert!(shown.contains("████"), "{shown}");

    // On a terminal: scaled to 4 masters, `local up` redraws its block in place (cursor up,
    // clear) and ends with four bars.
    let scale = c.run(&[
        "local",
        "scale",
        "--name",
        "recorded",
        "--dir",
        &state,
        "--masters",
        "4",
    ]);
    assert!(
        scale.status.success(),
        "{}",
        String::from_utf8_lossy(&scale.stderr)
    );
    let up = format!(
        "{} local up -f cluster.yaml --dir {state} --listen off --until-ready --ready-timeout 120",
        env!("CARGO_BIN_EXE_redis-operator")
    );
    let tty = Command::new("script")
        .args(["-q", "-e", "-c", &up, "/dev/null"])
        .current_dir(&dir)
        .env("REDIS_OPERATOR_PASSWORD", SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .expect("util-linux script runs");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(
        screen.contains("F\u{1b}[J"),
        "the block is redrawn in place: {screen:?}"
    );
    assert!(screen.contains("[ScalingOut]"), "{screen}");
    let last_block = screen.rsplit("\u{1b}[J").next().unwrap();
    let four: Vec<&str> = last_block
        .lines()
        .filter(|l| l.contains(" slots "))
        .collect();
    assert_eq!(four.len(), 4, "four bars at the end: {last_block}");
    assert!(
        !last_block.contains("migrating:"),
        "no stale progress once ready: {last_block}"
    );
}
