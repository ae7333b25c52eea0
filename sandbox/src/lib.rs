//! kube-sandbox: a Kubernetes API server emulation on loopback that real clients (kube-rs,
//! kubectl, helm) work against unchanged. Objects are kept as JSON in memory (optionally
//! saved to a state directory); see `docs/sandbox.md` for what is and is not emulated.
#![forbid(unsafe_code)]

pub mod addresses;
pub mod audit;
pub mod auth;
pub mod builtin;
pub mod cluster;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
pub mod gc;
pub mod http;
pub mod kubelet;
pub mod managed;
pub mod nodes;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod persist;
pub mod protobuf;
pub mod rbac;
pub mod registry;
mod sandbox;
pub mod scale;
pub mod scheduler;
pub mod schema;
pub mod selectors;
pub mod store;
pub mod table;
pub mod tls;
pub mod watch;
pub mod workload_faults;

pub use error::{ApiError, SandboxError};
pub use sandbox::{Sandbox, SandboxBuilder, SandboxHandle, kubeconfig_yaml};
