//! Replay of a recorded trace through the current engine: the reader behind
//! `redis-operator simulate replay`, here so that the CLI and the fuzz targets run one
//! definition of it.

use engine::invariants::check_decision;
use engine::trace::TraceRecord;
use engine::{Decision, Effect, Phase};
use std::io::{BufRead, Write};

/// What a replay found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub records: u64,
    pub differences: u64,
    pub violations: u64,
}

impl ReplaySummary {
    /// Every record decided as recorded, and safely.
    pub fn clean(&self) -> bool {
        self.differences == 0 && self.violations == 0
    }
}

/// Why a replay stopped. Each names the 1-based line it stopped at.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{line}: cannot read: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error("{line}: not a trace record: {source}")]
    Record {
        line: usize,
        source: serde_json::Error,
    },
    #[error("{line}: the spec asks for {nodes} nodes; no valid spec has more than {max}", max = engine::Desired::MAX_NODES)]
    TooManyNodes { line: usize, nodes: u32 },
    #[error("cannot write the replay: {0}")]
    Write(#[from] std::io::Error),
}

/// One line of a trace as a record: `None` for a blank line; an error naming the line for
/// anything that is not a record, or a record no valid spec could produce (the engine would
/// plan billions of nodes for it).
pub fn read_record(text: &str, line: usize) -> Result<Option<TraceRecord>, ReplayError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let rec: TraceRecord =
        serde_json::from_str(text).map_err(|source| ReplayError::Record { line, source })?;
    let nodes = rec.spec.total_nodes();
    if nodes > engine::Desired::MAX_NODES {
        return Err(ReplayError::TooManyNodes { line, nodes });
    }
    Ok(Some(rec))
}

/// What today's engine makes of one record.
pub struct RecordCheck {
    /// Today's decision.
    pub now: Decision,
    /// How it differs from the recorded one, if it does.
    pub difference: Option<String>,
    /// Invariants today's decision breaks.
    pub unsafe_now: Vec<String>,
    /// Invariants the recorded decision broke (perhaps an older engine's), when it differs.
    pub unsafe_recorded: Vec<String>,
}

/// Decides `rec` again and checks both decisions against the engine's invariants.
pub fn check_record(rec: &TraceRecord) -> RecordCheck {
    let now = engine::decide(&rec.spec, rec.phase_hint, &rec.observation);
    let difference = difference(&rec.decision, &now);
    let unsafe_now = check_decision(&rec.spec, &rec.observation, &now)
        .iter()
        .map(ToString::to_string)
        .collect();
    let unsafe_recorded = if rec.decision.effects != now.effects {
        check_decision(&rec.spec, &rec.observation, &rec.decision)
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        Vec::new()
    };
    RecordCheck {
        now,
        difference,
        unsafe_now,
        unsafe_recorded,
    }
}

/// Feeds every record of a JSON Lines trace through the engine, writing one line per record
/// (unless `quiet`) and a line for each difference from the recorded decision and each
/// invariant the decision breaks; the last line is the summary. Blank lines are skipped.
pub fn replay(
    reader: impl BufRead,
    out: &mut impl Write,
    quiet: bool,
) -> Result<ReplaySummary, ReplayError> {
    let mut sum = ReplaySummary::default();
    let mut start: Option<u64> = None;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|source| ReplayError::Read { line: n, source })?;
        let Some(rec) = read_record(&line, n)? else {
            continue;
        };
        sum.records += 1;
        let t0 = *start.get_or_insert(rec.time);
        let check = check_record(&rec);
        if !quiet {
            writeln!(out, "{}", record_line(&rec, &check.now, t0))?;
        }
        if let Some(d) = &check.difference {
            sum.differences += 1;
            writeln!(out, "  DIFFERENCE at line {n}: {d}")?;
        }
        for v in &check.unsafe_now {
            sum.violations += 1;
            writeln!(out, "  VIOLATION at line {n}: {v}")?;
        }
        for v in &check.unsafe_recorded {
            sum.violations += 1;
            writeln!(out, "  VIOLATION at line {n} (recorded decision): {v}")?;
        }
    }
    writeln!(
        out,
        "{} record(s), {} difference(s), {} violation(s)",
        sum.records, sum.differences, sum.violations
    )?;
    Ok(sum)
}

/// One record as a line: its time since `t0`, the phase it went from and to, and what
/// `decision` (recorded or made today) did.
pub fn record_line(rec: &TraceRecord, decision: &Decision, t0: u64) -> String {
    format!(
        "t={}ms {}: {}",
        rec.time.saturating_sub(t0),
        arrow(rec.phase_hint, decision.phase),
        describe_effects(&decision.effects)
    )
}

/// `from -> to`, or just the phase when it stays.
pub fn arrow(from: Phase, to: Phase) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from} -> {to}")
    }
}

/// One readable line for an effect list: migrations collapsed, the rest as Display.
pub fn describe_effects(effects: &[Effect]) -> String {
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
pub fn difference(recorded: &Decision, now: &Decision) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn first_record() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/traces/bootstrap.jsonl"
        );
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().next().unwrap_or_default().to_string()
    }

    #[test]
    fn a_committed_record_replays_with_one_line_and_a_summary() {
        let mut out = Vec::new();
        let sum = replay(first_record().as_bytes(), &mut out, false).expect("replays");
        assert_eq!(sum.records, 1);
        assert!(sum.clean(), "{}", String::from_utf8_lossy(&out));
        let out = String::from_utf8_lossy(&out);
        assert_eq!(out.lines().count(), 2, "{out}");
    }

    /// Found by the `trace_replay` fuzz target: `masters: 4294967295` had the engine plan
    /// billions of nodes, and the replay never ended.
    #[test]
    fn a_record_asking_for_more_nodes_than_any_valid_spec_is_refused_naming_its_line() {
        let rec = first_record();
        let huge = rec.replacen("\"masters\":3", "\"masters\":4294967295", 1);
        assert_ne!(rec, huge, "the record names its masters");
        let input = format!("{rec}\n\n{huge}\n");
        let err = replay(input.as_bytes(), &mut std::io::sink(), true)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("3: the spec asks for 4294967295 nodes; no valid spec has more than 55535")
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error_naming_the_line() {
        let mut input = first_record().into_bytes();
        input.extend_from_slice(b"\n{\"time\": \xff}\n");
        let err = replay(&input[..], &mut std::io::sink(), true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("2: cannot read: "), "{err}");
    }

    #[test]
    fn a_truncated_record_is_an_error_naming_the_line() {
        let rec = first_record();
        let input = format!("{rec}\n{}\n", &rec[..rec.len() / 2]);
        let err = replay(input.as_bytes(), &mut std::io::sink(), true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("2: not a trace record: "), "{err}");
    }
}
