//! What the engine asks the backends to do. Every effect is an idempotent *ensure*: running it
//! twice leaves the world as running it once, so a crashed operator can simply decide again.
//!
//! Effects name members by ordinal (the backend knows the address) and cluster nodes by node id
//! where Redis needs the id.

use crate::model::Ordinal;
use crate::slots::SlotRange;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How `CLUSTER FAILOVER` is run on a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailoverMode {
    /// Coordinated with a reachable master: no write is lost.
    Default,
    /// The master is unreachable; still needs a majority of masters to agree.
    Force,
    /// No agreement at all: last resort when the majority of masters is lost.
    Takeover,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Effect {
    /// Ensure the member exists and runs (create it, or restart it with its data and
    /// `nodes.conf`, so it keeps its node id).
    CreateNode { ordinal: Ordinal },
    /// Remove the member (its process, its Pod); its storage stays. Only ever decided for a
    /// node that owns no slot and no key and that every other node has forgotten, or for a
    /// member that must come back as a new node.
    DeleteNode { ordinal: Ordinal },
    /// Drop the storage of a member that was deleted (`DeleteNode` comes first): a drained,
    /// forgotten member leaving for good, or a member without persistence that must come back
    /// empty as a new node. Never decided for a restart.
    DeleteData { ordinal: Ordinal },
    /// Restart the member with the desired configuration (`Desired::fingerprint`); it keeps
    /// its storage, so its node id, and its data with persistence.
    ReplaceNode { ordinal: Ordinal },
    /// `CLUSTER MEET ip port bus_port`, run on `on`.
    Meet { on: Ordinal, ip: String, port: u16 },
    /// `CLUSTER ADDSLOTSRANGE`, run on `on`, for slots no node claims.
    AddSlots { on: Ordinal, slots: Vec<SlotRange> },
    /// `CLUSTER REPLICATE master_id`, run on `on` (an empty node).
    Replicate { on: Ordinal, master_id: String },
    /// Move `slots` from `from` to `to` with the full, crash-safe protocol: `SETSLOT IMPORTING`
    /// on the target, `SETSLOT MIGRATING` on the source, `GETKEYSINSLOT` + `MIGRATE … KEYS`
    /// until `COUNTKEYSINSLOT` is 0 on the source, then `SETSLOT NODE` on the target, the
    /// source and every other master. A slot already moved is skipped.
    MigrateSlots {
        from: Ordinal,
        from_id: String,
        to: Ordinal,
        to_id: String,
        slots: Vec<SlotRange>,
    },
    /// Move the keys of `slot` that sit on `from` (which does not own it) to the owner `to`,
    /// then close the slot on `from`: repairs a slot left importing (redis-cli fix, case 2).
    MoveStrayKeys {
        from: Ordinal,
        to: Ordinal,
        to_id: String,
        slot: u16,
    },
    /// Copy the keys of `slot` that the replica `from` kept while its master `to` dropped
    /// them back onto `to`: `DUMP` and `PTTL` of every key on `from` (`READONLY`), then
    /// `SETSLOT slot NODE to_id` on `to`, then `RESTORE` without `REPLACE` on `to`, so that a
    /// key written on `to` meanwhile is kept as the newer value. Decided only for a slot every
    /// view routes to `to`, which claims it no more and holds none of its keys (Redis 7.0
    /// drops a lost slot's keys on the master alone; see `unclaimed`).
    RestoreDroppedKeys {
        from: Ordinal,
        to: Ordinal,
        to_id: String,
        slot: u16,
    },
    /// `CLUSTER SETSLOT slot STABLE` on `on`: closes an open slot that holds nothing to move.
    SetSlotStable { on: Ordinal, slot: u16 },
    /// `CLUSTER SETSLOT slot NODE owner_id` on `on`. Decided only once the previous owner
    /// holds no key of the slot.
    SetSlotOwner {
        on: Ordinal,
        slot: u16,
        owner_id: String,
    },
    /// `CONFIG SET name value` on `on`: a setting Redis applies without a restart.
    SetConfig {
        on: Ordinal,
        name: String,
        value: String,
    },
    /// `CLUSTER FAILOVER [FORCE|TAKEOVER]` on the replica `on`.
    Failover { on: Ordinal, mode: FailoverMode },
    /// `CLUSTER FORGET node_id` on `on`.
    Forget { on: Ordinal, node_id: String },
    /// `CLUSTER RESET SOFT|HARD` on `on` (an empty node that must leave its old cluster).
    ResetNode { on: Ordinal, hard: bool },
    /// `CLUSTER BUMPEPOCH` on the master `on`: its claims lose to an older owner's higher
    /// epoch in some view, and only a newer epoch of its own makes them win there.
    BumpEpoch { on: Ordinal },
    /// `CLUSTER SET-CONFIG-EPOCH epoch` on the fresh master `on` (it knows no other node and
    /// its epoch is 0), before it meets anyone: every master of a new cluster gets an epoch
    /// of its own, as `redis-cli --cluster create` gives them. Left at 0, they all collide,
    /// and at 100 masters Redis takes minutes to settle the ties, each one moving a master to
    /// the top of the epoch range (`docs/reliability.md`).
    SetConfigEpoch { on: Ordinal, epoch: u64 },
    /// Open the replication gate of `on`: replicas may sync from it from now on (the
    /// replication user exists there with the cluster's password). Decided only when no
    /// replica would copy less data than it holds (see [`crate::replication_gate`]).
    AllowReplicas { on: Ordinal },
}

impl Effect {
    /// The member the effect runs on (or acts upon).
    pub fn target(&self) -> Ordinal {
        match self {
            Effect::CreateNode { ordinal }
            | Effect::DeleteNode { ordinal }
            | Effect::DeleteData { ordinal }
            | Effect::ReplaceNode { ordinal } => *ordinal,
            Effect::MigrateSlots { from, .. } | Effect::MoveStrayKeys { from, .. } => *from,
            // The node whose slot it repairs.
            Effect::RestoreDroppedKeys { to, .. } => *to,
            Effect::Meet { on, .. }
            | Effect::AddSlots { on, .. }
            | Effect::Replicate { on, .. }
            | Effect::SetSlotStable { on, .. }
            | Effect::SetSlotOwner { on, .. }
            | Effect::SetConfig { on, .. }
            | Effect::Failover { on, .. }
            | Effect::Forget { on, .. }
            | Effect::ResetNode { on, .. }
            | Effect::BumpEpoch { on }
            | Effect::SetConfigEpoch { on, .. }
            | Effect::AllowReplicas { on } => *on,
        }
    }

    /// A short name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::CreateNode { .. } => "create_node",
            Effect::DeleteNode { .. } => "delete_node",
            Effect::DeleteData { .. } => "delete_data",
            Effect::ReplaceNode { .. } => "replace_node",
            Effect::Meet { .. } => "meet",
            Effect::AddSlots { .. } => "add_slots",
            Effect::Replicate { .. } => "replicate",
            Effect::MigrateSlots { .. } => "migrate_slots",
            Effect::MoveStrayKeys { .. } => "move_stray_keys",
            Effect::RestoreDroppedKeys { .. } => "restore_dropped_keys",
            Effect::SetSlotStable { .. } => "set_slot_stable",
            Effect::SetSlotOwner { .. } => "set_slot_owner",
            Effect::SetConfig { .. } => "set_config",
            Effect::Failover { .. } => "failover",
            Effect::Forget { .. } => "forget",
            Effect::ResetNode { .. } => "reset_node",
            Effect::BumpEpoch { .. } => "bump_epoch",
            Effect::SetConfigEpoch { .. } => "set_config_epoch",
            Effect::AllowReplicas { .. } => "allow_replicas",
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::CreateNode { ordinal } => write!(f, "create node #{ordinal}"),
            Effect::DeleteNode { ordinal } => write!(f, "delete node #{ordinal}"),
            Effect::DeleteData { ordinal } => write!(f, "delete the storage of node #{ordinal}"),
            Effect::ReplaceNode { ordinal } => {
                write!(
                    f,
                    "replace node #{ordinal} (restart with the desired configuration)"
                )
            }
            Effect::Meet { on, ip, port } => write!(f, "#{on}: CLUSTER MEET {ip} {port}"),
            Effect::AddSlots { on, slots } => write!(
                f,
                "#{on}: CLUSTER ADDSLOTSRANGE {} ({} slots)",
                crate::slots::format_ranges(slots),
                crate::slots::count(slots)
            ),
            Effect::Replicate { on, master_id } => {
                write!(f, "#{on}: CLUSTER REPLICATE {}", short(master_id))
            }
            Effect::MigrateSlots {
                from, to, slots, ..
            } => write!(
                f,
                "migrate {} slots #{from} -> #{to} ({})",
                crate::slots::count(slots),
                crate::slots::format_ranges(slots)
            ),
            Effect::MoveStrayKeys { from, to, slot, .. } => {
                write!(f, "move stray keys of slot {slot} #{from} -> #{to}")
            }
            Effect::RestoreDroppedKeys { from, to, slot, .. } => {
                write!(
                    f,
                    "copy the keys of slot {slot} that #{to} dropped back from its replica #{from}"
                )
            }
            Effect::SetSlotStable { on, slot } => write!(f, "#{on}: CLUSTER SETSLOT {slot} STABLE"),
            Effect::SetSlotOwner { on, slot, owner_id } => {
                write!(f, "#{on}: CLUSTER SETSLOT {slot} NODE {}", short(owner_id))
            }
            Effect::SetConfig { on, name, value } => {
                write!(f, "#{on}: CONFIG SET {name} {value}")
            }
            Effect::Failover { on, mode } => write!(f, "#{on}: CLUSTER FAILOVER {mode:?}"),
            Effect::Forget { on, node_id } => write!(f, "#{on}: CLUSTER FORGET {}", short(node_id)),
            Effect::ResetNode { on, hard } => {
                write!(
                    f,
                    "#{on}: CLUSTER RESET {}",
                    if *hard { "HARD" } else { "SOFT" }
                )
            }
            Effect::BumpEpoch { on } => write!(f, "#{on}: CLUSTER BUMPEPOCH"),
            Effect::SetConfigEpoch { on, epoch } => {
                write!(f, "#{on}: CLUSTER SET-CONFIG-EPOCH {epoch}")
            }
            Effect::AllowReplicas { on } => write!(f, "#{on}: open the replication gate"),
        }
    }
}
