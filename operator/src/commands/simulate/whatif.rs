//! `simulate replay FILE --set masters=5` / `--spec changed.yaml`: what the operator would
//! have done with another spec. The recorded observations are replayed with the changed spec
//! until the first record where the decision differs from the recorded one; from that
//! recorded state the simulator goes on with the changed spec. Both timelines are printed
//! (and drawn, with `--html`).

use super::page;
use super::replay::{Trace, arrow, describe_effects, difference, record_line};
use crate::commands::{CmdError, CmdResult};
use engine::Desired;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Steps the simulator may take after the divergence when `--steps` is not given and the
/// recorded trace had fewer left.
const MIN_STEPS: u32 = 60;

/// A change to the recorded spec: a manifest's shape, then `--set` fields.
pub(super) struct SpecChange {
    manifest: Option<(String, Desired)>,
    sets: Vec<(Field, u64)>,
}

#[derive(Clone, Copy)]
enum Field {
    Masters,
    Replicas,
    Persistent,
    NodeTimeoutMs,
    RebalanceThresholdPct,
}

impl Field {
    const ALL: [(&'static str, Field); 5] = [
        ("masters", Field::Masters),
        ("replicas", Field::Replicas),
        ("persistent", Field::Persistent),
        ("nodeTimeoutMs", Field::NodeTimeoutMs),
        ("rebalanceThresholdPct", Field::RebalanceThresholdPct),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| f.same(self))
            .map_or("?", |(n, _)| n)
    }

    fn same(self, other: Field) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// `FIELD=VALUE`, checked: a known field, a value of its type and in its range.
fn parse_set(arg: &str) -> Result<(Field, u64), CmdError> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("--set {arg}: expected FIELD=VALUE, e.g. masters=5"))?;
    let (_, field) = Field::ALL
        .iter()
        .find(|(n, _)| *n == name.trim())
        .ok_or_else(|| {
            let names: Vec<&str> = Field::ALL.iter().map(|(n, _)| *n).collect();
            format!(
                "--set {arg}: unknown field {name:?} (one of {})",
                names.join(", ")
            )
        })?;
    let value = value.trim();
    let n = match field {
        Field::Persistent => match value {
            "true" => 1,
            "false" => 0,
            _ => return Err(format!("--set {arg}: persistent is true or false").into()),
        },
        _ => value
            .parse::<u64>()
            .map_err(|_| format!("--set {arg}: {value:?} is not a whole number"))?,
    };
    let bad = |why: String| -> CmdError { format!("--set {arg}: {why}").into() };
    match field {
        Field::Masters if n < u64::from(spec::defaults::MIN_MASTERS) || n > 1000 => {
            Err(bad(format!(
                "masters must be between {} and 1000",
                spec::defaults::MIN_MASTERS
            )))
        }
        Field::Replicas if n > u64::from(spec::defaults::MAX_REPLICAS) => Err(bad(format!(
            "replicas must be between 0 and {}",
            spec::defaults::MAX_REPLICAS
        ))),
        Field::NodeTimeoutMs if !(100..=600_000).contains(&n) => Err(bad(
            "nodeTimeoutMs must be between 100 and 600000".to_string(),
        )),
        Field::RebalanceThresholdPct if n > 100 => Err(bad(
            "rebalanceThresholdPct must be between 0 and 100".to_string(),
        )),
        _ => Ok((*field, n)),
    }
}

impl SpecChange {
    /// `None` when neither `--spec` nor `--set` was given.
    pub(super) fn from_args(
        spec: Option<&Path>,
        sets: &[String],
    ) -> Result<Option<Self>, CmdError> {
        if spec.is_none() && sets.is_empty() {
            return Ok(None);
        }
        let manifest = match spec {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let cluster =
                    spec::parse_manifest(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                let desired = controller::desired::desired_from(&cluster.spec, None);
                if let Some(problem) = desired.problems.first() {
                    return Err(format!("{}: {problem}", path.display()).into());
                }
                Some((path.display().to_string(), desired))
            }
        };
        let sets = sets
            .iter()
            .map(|s| parse_set(s))
            .collect::<Result<_, _>>()?;
        Ok(Some(Self { manifest, sets }))
    }

    /// The recorded spec with the change: the manifest's shape and settings (the recorded
    /// configuration fingerprint stays: a what-if about the shape, not about restarts), then
    /// each `--set`.
    fn apply(&self, recorded: &Desired) -> Desired {
        let mut d = recorded.clone();
        if let Some((_, m)) = &self.manifest {
            d.masters = m.masters;
            d.replicas = m.replicas;
            d.rebalance_threshold_pct = m.rebalance_threshold_pct;
            d.node_timeout_ms = m.node_timeout_ms;
            d.persistent = m.persistent;
            d.live_config = m.live_config.clone();
        }
        for &(field, n) in &self.sets {
            let small = u32::try_from(n).unwrap_or(u32::MAX);
            match field {
                Field::Masters => d.masters = small,
                Field::Replicas => d.replicas = small,
                Field::Persistent => d.persistent = n == 1,
                Field::NodeTimeoutMs => d.node_timeout_ms = n,
                Field::RebalanceThresholdPct => d.rebalance_threshold_pct = small,
            }
        }
        d
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some((path, _)) = &self.manifest {
            parts.push(format!("spec of {path}"));
        }
        for &(field, n) in &self.sets {
            let v = match field {
                Field::Persistent => (n == 1).to_string(),
                _ => n.to_string(),
            };
            parts.push(format!("{}={v}", field.name()));
        }
        parts.join(", ")
    }
}

fn shape(d: &Desired) -> String {
    format!("{} masters x {} replicas", d.masters, d.replicas)
}

pub(super) fn run(
    trace: &Trace,
    change: &SpecChange,
    steps: Option<u32>,
    html: Option<&Path>,
) -> CmdResult {
    let mut out = std::io::stdout().lock();
    let what = change.describe();
    let Some(first) = trace.records.first() else {
        return Err(format!("{}: no record to replay", trace.name).into());
    };
    writeln!(
        out,
        "what-if {what}: recorded {}, changed {}",
        shape(&first.spec),
        shape(&change.apply(&first.spec))
    )?;
    // The first record where the changed spec decides otherwise than what was recorded.
    let divergence = trace.records.iter().enumerate().find_map(|(i, rec)| {
        let changed = change.apply(&rec.spec);
        let now = engine::decide(&changed, rec.phase_hint, &rec.observation);
        difference(&rec.decision, &now).map(|d| (i, changed, now, d))
    });
    let Some((d, changed, decision, why)) = divergence else {
        writeln!(
            out,
            "the changed spec decides the same at all {} record(s): nothing would have been done differently",
            trace.records.len()
        )?;
        if let Some(path) = html {
            let tl = timeline::build(
                &format!("As recorded ({what}: same)"),
                &trace.records,
                Vec::new(),
            );
            page::write(path, &format!("What-if {what} on {}", trace.name), &[tl])?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let rec = &trace.records[d];
    let t0 = first.time;
    let same = match d {
        0 => "the first record already decides otherwise".to_string(),
        1 => "record 1 decides the same".to_string(),
        _ => format!("records 1-{d} decide the same"),
    };
    writeln!(
        out,
        "{same}; first difference at line {} (t={}ms): {why}",
        trace.lines[d],
        rec.time.saturating_sub(t0)
    )?;
    writeln!(
        out,
        "  recorded: {}: {}",
        arrow(rec.phase_hint, rec.decision.phase),
        describe_effects(&rec.decision.effects)
    )?;
    writeln!(
        out,
        "  changed:  {}: {}",
        arrow(rec.phase_hint, decision.phase),
        describe_effects(&decision.effects)
    )?;
    let left = (trace.records.len() - d) as u32;
    let steps = steps.unwrap_or(left.max(MIN_STEPS));
    let step_ms = sim::SimConfig::default().step_ms;
    let run =
        sim::whatif::continue_from(&rec.observation, &changed, rec.phase_hint, steps, step_ms);
    writeln!(out, "as recorded, from line {}:", trace.lines[d])?;
    for r in &trace.records[d..] {
        writeln!(out, "  {}", record_line(r, &r.decision, t0))?;
    }
    writeln!(out, "with {what}, simulated from that state:")?;
    for r in &run.records {
        writeln!(out, "  {}", record_line(r, &r.decision, t0))?;
    }
    let recorded_end = trace
        .records
        .last()
        .map_or(first.decision.phase, |r| r.decision.phase);
    writeln!(
        out,
        "recorded: ended {recorded_end} after {} record(s); changed: {} ({} effect(s) refused by the simulated Redis)",
        trace.records.len(),
        run.outcome,
        run.refused
    )?;
    drop(out);
    if let Some(path) = html {
        let mut recorded = timeline::build("As recorded", &trace.records, Vec::new());
        recorded.diverged_at = Some(d as u32);
        let mut records = trace.records[..d].to_vec();
        records.extend(run.records.iter().cloned());
        let mut changed_tl = timeline::build(
            &format!("With {what} (simulated from record {d} on)"),
            &records,
            Vec::new(),
        );
        changed_tl.diverged_at = Some(d as u32);
        page::write(
            path,
            &format!("What-if {what} on {}", trace.name),
            &[recorded, changed_tl],
        )?;
    }
    Ok(match run.outcome {
        sim::whatif::Outcome::Unsafe { .. } => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}
