//! Placeholder replaced by the statig lifecycle in the next commit.
use crate::{Decision, Desired, Observation, Phase};

pub(crate) fn decide(_desired: &Desired, phase_hint: Phase, _observation: &Observation) -> Decision {
    Decision { phase: phase_hint, effects: Vec::new(), conditions: Vec::new(), requeue_ms: None, summary: String::new() }
}
