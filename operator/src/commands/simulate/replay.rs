//! `simulate replay FILE`: every record through today's engine, compared with the decision
//! recorded then; `--html` draws the trace, `--spec`/`--set` asks what a changed spec would
//! have done (see `whatif`).

use super::{page, whatif};
use crate::commands::CmdResult;
use engine::trace::TraceRecord;
pub(super) use sim::replay::{arrow, describe_effects, difference, record_line};
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
        let Some(rec) = sim::replay::read_record(&line, n).map_err(|e| format!("{name}:{e}"))?
        else {
            continue;
        };
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
        let check = sim::replay::check_record(rec);
        let now = &check.now;
        if !args.quiet {
            writeln!(out, "{}", record_line(rec, now, t0))?;
        }
        if let Some(d) = &check.difference {
            differences += 1;
            writeln!(out, "  DIFFERENCE at line {n}: {d}")?;
            notes.push(note(
                i,
                NoteKind::Difference,
                format!("today's engine: {d}"),
            ));
        }
        for v in &check.unsafe_now {
            violations += 1;
            writeln!(out, "  VIOLATION at line {n}: {v}")?;
            notes.push(note(i, NoteKind::Difference, format!("unsafe today: {v}")));
        }
        for v in &check.unsafe_recorded {
            violations += 1;
            writeln!(out, "  VIOLATION at line {n} (recorded decision): {v}")?;
            notes.push(note(
                i,
                NoteKind::Difference,
                format!("unsafe as recorded: {v}"),
            ));
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
