//! What can go wrong between an effect and a Redis node, precise enough for the caller to
//! decide whether to retry, report or stop.

use engine::Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// No connection could be made (refused, reset, DNS, auth handshake failed at I/O level).
    #[error("{addr} is unreachable: {message}")]
    Unreachable { addr: Addr, message: String },
    /// The node refused the password (or asked for one the adapter does not have) while
    /// connecting. The password itself is never part of the message.
    #[error("{addr} refused the password: {message}")]
    AuthRefused { addr: Addr, message: String },
    /// The node did not answer within the connect or response timeout.
    #[error("{addr} did not answer {command} in time")]
    Timeout { addr: Addr, command: String },
    /// The node answered with an error.
    #[error("{addr} refused {command}: {message}")]
    Redis {
        addr: Addr,
        command: String,
        message: String,
    },
    /// The node answered something this adapter cannot understand.
    #[error("{addr} answered {command} with something unexpected: {message}")]
    BadReply {
        addr: Addr,
        command: String,
        message: String,
    },
    /// A key being migrated already exists on the target with a different value. Nothing is
    /// overwritten and the slot stays open, so the next observation reports it.
    #[error("slot {slot}: key {key:?} exists on both sides with different values")]
    BusyKey { slot: u16, key: String },
    /// The source still holds keys of a slot after the bounded number of migration rounds.
    #[error("slot {slot}: {count} keys remain on the source after migrating")]
    KeysRemain { slot: u16, count: u64 },
    /// A slot whose keys all left the source is not handed to the target because the source
    /// no longer migrates it: a failover elsewhere took the slot (or the source) over while
    /// the keys moved, so its remaining keys may sit on the new owner. Finishing would make the
    /// target's claim win and Redis delete the new owner's copies.
    #[error("slot {slot}: {addr} no longer migrates it ({why}); not handing it over")]
    SourceLostSlot {
        addr: Addr,
        slot: u16,
        why: &'static str,
    },
    /// A node of a move refuses every key with `CLUSTERDOWN` because its own view gives a slot
    /// it imports to no master, or to one that failed: its source failed over mid-move, and
    /// Redis applies no ownership update to a slot a node imports. Only the engine's repair
    /// (telling it the slot's new owner) ends that state, so waiting for it to pass only kept
    /// the node's other slots down (chaos soak, a source frozen mid-move: about 20 s).
    #[error(
        "{addr} stays down until it is told who owns slot {slot} now (it imports it from a node that failed over)"
    )]
    ImporterStuck { addr: Addr, slot: u16 },
    /// The target of a hand-over did not learn its source's config epoch (or the highest of
    /// the masters owning slots) in time: told now, it could claim the slots below the source
    /// or tie with another master, and lose the slots with their keys. The slots stay open
    /// for the next pass.
    #[error(
        "{addr} knows epoch {known_epoch} only, below the sources' {needed_epoch}; not handing over yet"
    )]
    TargetBehindSources {
        addr: Addr,
        needed_epoch: u64,
        known_epoch: u64,
    },
    /// Stray keys were to be moved from a node that owns their slot: they are not stray.
    #[error("{addr} owns slot {slot}: its keys there are not stray")]
    NotStray { addr: Addr, slot: u16 },
    /// A migration paused: its target has no synced replica, so keys moved to it would exist
    /// nowhere else. The engine attaches one and the move resumes.
    #[error("{addr} has no synced replica; moving more keys to it is paused")]
    TargetUnprotected { addr: Addr },
    /// The effect names an ordinal the context has no address for.
    #[error("member #{0} has no known address")]
    UnknownMember(engine::Ordinal),
    /// `CreateNode`, `DeleteNode`, `DeleteData` and `ReplaceNode` belong to the process or
    /// Kubernetes backend.
    #[error("{0} is not a SETSLOT effect; run it alone")]
    NotASetSlot(&'static str),

    #[error("{0} is not a Redis effect; run it on the member backend")]
    NotARedisEffect(&'static str),
}

impl AdapterError {
    /// False only for failures that repeating the same effect cannot fix: a key that differs
    /// on both sides of a move (a human decides), an effect the adapter does not run, a member
    /// the context does not know. Everything else (a node down, a refusal while the cluster
    /// converges, a paused move) may pass on the next attempt.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            AdapterError::BusyKey { .. }
                | AdapterError::NotARedisEffect(_)
                | AdapterError::NotASetSlot(_)
                | AdapterError::UnknownMember(_)
        )
    }

    /// True when the node could not be talked to at all (as opposed to a refusal).
    pub fn is_connectivity(&self) -> bool {
        matches!(
            self,
            AdapterError::Unreachable { .. } | AdapterError::Timeout { .. }
        )
    }
}
