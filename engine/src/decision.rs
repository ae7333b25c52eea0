//! What `decide` returns.

use crate::effect::Effect;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The lifecycle phase. Stored in status as a hint; the observation is the truth.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Phase {
    #[default]
    Pending,
    Bootstrapping,
    Ready,
    ScalingOut,
    ScalingIn,
    ReplicaScaling,
    Recovering,
    /// Members are restarted one at a time with a new configuration (rolling replacement).
    Rolling,
    Deleting,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Pending,
        Phase::Bootstrapping,
        Phase::Ready,
        Phase::ScalingOut,
        Phase::ScalingIn,
        Phase::ReplicaScaling,
        Phase::Recovering,
        Phase::Rolling,
        Phase::Deleting,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Bootstrapping => "Bootstrapping",
            Phase::Ready => "Ready",
            Phase::ScalingOut => "ScalingOut",
            Phase::ScalingIn => "ScalingIn",
            Phase::ReplicaScaling => "ReplicaScaling",
            Phase::Recovering => "Recovering",
            Phase::Rolling => "Rolling",
            Phase::Deleting => "Deleting",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Condition types, as in the Kubernetes status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConditionKind {
    Ready,
    Progressing,
    Degraded,
    Invalid,
}

impl ConditionKind {
    pub const ALL: [ConditionKind; 4] = [
        ConditionKind::Ready,
        ConditionKind::Progressing,
        ConditionKind::Degraded,
        ConditionKind::Invalid,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ConditionKind::Ready => "Ready",
            ConditionKind::Progressing => "Progressing",
            ConditionKind::Degraded => "Degraded",
            ConditionKind::Invalid => "Invalid",
        }
    }
}

/// A status condition; every kind appears once in every decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub kind: ConditionKind,
    pub status: bool,
    /// CamelCase machine-readable reason.
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub phase: Phase,
    /// Run in order; stop at the first failure and observe again. Consecutive `MigrateSlots`
    /// with disjoint members may run in parallel.
    pub effects: Vec<Effect>,
    pub conditions: Vec<Condition>,
    /// Observe again after this many ms (`None`: only on change).
    pub requeue_ms: Option<u64>,
    /// One line saying what is being done and why.
    pub summary: String,
}

impl Decision {
    pub fn condition(&self, kind: ConditionKind) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    pub fn is_true(&self, kind: ConditionKind) -> bool {
        self.condition(kind).is_some_and(|c| c.status)
    }
}
