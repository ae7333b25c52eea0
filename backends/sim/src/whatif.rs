//! What-if runs: the engine, with a changed spec, goes on from a recorded observation in the
//! simulator (no faults, no client writes), until the cluster converges, a decision is
//! unsafe, or the steps run out.

use crate::apply::StepBudget;
use crate::cluster::Cluster;
use engine::invariants::{check_converged, check_decision};
use engine::trace::TraceRecord;
use engine::{Desired, Observation, Phase};
use std::fmt;

/// How a what-if run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Ready`, nothing left to do, and the converged checks pass, after this many steps.
    Converged { steps: u32 },
    /// A decision broke a safety rule at this step.
    Unsafe { step: u32, message: String },
    /// Still working when the steps ran out.
    Unfinished { steps: u32, phase: Phase },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Converged { steps } => write!(f, "converged after {steps} step(s)"),
            Outcome::Unsafe { step, message } => {
                write!(f, "unsafe decision at step {step}: {message}")
            }
            Outcome::Unfinished { steps, phase } => {
                write!(f, "not converged after {steps} step(s), phase {phase}")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Continuation {
    /// One record per step, from the restored state on.
    pub records: Vec<TraceRecord>,
    pub outcome: Outcome,
    /// Effects the simulated Redis refused (each stops its decision's list, as the real
    /// executor does).
    pub refused: u64,
}

/// Runs the engine with `desired` from the cluster `start` shows, `phase` being the phase
/// hint of that moment, for at most `steps` steps of `step_ms`.
pub fn continue_from(
    start: &Observation,
    desired: &Desired,
    phase: Phase,
    steps: u32,
    step_ms: u64,
) -> Continuation {
    let mut cluster = Cluster::from_observation(start, desired, 0);
    let mut phase = phase;
    let mut records = Vec::new();
    let mut refused = 0;
    for step in 0..steps {
        let obs = cluster.observe();
        let decision = engine::decide(desired, phase, &obs);
        let violations = check_decision(desired, &obs, &decision);
        let converged = decision.phase == Phase::Ready
            && decision.effects.is_empty()
            && check_converged(desired, &obs).is_empty();
        let hint = phase;
        phase = decision.phase;
        let effects = decision.effects.clone();
        records.push(TraceRecord {
            time: obs.now_ms,
            spec: desired.clone(),
            phase_hint: hint,
            observation: obs,
            decision,
        });
        if !violations.is_empty() {
            let m: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return Continuation {
                records,
                outcome: Outcome::Unsafe {
                    step,
                    message: m.join("; "),
                },
                refused,
            };
        }
        if converged {
            return Continuation {
                records,
                outcome: Outcome::Converged { steps: step + 1 },
                refused,
            };
        }
        for effect in &effects {
            if cluster.apply(effect, &mut StepBudget::unlimited()).is_err() {
                refused += 1;
                break;
            }
        }
        cluster.tick(step_ms);
    }
    Continuation {
        records,
        outcome: Outcome::Unfinished { steps, phase },
        refused,
    }
}
