//! The trace format: JSON Lines, one [`TraceRecord`] per decision. Written by
//! `simulate record` and the simulator, read by `simulate replay`.

use crate::decision::{Decision, Phase};
use crate::desired::Desired;
use crate::model::Observation;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Milliseconds since the Unix epoch (or simulated time).
    pub time: u64,
    /// The desired shape the decision was made for.
    pub spec: Desired,
    /// The phase hint handed to `decide` (the previous decision's phase).
    #[serde(default)]
    pub phase_hint: Phase,
    pub observation: Observation,
    /// The decision recorded at the time; replay compares against it.
    pub decision: Decision,
}
