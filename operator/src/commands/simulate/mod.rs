//! `redis-operator simulate …`: seeded random runs of the engine against the in-memory Redis
//! Cluster model, and replay of recorded traces through the current engine (as text, as an
//! HTML timeline, or as a what-if with a changed spec).

mod page;
mod replay;
mod whatif;

use super::CmdResult;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum SimulateCommand {
    /// Run seeded random simulations; exits non-zero on any violation.
    Run(RunArgs),
    /// Feed every record of a JSON Lines trace through the engine and compare decisions.
    Replay(replay::ReplayArgs),
    /// Record a running cluster (local, or on Kubernetes with --namespace or --kubeconfig) as
    /// a trace: observe and decide only; changes nothing.
    Record(super::record::RecordArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// How many seeds to run, starting at `--seed` (100; with `--html`, 1).
    #[arg(long)]
    seeds: Option<u64>,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps with faults and spec changes per seed.
    #[arg(long, default_value_t = sim::SimConfig::default().fault_steps)]
    steps: u32,
    /// Steps allowed to converge once faults stop.
    #[arg(long, default_value_t = sim::SimConfig::default().settle_steps)]
    settle_steps: u32,
    /// Run without faults (spec changes only).
    #[arg(long)]
    no_faults: bool,
    /// At most this many random spec changes per seed.
    #[arg(long, default_value_t = sim::SimConfig::default().max_spec_changes)]
    max_spec_changes: u32,
    /// Directory for the traces of failing seeds.
    #[arg(long, default_value = "target/sim-failures")]
    failure_dir: PathBuf,
    /// Write the run of `--seed` as an HTML timeline to this file (one seed only).
    #[arg(long)]
    html: Option<PathBuf>,
}

pub fn run(cmd: SimulateCommand) -> CmdResult {
    match cmd {
        SimulateCommand::Run(args) => run_seeds(args),
        SimulateCommand::Replay(args) => replay::replay(args),
        SimulateCommand::Record(args) => super::record::record(args),
    }
}

fn run_seeds(args: RunArgs) -> CmdResult {
    let cfg = sim::SimConfig {
        fault_steps: args.steps,
        settle_steps: args.settle_steps,
        faults: !args.no_faults,
        max_spec_changes: args.max_spec_changes,
        failure_dir: args.failure_dir,
        ..sim::SimConfig::default()
    };
    if let Some(out) = &args.html {
        if args.seeds.is_some_and(|n| n != 1) {
            return Err("--html draws one seed: leave out --seeds or pass --seeds 1".into());
        }
        return page::seed_page(args.seed, &cfg, out);
    }
    let end = args.seed.saturating_add(args.seeds.unwrap_or(100));
    let summary = sim::run_many(args.seed..end, &cfg);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}")?;
    for f in &summary.failures {
        writeln!(out, "FAIL {f}")?;
    }
    Ok(if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
