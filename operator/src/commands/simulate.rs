//! `redis-operator simulate …`: seeded random runs of the engine against the in-memory Redis
//! Cluster model, and replay of recorded traces through the current engine.

use super::CmdResult;
use engine::invariants::check_decision;
use engine::trace::TraceRecord;
use engine::{Decision, Effect, Phase};
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

/// One readable line for an effect list: migrations collapsed, the rest as Display.
fn describe_effects(effects: &[Effect]) -> String {
    if effects.is_empty() {
        return "nothing to do".to_string();
    }
    let shown: Vec<String> = effects.iter().take(4).map(ToString::to_string).collect();
    let more = effects.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (+{more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// The first way two decisions differ, said briefly; `None` when they are the same.
fn difference(recorded: &Decision, now: &Decision) -> Option<String> {
    if recorded.phase != now.phase {
        return Some(format!(
            "phase {} recorded, {} now",
            recorded.phase, now.phase
        ));
    }
    if recorded.effects != now.effects {
        let i = recorded
            .effects
            .iter()
            .zip(&now.effects)
            .position(|(a, b)| a != b)
            .unwrap_or(recorded.effects.len().min(now.effects.len()));
        let show = |e: Option<&Effect>| e.map_or("(none)".to_string(), ToString::to_string);
        return Some(format!(
            "effect {} differs: recorded {}, now {} ({} recorded, {} now)",
            i + 1,
            show(recorded.effects.get(i)),
            show(now.effects.get(i)),
            recorded.effects.len(),
            now.effects.len()
        ));
    }
    if recorded.conditions != now.conditions {
        return Some("conditions differ".to_string());
    }
    if recorded.requeue_ms != now.requeue_ms {
        return Some(format!(
            "requeue {:?} recorded, {:?} now",
            recorded.requeue_ms, now.requeue_ms
        ));
    }
    if recorded.summary != now.summary {
        return Some(format!(
            "summary {:?} recorded, {:?} now",
            recorded.summary, now.summary
        ));
    }
    None
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
    let (mut records, mut differences, mut violations) = (0u64, 0u64, 0u64);
    let mut start: Option<u64> = None;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{name}:{n}: cannot read: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: TraceRecord = serde_json::from_str(&line)
            .map_err(|e| format!("{name}:{n}: not a trace record: {e}"))?;
        records += 1;
        let t0 = *start.get_or_insert(rec.time);
        let now = engine::decide(&rec.spec, rec.phase_hint, &rec.observation);
        let arrow = |from: Phase, to: Phase| {
            if from == to {
                from.to_string()
            } else {
                format!("{from} -> {to}")
            }
        };
        if !args.quiet {
            writeln!(
                out,
                "t={}ms {}: {}",
                rec.time.saturating_sub(t0),
                arrow(rec.phase_hint, now.phase),
                describe_effects(&now.effects)
            )?;
        }
        if let Some(d) = difference(&rec.decision, &now) {
            differences += 1;
            writeln!(out, "  DIFFERENCE at line {n}: {d}")?;
        }
        // Both the decision made now and the one recorded (perhaps by an older engine).
        for v in check_decision(&rec.spec, &rec.observation, &now) {
            violations += 1;
            writeln!(out, "  VIOLATION at line {n}: {v}")?;
        }
        if rec.decision.effects != now.effects {
            for v in check_decision(&rec.spec, &rec.observation, &rec.decision) {
                violations += 1;
                writeln!(out, "  VIOLATION at line {n} (recorded decision): {v}")?;
            }
        }
    }
    writeln!(
        out,
        "{records} record(s), {differences} difference(s), {violations} violation(s)"
    )?;
    Ok(if differences == 0 && violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
