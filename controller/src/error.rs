//! What can go wrong in a reconcile pass, typed: which effect failed, why, and whether the
//! next pass may succeed where this one did not.

use engine::Effect;
use redis_backend::AdapterError;

/// A pass that could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError<E: std::error::Error + 'static> {
    /// The member provider could not say which members exist; nothing was decided.
    #[error("cannot list the members: {0}")]
    ListMembers(#[source] E),
    /// The pass ran but its trace record could not be written.
    #[error("cannot write the trace: {0}")]
    Trace(#[source] std::io::Error),
}

/// The first effect of a pass that failed (the effects after it were not run).
#[derive(Debug, thiserror::Error)]
#[error("{effect}: {cause}")]
pub struct EffectError<E: std::error::Error + 'static> {
    pub effect: Effect,
    #[source]
    pub cause: EffectCause<E>,
    /// Repeating the effect may succeed (see [`AdapterError::is_transient`] and
    /// [`crate::Members::is_transient`]).
    pub transient: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EffectCause<E: std::error::Error + 'static> {
    /// The member provider refused or failed (start, delete).
    #[error(transparent)]
    Members(E),
    /// A Redis node refused or could not be reached.
    #[error(transparent)]
    Redis(AdapterError),
    /// The reconciler's fence refused the effect (the leader lease was lost); not run.
    #[error("not run: this process no longer holds the leader lease")]
    Fenced,
}
