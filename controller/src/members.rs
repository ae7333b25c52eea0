//! The member-provider contract: what a backend must do for the core.

use engine::{MemberInfo, Ordinal};
use spec::RedisClusterSpec;
use std::future::Future;

/// Where the members of one cluster run (local processes, Pods). The engine decides which
/// members exist, when they start, when they are replaced and when their storage goes; a
/// provider only carries that out and reports.
///
/// - `list` reports every member that exists, running or not, with its address once it has
///   one, and in `MemberInfo::fingerprint` the fingerprint of the configuration it runs with
///   (as [`Members::fingerprint`] computed it when the member was started; `None` when the
///   provider cannot tell, and then the member is never replaced for its configuration). A
///   member whose process was deleted but whose storage remains is still listed, not running.
///   A member that is starting is listed as not running (or running without answering yet):
///   the engine waits for it, it never assumes a start succeeded.
/// - `ensure_running`, `replace`, `delete` and `delete_data` are idempotent: the same effect
///   may be decided again when a pass fails half way.
pub trait Members {
    type Error: std::error::Error + Send + Sync + 'static;

    fn list(&self) -> impl Future<Output = Result<Vec<MemberInfo>, Self::Error>> + Send;

    /// The fingerprint of the configuration a member started now with `spec` would run with.
    /// Only what needs a restart to change belongs in it (image or binary, restart-only
    /// settings): settings Redis takes with `CONFIG SET` are changed live by the engine.
    fn fingerprint(&self, spec: &RedisClusterSpec) -> Option<String>;

    /// Start the member with `spec`'s configuration unless it runs; a member that exists
    /// starts with its storage (node id, and data with persistence).
    fn ensure_running(
        &self,
        ordinal: Ordinal,
        spec: &RedisClusterSpec,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Restart the member with `spec`'s configuration, keeping its storage: stopped
    /// gracefully (saving its dataset with persistence), started again. The engine decides it
    /// again for as long as the member is listed running with another fingerprint, and moves
    /// on to the next member only once this one reports the new fingerprint: a provider whose
    /// restart completes later (a Pod being recreated) must treat a repeated call for a
    /// replacement under way as done, and report the member as not running, or running with
    /// the new fingerprint, as soon as it can.
    fn replace(
        &self,
        ordinal: Ordinal,
        spec: &RedisClusterSpec,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The member goes (its process, its Pod); its storage stays.
    fn delete(&self, ordinal: Ordinal) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The storage of a deleted member goes (its directory, its PersistentVolumeClaim).
    fn delete_data(&self, ordinal: Ordinal)
    -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether trying the same effect again may succeed (a timeout, a conflict) as opposed to
    /// a failure only a person can fix (a missing binary, a forbidden call). Transient by
    /// default.
    fn is_transient(_error: &Self::Error) -> bool {
        true
    }
}
