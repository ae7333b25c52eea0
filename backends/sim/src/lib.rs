#![forbid(unsafe_code)]
//! An in-memory model of a Redis Cluster with seeded fault injection, driven by the real
//! engine for deterministic simulation. See `docs/simulator.md` for what it models and what it
//! simplifies.

pub mod apply;
pub mod client;
pub mod cluster;
pub mod config;
mod election;
pub mod faults;
mod gaps;
pub mod gossip;
pub mod migration;
pub mod node;
pub mod replay;
pub mod restore;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod summary;
pub mod whatif;

pub use apply::{ApplyError, StepBudget};
pub use cluster::{Cluster, ServerModel};
pub use runner::{
    Recording, SimConfig, SimFailure, SimReport, Summary, record_seed, record_seed_with_faults,
    run_many, run_seed,
};
