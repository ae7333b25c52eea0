#![forbid(unsafe_code)]
//! The Kubernetes backend of redis-operator.
//!
//! One Redis node is one Pod of its own single-replica StatefulSet (`updateStrategy: OnDelete`):
//! Kubernetes brings a lost pod back even while the operator is down, the node keeps its name,
//! port and volume, and only the engine decides when a pod is replaced. The reconcile pass
//! itself is the shared core's ([`controller::Reconciler`]); this crate only says where
//! members run ([`members::KubeMembers`]), builds the objects ([`build`]), writes status and
//! events, and holds the leader lease ([`lease`]).

pub mod build;
pub mod checks;
pub mod controller;
pub mod error;
pub mod events;
pub mod lease;
pub mod members;
pub mod names;
mod password;
pub mod record;
pub mod retry;
pub mod status;

pub use controller::{RunConfig, run};
pub use error::Error;
