//! `simulate replay FILE`: every record through today's engine, compared with the decision
//! recorded then; `--html` draws the trace, `--spec`/`--set` asks what a changed spec would
//! have done (see `whatif`).

use super::{page, whatif};
use crate::commands::CmdResult;
use engine::invariants::check_decision;
use engine::trace::TraceRecord;
use engine::{Decision, Effect, Phase};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use timeline::{Note, NoteKind};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Trace file (JSON Lines of trace records); `-` reads standard input.
    file: PathBuf,
    /// Print only differences and violations.
    #[arg(long)]
    quiet: bool,
    /// Also write the trace as an HTML timeline to this file (with `--spec`/`--set`: both
    /// timelines, the recorded one and the changed one).
    #[arg(long)]
    html: Option<PathBuf>,
    /// What-if: replay with this RedisCluster manifest's shape instead of the recorded spec.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// What-if: change one field of the recorded spec (`masters=5`, `replicas=2`,
    /// `persistent=true`, `nodeTimeoutMs=3000`, `rebalanceThresholdPct=5`); repeatable.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// What-if: at most this many simulated steps after the first difference (default: as
    /// many records as the trace has left, at least 60).
    #[arg(long)]
    steps: Option<u32>,
}

/// A trace read whole: each record with its line number.
pub(super) struct Trace {
    pub name: String,
    pub records: Vec<TraceRecord>,
    pub lines: Vec<usize>,
}

pub(super) fn read_trace(file: &PathBuf) -> Result<Trace, crate::commands::CmdError> {
    let name = file.display().to_string();
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file).map_err(|e| format!("cannot read {name}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut trace = Trace {
        name: name.clone(),
        records: Vec::new(),
        lines: Vec::new(),
    };
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{name}:{n}: cannot read: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: TraceRecord = serde_json::from_str(&line)
            .map_err(|e| format!("{name}:{n}: not a trace record: {e}"))?;
        trace.records.push(rec);
        trace.lines.push(n);
    }
    Ok(trace)
}

pub(super) fn replay(args: ReplayArgs) -> CmdResult {
    // A changed spec is read first: a bad one is refused before anything is printed.
    let change = whatif::SpecChange::from_args(args.spec.as_deref(), &args.set)?;
    let trace = read_trace(&args.file)?;
    if let Some(change) = change {
        return whatif::run(&trace, &change, args.steps, args.html.as_deref());
    }
    let mut out = std::io::stdout().lock();
    let mut notes = Vec::new();
    let (mut differences, mut violations) = (0u64, 0u64);
    let t0 = trace.records.first().map_or(0, |r| r.time);
    for (i, (rec, &n)) in trace.records.iter().zip(&trace.lines).enumerate() {
        let now = engine::decide(&rec.spec, rec.phase_hint, &rec.observation);
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
            notes.push(note(
                i,
                NoteKind::Difference,
                format!("today's engine: {d}"),
            ));
        }
        // Both the decision made now and the one recorded (perhaps by an older engine).
        for v in check_decision(&rec.spec, &rec.observation, &now) {
            violations += 1;
            writeln!(out, "  VIOLATION at line {n}: {v}")?;
            notes.push(note(i, NoteKind::Difference, format!("unsafe today: {v}")));
        }
        if rec.decision.effects != now.effects {
            for v in check_decision(&rec.spec, &rec.observation, &rec.decision) {
                violations += 1;
                writeln!(out, "  VIOLATION at line {n} (recorded decision): {v}")?;
                notes.push(note(
                    i,
                    NoteKind::Difference,
                    format!("unsafe as recorded: {v}"),
                ));
            }
        }
    }
    writeln!(
        out,
        "{} record(s), {differences} difference(s), {violations} violation(s)",
        trace.records.len()
    )?;
    drop(out);
    if let Some(path) = &args.html {
        let title = format!("Replay of {}", trace.name);
        let tl = timeline::build(&title, &trace.records, notes);
        page::write(path, &title, &[tl])?;
    }
    Ok(if differences == 0 && violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn note(index: usize, kind: NoteKind, text: String) -> Note {
    Note {
        index: index as u32,
        ordinal: None,
        kind,
        text,
    }
}

pub(super) fn arrow(from: Phase, to: Phase) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from} -> {to}")
    }
}

/// One readable line for an effect list: migrations collapsed, the rest as Display.
pub(super) fn describe_effects(effects: &[Effect]) -> String {
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
pub(super) fn difference(recorded: &Decision, now: &Decision) -> Option<String> {
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
