//! The member-provider contract: what a backend must do for the core.

use engine::{MemberInfo, Ordinal};
use std::future::Future;

/// Where the members of one cluster run (local processes, Pods). The engine decides which
/// members exist and when they start; a provider only carries that out and reports.
///
/// - `list` reports every member that exists, running or not, with its address once it has
///   one; a member that is starting is listed as not running (or running without answering
///   yet): the engine waits for it, it never assumes a start succeeded.
/// - `ensure_running` and `delete` are idempotent: the same effect may be decided again when
///   a pass fails half way.
pub trait Members {
    type Error: std::error::Error + Send + Sync + 'static;

    fn list(&self) -> impl Future<Output = Result<Vec<MemberInfo>, Self::Error>> + Send;

    fn ensure_running(
        &self,
        ordinal: Ordinal,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    fn delete(&self, ordinal: Ordinal) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether trying the same effect again may succeed (a timeout, a conflict) as opposed to
    /// a failure only a person can fix (a missing binary, a forbidden call). Transient by
    /// default.
    fn is_transient(_error: &Self::Error) -> bool {
        true
    }
}
