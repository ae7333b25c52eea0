//! `redis-operator local soak`: a local cluster of real server processes (run by `local up`,
//! a child process) under seeded chaos.

use super::client::{Endpoints, SlotTags};
use super::cluster::{self, MAX_NODES, SoakCluster};
use super::driver::{Soak, run_chaos};
use super::{CmdError, CmdResult, Ending, HEAL_LIMIT, conclude, preflight, say, server_version};
use crate::commands::local_state::{load_saved, server_binary};
use sim::rng::Rng;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// What every soak is asked: how long, which seed, how hard the client writes, where to work.
#[derive(clap::Args)]
pub struct ChaosArgs {
    /// How long operations are started for, in minutes; the final wait and checks follow.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub minutes: u64,
    /// Seed of every random choice (operation, target, delay): the same seed makes the same
    /// choices, though a real cluster's timing still differs from run to run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Working directory (operator.log; locally also the manifest and the nodes' state).
    /// Default: a new one under the system's temp dir, deleted after a run that passed.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Writes per second of the verifying client, at most.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=50000))]
    pub write_rate: u32,
    /// Keep the working directory after a run that passed (and the stopped nodes' data
    /// locally, the RedisCluster on Kubernetes).
    #[arg(long)]
    pub keep: bool,
}

impl ChaosArgs {
    /// The working directory, created; refused when `marker` shows an earlier soak's there.
    pub(super) fn work_dir(&self, kind: &str, marker: &str) -> Result<PathBuf, CmdError> {
        let work = match &self.dir {
            Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
            None => {
                std::env::temp_dir().join(format!("redis-operator-{kind}-{}", std::process::id()))
            }
        };
        if work.join(marker).exists() {
            return Err(format!(
                "{} already holds a soak's cluster; remove it or choose another --dir",
                work.display()
            )
            .into());
        }
        std::fs::create_dir_all(&work)
            .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        Ok(work)
    }
}

#[derive(clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub chaos: ChaosArgs,
    /// Client port of node 0; the soak uses up to 18 ports from here (bus ports + 10000).
    #[arg(long, default_value_t = 20000, value_parser = clap::value_parser!(u16).range(1024..=55517))]
    pub base_port: u16,
    /// The server binary the nodes run (see `local up --server-binary`).
    #[arg(long, value_name = "PATH")]
    pub server_binary: Option<PathBuf>,
    /// The servers' log level (`loglevel`), e.g. `verbose` to see every epoch collision and
    /// slot hand-over in `state/node-*/redis.log`.
    #[arg(long, value_parser = ["debug", "verbose", "notice", "warning"])]
    pub server_loglevel: Option<String>,
}

pub async fn run(args: SoakArgs) -> CmdResult {
    preflight()?;
    let work = args.chaos.work_dir("soak", "state")?;
    let password = std::env::var("REDIS_OPERATOR_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let epoch = Instant::now();
    let mut soak = Soak {
        c: SoakCluster::new(&work, args.base_port, args.server_binary.clone()),
        rng: Rng::new(args.chaos.seed),
        endpoints: Endpoints::new(
            (0..MAX_NODES).map(|o| format!("127.0.0.1:{}", args.base_port + o)),
            password.as_deref(),
        ),
        tags: SlotTags::default(),
        epoch,
    };
    soak.c.settings.server_loglevel = args.server_loglevel.clone();
    say(&format!(
        "soak: seed {}, {} min, ports {}-{} (bus +10000), working directory {}",
        args.chaos.seed,
        args.chaos.minutes,
        args.base_port,
        args.base_port + MAX_NODES - 1,
        work.display()
    ));
    soak.c.write_manifest()?;
    soak.c.start_operator()?;
    let result = soak_for(&mut soak, &args, password).await;
    let keep = args.chaos.keep || !matches!(result, Ok(true));
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
    soak: &mut Soak<SoakCluster>,
    args: &SoakArgs,
    password: Option<String>,
) -> Result<bool, CmdError> {
    let start = Instant::now();
    if soak.wait_healthy(start, HEAL_LIMIT, None).await?.is_none() {
        return Err("the cluster did not become ready at the start (see operator.log)".into());
    }
    let server = local_server_version(&soak.c)?;
    say(&format!(
        "{server} ready (3 masters x 1 replica) after {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    // Whatever happened, the client's writes are read back and the cluster checked.
    let run = run_chaos(soak, &args.chaos).await?;
    let check_port = soak
        .c
        .nodes()
        .await?
        .iter()
        .find(|n| n.master)
        .map(|n| args.base_port + n.ordinal as u16)
        .unwrap_or(args.base_port);
    let endpoints = soak.endpoints.clone();
    conclude(
        run.writer,
        &endpoints,
        Ending {
            server,
            seed: args.chaos.seed,
            write_rate: args.chaos.write_rate,
            minutes_run: soak.epoch.elapsed().as_secs_f64() / 60.0,
            episodes: run.episodes,
            chaos: run.outcome,
            settled: run.settled,
            check_addr: format!("127.0.0.1:{check_port}"),
            password,
        },
    )
    .await
}

/// The server the local nodes run, with its version.
fn local_server_version(c: &SoakCluster) -> Result<String, CmdError> {
    let (dir, cluster) = load_saved(&crate::commands::local::NameArgs {
        name: cluster::NAME.into(),
        dir: Some(c.state()),
    })?;
    server_version(&server_binary(&cluster, &dir)?)
}
