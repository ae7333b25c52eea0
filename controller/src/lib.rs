#![forbid(unsafe_code)]
//! The reconcile core of redis-operator, shared by every backend.
//!
//! A backend says where members run by implementing [`Members`] (local `redis-server`
//! processes, Pods); a [`Reconciler`] per cluster owns the pass — observe, `engine::decide`,
//! execute — and everything a pass leaves behind: the phase hint and the last valid spec for
//! the next pass, the trace record, the HTTP directory, metrics and the delay before the next
//! pass. Shells (local mode, the Kubernetes controller) only feed it specs, wait the delay it
//! returns, and show its [`Pass`] to users.

pub mod desired;
pub mod error;
pub mod http;
pub mod members;
pub mod projection;
pub mod reconciler;
pub mod recording;
pub mod status;
pub mod telemetry;
pub mod trace_file;
pub mod trace_thinning;

pub use error::{EffectCause, EffectError, ReconcileError};
pub use members::Members;
pub use reconciler::{ClusterKey, Pass, Reconciler, next_delay, now_ms, observe};
