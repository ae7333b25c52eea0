//! `redis-operator simulate …`: seeded random runs of the engine against the in-memory Redis
//! Cluster model, and replay of recorded traces through the current engine.

use super::CmdResult;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum SimulateCommand {
    /// Run seeded random simulations; exits non-zero on any violation.
    Run(RunArgs),
    /// Feed every record of a JSON Lines trace through the engine and compare decisions.
    Replay(ReplayArgs),
    /// Record a running local cluster as a trace (observe and decide only; changes nothing).
    Record(super::local::RecordArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// How many seeds to run, starting at `--seed`.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
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
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Trace file (JSON Lines of trace records); `-` reads standard input.
    file: PathBuf,
    /// Print only differences and violations.
    #[arg(long)]
    quiet: bool,
}

pub fn run(cmd: SimulateCommand) -> CmdResult {
    match cmd {
        SimulateCommand::Run(args) => run_seeds(args),
        SimulateCommand::Replay(args) => replay(args),
        SimulateCommand::Record(args) => super::local::record(args),
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
    let end = args.seed.saturating_add(args.seeds);
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

fn replay(args: ReplayArgs) -> CmdResult {
    let name = args.file.display().to_string();
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&args.file).map_err(|e| format!("cannot read {name}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = std::io::stdout().lock();
    let summary = sim::replay::replay(reader, &mut out, args.quiet).map_err(|e| match e {
        sim::replay::ReplayError::Write(e) => e.to_string(),
        e => format!("{name}:{e}"),
    })?;
    Ok(if summary.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
