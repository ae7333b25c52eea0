//! Chaos soaks: a Redis Cluster run by the operator under seeded chaos for a bounded time,
//! with a client writing and reading back throughout; after each operation the time until
//! every slot takes writes again and until the cluster is healthy; at the end every
//! acknowledged write read back, each lost one blamed on the window it was written in,
//! `redis-cli --cluster check`, and a table.
//!
//! - `redis-operator local soak` ([`local`]): real server processes run by `local up`.
//!   Operations, one at a time: scale (masters 3-6, replicas 0-2), a configuration change
//!   that needs a rolling replacement and one applied live, SIGKILL of a master or a
//!   replica, SIGSTOP of a node past the node timeout, SIGKILL of the operator (alone, or in
//!   the middle of a migration or a rolling replacement), and scales that lose the source of
//!   a move mid-move (SIGKILLed or frozen past the node timeout).
//! - `redis-operator kube soak` ([`kube`]): pods in kube-sandbox run by `redis-operator run`.
//!   The same changes made by patching the `RedisCluster`, pods deleted (also the pod of a
//!   move's source mid-move), an emulated node killed, the API server cut off, the operator
//!   SIGKILLed.
//!
//! Shared: the writer and its verification ([`client`]), health ([`health`]), the driver of
//! operations ([`driver`]), the blame and the table ([`report`]).

mod client;
mod cluster;
mod driver;
mod health;
pub mod kube;
pub mod local;
mod ops;
mod report;
mod settings;

use super::{CmdError, CmdResult};
use client::{Endpoints, Writer, verify};
use report::{Episode, Totals, failures, render};
use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

pub use local::{SoakArgs, run};

/// How long a cluster may take to become healthy after an operation before the soak calls it
/// stuck. Generous: a scale-out moves every key written so far on a shared 2-core machine.
const HEAL_LIMIT: Duration = Duration::from_secs(600);

/// No operation starts this close to the end: the last one should end near it.
const LAST_START: Duration = Duration::from_secs(15);

/// What a soak hands over once its operations are done, to be read back, checked and
/// reported the same way for every kind of cluster.
struct Ending {
    /// `redis-server 7.0.15` or `valkey-server 8.1.8`.
    server: String,
    seed: u64,
    write_rate: u32,
    minutes_run: f64,
    episodes: Vec<Episode>,
    /// How the operations ended: `Err` when the soak stopped early.
    chaos: Result<(), CmdError>,
    /// The cluster was healthy after the last operation.
    settled: bool,
    /// Where `redis-cli --cluster check` runs (`host:port` of a master).
    check_addr: String,
    password: Option<String>,
}

/// Stops the writer, reads every acknowledged write back, runs `redis-cli --cluster check`,
/// prints the report and the verdict: `Ok(passed)`.
async fn conclude(writer: Writer, endpoints: &Endpoints, end: Ending) -> Result<bool, CmdError> {
    let log = writer.stop();
    let endpoints = endpoints.clone();
    let acked = log.acked.clone();
    let lost = tokio::task::spawn_blocking(move || verify(&endpoints, &acked))
        .await
        .map_err(|e| format!("reading the writes back: {e}"))?
        .ok_or("the acknowledged writes could not be read back")?;
    let totals = Totals {
        acked_writes: log.acked.len() as u64,
        write_attempts: log.attempts,
        read_checks: log.read_checks,
        lost,
        wrong_reads: log.wrong_reads,
        check: Some(health::cluster_check(
            &end.check_addr,
            end.password.as_deref(),
        )),
    };
    let acked_at: Vec<u64> = log.acked.iter().map(|&(_, t)| t).collect();
    say("");
    say(&format!(
        "soak of {:.1} min, seed {}, {}, writes at most {}/s:",
        end.minutes_run, end.seed, end.server, end.write_rate
    ));
    say(&render(&end.episodes, &totals, &acked_at));
    let mut reasons = failures(&end.episodes, &totals);
    if !end.settled {
        reasons.push("the cluster was not healthy at the end".into());
    }
    if let Err(e) = end.chaos {
        reasons.push(format!("the soak stopped early: {e}"));
    }
    match &totals.check {
        Some(Ok(())) => say("redis-cli --cluster check: clean"),
        Some(Err(text)) => say(&format!("redis-cli --cluster check:\n{text}")),
        None => {}
    }
    for r in &reasons {
        say(&format!("FAIL: {r}"));
    }
    if reasons.is_empty() {
        say("PASS");
    }
    Ok(reasons.is_empty())
}

/// Everything a soak needs from the machine, checked before anything starts.
/// A command running this very binary with its output appended to `<work>/operator.log`: the
/// soak starts (and restarts) the operator with it. On Linux it runs `/proc/self/exe`, the
/// running program itself, so a rebuild of the binary during a long soak neither breaks the
/// restarts nor mixes two builds in one run.
fn operator_command(work: &std::path::Path, rust_log: &str) -> Result<Command, CmdError> {
    let own = std::path::Path::new("/proc/self/exe");
    let exe = if own.exists() {
        own.to_path_buf()
    } else {
        std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?
    };
    let log_path = work.join("operator.log");
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))
    };
    let mut cmd = Command::new(exe);
    cmd.env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(open()?)
        .stderr(open()?);
    Ok(cmd)
}

fn preflight() -> Result<(), CmdError> {
    Command::new("redis-cli")
        .arg("--version")
        .output()
        .map_err(|e| format!("redis-cli is needed for the final `--cluster check`: {e}"))?;
    Ok(())
}

/// `redis-server 7.0.15` or `valkey-server 8.1.8`, from `binary --version`.
fn server_version(binary: &std::path::Path) -> Result<String, CmdError> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or("?");
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!("{name} {version}"))
}

/// One line on stdout, at once (the soak's output is its report).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
