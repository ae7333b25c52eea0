#![forbid(unsafe_code)]
//! The Redis Cluster lifecycle engine: from the desired shape and what is observed, decide what
//! to do next. No I/O, no clock, no randomness: time arrives inside the [`Observation`], and the
//! same input always gives the same [`Decision`].

pub mod decision;
pub mod desired;
pub mod effect;
pub mod history;
pub mod invariants;
pub mod model;
pub mod parse;
pub mod slots;

pub use decision::{Condition, ConditionKind, Decision, Phase};
pub use desired::Desired;
pub use effect::{Effect, FailoverMode};
pub use model::{
    Addr, ClusterNode, LinkState, Member, MemberInfo, NodeFlags, NodeState, Observation, OpenSlot,
    Ordinal, View, ViewInterner,
};
pub use slots::{SLOT_COUNT, SlotRange};
pub use unclaimed::routed_but_unclaimed;
pub mod trace;
pub mod view;

mod lifecycle;
pub mod planner;
pub mod replication_gate;

/// Decides what to do next. Pure: same input, same output.
///
/// `phase_hint` is the phase of the previous decision (stored in status); it only guides the
/// lifecycle, the observation is the truth.
pub fn decide(desired: &Desired, phase_hint: Phase, observation: &Observation) -> Decision {
    lifecycle::decide(desired, phase_hint, observation)
}
mod bootstrap;
mod claims;
mod election;
mod failover;
mod gossip;
mod membership;
mod reconfigure;
mod repair;
mod replacement;
mod replicas;
mod restart;
mod topology;
mod unclaimed;
mod views;
mod work;
mod world;
