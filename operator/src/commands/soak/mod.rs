//! `redis-operator local soak`: a local cluster of real server processes under seeded chaos
//! for a bounded time, with a client writing and reading back throughout. Operations, one at
//! a time: scale (masters 3-6, replicas 0-2), a configuration change that needs a rolling
//! replacement and one applied live, SIGKILL of a master or a replica, SIGSTOP of a node past
//! the node timeout, SIGKILL of the operator (alone, or in the middle of a migration or a
//! rolling replacement). After each: the time until every slot takes writes again and until
//! the cluster is healthy. At the end: every acknowledged write read back, each lost one blamed
//! on the window it was written in, `redis-cli --cluster check`, and a table.

mod client;
mod cluster;
mod ops;
mod report;

use super::local_state::{load_saved, server_binary};
use super::{CmdError, CmdResult};
use client::{Endpoints, Writer, verify};
use cluster::{MAX_NODES, SoakCluster, cluster_check};
use report::{Episode, Totals, failures, render};
use sim::rng::Rng;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long operations are started for, in minutes; the final wait and checks follow.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub minutes: u64,
    /// Seed of every random choice (operation, target, delay): the same seed makes the same
    /// choices, though a real cluster's timing still differs from run to run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Client port of node 0; the soak uses up to 18 ports from here (bus ports + 10000).
    #[arg(long, default_value_t = 20000, value_parser = clap::value_parser!(u16).range(1024..=55517))]
    pub base_port: u16,
    /// Working directory (manifest, state, operator.log). Default: a new one under the
    /// system's temp dir, deleted after a run that passed.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The server binary the nodes run (see `local up --server-binary`).
    #[arg(long, value_name = "PATH")]
    pub server_binary: Option<PathBuf>,
    /// Writes per second of the verifying client, at most.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=50000))]
    pub write_rate: u32,
    /// Keep the working directory (and the stopped nodes' data) after a run that passed.
    #[arg(long)]
    pub keep: bool,
}

/// How long a cluster may take to become healthy after an operation before the soak calls it
/// stuck. Generous: a scale-out moves every key written so far on a shared 2-core machine.
const HEAL_LIMIT: Duration = Duration::from_secs(600);

/// No operation starts this close to the end: the last one should end near it.
const LAST_START: Duration = Duration::from_secs(15);

pub async fn run(args: SoakArgs) -> CmdResult {
    preflight()?;
    let work = match &args.dir {
        Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
        None => std::env::temp_dir().join(format!("redis-operator-soak-{}", std::process::id())),
    };
    if work.join("state").exists() {
        return Err(format!(
            "{} already holds a soak's cluster; remove it or choose another --dir",
            work.display()
        )
        .into());
    }
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let password = std::env::var("REDIS_OPERATOR_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let epoch = Instant::now();
    let mut soak = ops::Soak {
        c: SoakCluster::new(&work, args.base_port, args.server_binary.clone()),
        rng: Rng::new(args.seed),
        endpoints: Endpoints::new(
            (0..MAX_NODES).map(|o| args.base_port + o),
            password.as_deref(),
        ),
        tags: client::SlotTags::default(),
        epoch,
    };
    say(&format!(
        "soak: seed {}, {} min, ports {}-{} (bus +10000), working directory {}",
        args.seed,
        args.minutes,
        args.base_port,
        args.base_port + MAX_NODES - 1,
        work.display()
    ));
    soak.c.write_manifest()?;
    soak.c.start_operator()?;
    let result = soak_for(&mut soak, &args, password.as_deref()).await;
    let keep = args.keep || !matches!(result, Ok(true));
    if let Err(e) = soak.c.teardown(keep).await {
        eprintln!("warning: stopping the soak's cluster: {e}");
    }
    if keep {
        say(&format!(
            "kept {} (operator.log, state/node-*/redis.log)",
            work.display()
        ));
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    match result {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::FAILURE),
        Err(e) => Err(e),
    }
}

/// The run itself, after the operator started: `Ok(passed)`.
async fn soak_for(
    soak: &mut ops::Soak,
    args: &SoakArgs,
    password: Option<&str>,
) -> Result<bool, CmdError> {
    let start = Instant::now();
    if soak.wait_healthy(start, HEAL_LIMIT, None).await?.is_none() {
        return Err("the cluster did not become ready at the start (see operator.log)".into());
    }
    let version = server_version(soak)?;
    say(&format!(
        "{version} ready (3 masters x 1 replica) after {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    let writer = Writer::start(
        soak.endpoints.clone(),
        soak.epoch,
        args.write_rate,
        soak.rng.next_u64(),
    );
    let deadline = soak.epoch + Duration::from_secs(args.minutes * 60);
    let mut episodes: Vec<Episode> = Vec::new();
    let chaos = chaos(soak, &writer, deadline, &mut episodes).await;

    // Whatever happened, the client's writes are read back and the cluster checked.
    let end = Instant::now();
    let settled = soak.wait_healthy(end, HEAL_LIMIT, None).await?;
    say(&format!(
        "end: {}",
        match settled {
            Some(_) => format!(
                "healthy {:.1} s after the last operation",
                end.elapsed().as_secs_f64()
            ),
            None => "NOT healthy".into(),
        }
    ));
    let log = writer.stop();
    let endpoints = soak.endpoints.clone();
    let acked = log.acked.clone();
    let lost = tokio::task::spawn_blocking(move || verify(&endpoints, &acked))
        .await
        .map_err(|e| format!("reading the writes back: {e}"))?
        .ok_or("the acknowledged writes could not be read back")?;
    let check_port = soak
        .c
        .nodes()
        .await?
        .iter()
        .find(|n| n.master)
        .map(|n| args.base_port + n.ordinal as u16)
        .unwrap_or(args.base_port);
    let totals = Totals {
        acked_writes: log.acked.len() as u64,
        write_attempts: log.attempts,
        read_checks: log.read_checks,
        lost,
        wrong_reads: log.wrong_reads,
        check: Some(cluster_check(check_port, password)),
    };
    let acked_at: Vec<u64> = log.acked.iter().map(|&(_, t)| t).collect();
    say("");
    say(&format!(
        "soak of {:.1} min, seed {}, {version}, writes at most {}/s:",
        soak.epoch.elapsed().as_secs_f64() / 60.0,
        args.seed,
        args.write_rate
    ));
    say(&render(&episodes, &totals, &acked_at));
    let mut reasons = failures(&episodes, &totals);
    if settled.is_none() {
        reasons.push("the cluster was not healthy at the end".into());
    }
    if let Err(e) = chaos {
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

/// Operations, one after the other, until the deadline; stops at the first one the cluster
/// does not heal from.
async fn chaos(
    soak: &mut ops::Soak,
    writer: &Writer,
    deadline: Instant,
    episodes: &mut Vec<Episode>,
) -> Result<(), CmdError> {
    while Instant::now() + LAST_START < deadline {
        if let Some(status) = soak.c.operator_exited() {
            return Err(
                format!("`local up` exited on its own ({status}); see operator.log").into(),
            );
        }
        let op = soak.choose();
        let e = soak.run(op).await?;
        say(&format!(
            "[{:>7.1} s] {} | acked writes so far: {}",
            e.start_ms as f64 / 1000.0,
            ops::describe(&e),
            writer.acked()
        ));
        let stuck = e.healthy_ms.is_none();
        episodes.push(e);
        if stuck {
            return Err("the cluster did not heal from the last operation".into());
        }
        let pause = soak.rng.range(500, 3_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Ok(())
}

/// Everything the soak needs from the machine, checked before anything starts.
fn preflight() -> Result<(), CmdError> {
    Command::new("redis-cli")
        .arg("--version")
        .output()
        .map_err(|e| format!("redis-cli is needed for the final `--cluster check`: {e}"))?;
    Ok(())
}

/// `redis-server 7.0.15` or `valkey-server 8.1.8`, from the binary the nodes run.
fn server_version(soak: &ops::Soak) -> Result<String, CmdError> {
    let (dir, cluster) = load_saved(&super::local::NameArgs {
        name: cluster::NAME.into(),
        dir: Some(soak.c.state()),
    })?;
    let binary = server_binary(&cluster, &dir)?;
    let out = Command::new(&binary)
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
