//! What the world says about replication: who replicates whom, who has synced, who could
//! take over a master.

use super::{NodeInfo, World};
use crate::model::Ordinal;

impl<'a> World<'a> {
    /// Replicas of `master_id` that could take over now: they answer, are not failed and hold
    /// a copy (a replica that never completed a sync has offset 0 and holds nothing). Best
    /// first: replicas that linked to this master once, then the highest replication offset,
    /// then the lowest ordinal.
    ///
    /// A replica whose link was never up since it last was a master (Redis reports
    /// `master_link_down_since_seconds:-1`) holds only what it had as a master: its offset
    /// counts another stream. It is usually a master demoted by a newer claim on its own slots
    /// (cut off while its replica was promoted), so its keys are an older copy of these very
    /// slots: without persistence that beats restarting the master empty, so it stays a
    /// candidate, last, while it holds keys. With persistence the master's own volume is the
    /// better copy, and waiting for it (or a linked replica) is right. A replica on the
    /// replication stream of a never-linked one follows that node's old data and is no
    /// candidate (`shares_stream_with_unlinked`). Nor is a replica moved here from another
    /// master that has not synced with this one yet: it still reports the replication id of
    /// the stream it left, which the other master's shard reports too, and its offset counts
    /// that stream (`follows_another_shard`; simulator seed 20284: a replica pointed at a new
    /// master that died before the first sync had the highest offset, and promoting it
    /// served another master's keys in the dead master's slots while its synced replica was
    /// passed over). A moved replica with nobody left on its old stream still cannot be told
    /// apart (Redis itself would elect it).
    pub fn takeover_candidates(&self, master_id: &str) -> Vec<Ordinal> {
        let mut out: Vec<(bool, std::cmp::Reverse<u64>, Ordinal)> = self
            .replicas_of(master_id)
            .into_iter()
            .filter(|(_, r)| r.reachable && !r.failed)
            .filter_map(|(_, r)| {
                let ord = r.ordinal?;
                let state = self.state(ord)?;
                if !state.ever_linked && (self.desired.persistent || state.keys == 0) {
                    return None;
                }
                // A replica on the same replication stream as one that never linked (a
                // chained replica that followed a demoted master) holds that master's old
                // data, not this one's, whatever its offset (simulator seeds 818, 10690).
                if state.ever_linked && self.shares_stream_with_unlinked(master_id, ord) {
                    return None;
                }
                if self.follows_another_shard(master_id, ord) {
                    return None;
                }
                (state.repl_offset > 0).then_some((
                    !state.ever_linked,
                    std::cmp::Reverse(state.repl_offset),
                    ord,
                ))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, _, o)| o).collect()
    }

    /// Replica `ord` of `master_id` reports the replication id of another replica of it that
    /// never linked: it follows that node's old stream.
    fn shares_stream_with_unlinked(&self, master_id: &str, ord: Ordinal) -> bool {
        let Some(mine) = self.state(ord).and_then(|s| s.replid.as_deref()) else {
            return false;
        };
        self.replicas_of(master_id).into_iter().any(|(_, r)| {
            r.ordinal.is_some_and(|o| {
                o != ord
                    && self
                        .state(o)
                        .is_some_and(|s| !s.ever_linked && s.replid.as_deref() == Some(mine))
            })
        })
    }

    /// Replica `ord` of `master_id` reports the replication id of a node of another shard (a
    /// master other than `master_id`, or a replica of one, directly or through other
    /// replicas): its data is that shard's. A chained replica (a replica of a replica of
    /// `master_id`) is of the same shard and follows the same stream (mid-slot sweep, seed
    /// 50090: counted as another shard, it ruled out every replica of a dead master).
    fn follows_another_shard(&self, master_id: &str, ord: Ordinal) -> bool {
        let Some(mine) = self.state(ord).and_then(|s| s.replid.as_deref()) else {
            return false;
        };
        self.reachable.iter().any(|(o, (_, _, s))| {
            let Some(me) = s.myself() else { return false };
            *o != ord && s.replid.as_deref() == Some(mine) && self.shard_of(&me.id) != master_id
        })
    }

    /// The master at the top of `id`'s replication chain, as the views tell it (a few links
    /// at most; a loop stops where it started).
    fn shard_of<'b>(&'b self, id: &'b str) -> &'b str {
        let mut at = id;
        for _ in 0..4 {
            match self
                .nodes
                .get(at)
                .and_then(|n| n.entry.master_id.as_deref())
            {
                Some(m) if m != id => at = m,
                _ => break,
            }
        }
        at
    }

    /// Replicas of `master_id` (any member), with their info.
    pub fn replicas_of(&self, master_id: &str) -> Vec<(&'a str, &NodeInfo<'a>)> {
        self.replicas
            .get(master_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.nodes.get_key_value(id).map(|(id, n)| (*id, n)))
            .collect()
    }

    /// Some reachable replica of `master_id` has completed its sync and receives its master's
    /// stream. `master_link_status:up` alone is not enough: after a diskless sync, Redis 7.0
    /// streams nothing until the replica's first `REPLCONF ACK` (up to a second later), and a
    /// master killed in that gap took every key written meanwhile with it (seen in
    /// `bench/migration_node_loss.py`). A replication offset above 0 proves bytes of the
    /// stream arrived; the master's pings to its replicas (`repl-ping-replica-period`) move it
    /// even when nothing is written.
    pub fn has_synced_replica(&self, master_id: &str) -> bool {
        self.synced_replicas(master_id).next().is_some()
    }

    /// Some in-range member replicates `master_id` and has synced (a replica that stays).
    pub fn has_synced_in_range_replica(&self, master_id: &str) -> bool {
        self.synced_replicas(master_id).any(|o| self.in_range(o))
    }

    /// Reachable members that replicate `master_id` and have synced (see `has_synced_replica`).
    pub fn synced_replicas<'s>(&'s self, master_id: &'s str) -> impl Iterator<Item = Ordinal> + 's {
        self.synced.get(master_id).into_iter().flatten().copied()
    }

    /// The master whose synced replica member `ord` is (see `has_synced_replica`), if it is one.
    pub fn synced_master_of(&self, ord: Ordinal) -> Option<&'a str> {
        let (_, _, s) = self.reachable.get(&ord)?;
        if !s.master_link_up || s.repl_offset == 0 {
            return None;
        }
        self.me(ord)?.master_id.as_deref()
    }

    /// Some reachable node replicates `master_id`, synced or not.
    pub fn has_attached_replica(&self, master_id: &str) -> bool {
        self.attached.contains(master_id)
    }

    /// A reachable replica of `master_id` holds keys of a slot that is open somewhere.
    pub fn replica_holds_keys_of_open_slots(&self, master_id: &str) -> bool {
        self.reachable.iter().any(|(ord, (_, _, s))| {
            self.me(*ord)
                .is_some_and(|me| me.master_id.as_deref() == Some(master_id))
                && s.open_slot_keys.values().any(|k| *k > 0)
        })
    }
}
