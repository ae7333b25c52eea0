//! Keys an election leaves behind that the runner counts as lost to the faults, not to the
//! operator: losses Redis makes by itself, whatever an operator does.

use crate::cluster::Cluster;
use crate::node::NodeKey;
use engine::Ordinal;

impl Cluster {
    /// Keys the running old master holds in the slots replica `r` takes over that `r` lacks.
    pub(crate) fn record_promotion_gap(&mut self, r: Ordinal, master: NodeKey) {
        let Some(ranges) = self.members.get_mut(&r).map(|m| m.node.slots_of(master)) else {
            return;
        };
        let Some(rn) = self.members.get(&r).map(|m| &m.node) else {
            return;
        };
        let Some(old) = self
            .members
            .values()
            .find(|m| (m.running || m.paused.is_some()) && m.node.key == master)
        else {
            return;
        };
        for range in ranges {
            for slot in range.iter() {
                let Some(theirs) = old.node.keys.get(&slot) else {
                    continue;
                };
                for key in theirs {
                    if !rn.holds(slot, *key) {
                        self.promotion_gaps.insert(*key);
                    }
                }
            }
        }
    }

    /// Keys of the slots replica `r` takes over in an election Redis ran by itself that `r`
    /// lacks while a sibling (another running replica of the same master) holds them. Redis
    /// ranks siblings by replication offset, but only to delay the later ones: a sibling whose
    /// own attempt failed (no majority, while a partition lasted) waits its retry time (twice
    /// its auth timeout), and a sibling that was cut off meanwhile, lagging, can win first.
    /// The better sibling then resyncs from the winner: a loss Redis makes by itself, as with
    /// its asynchronous replication, which no operator can stop in time (a `CLUSTER FAILOVER
    /// FORCE` on the better sibling starts no election within that retry time either). The
    /// runner counts them as lost to the faults. Elections the operator forces are not
    /// excused: it must pick the best replica.
    pub(crate) fn record_sibling_gap(&mut self, r: Ordinal, master: NodeKey) {
        let Some(ranges) = self.members.get_mut(&r).map(|m| m.node.slots_of(master)) else {
            return;
        };
        let Some(rn) = self.members.get(&r).map(|m| &m.node) else {
            return;
        };
        let mut gaps = Vec::new();
        for sibling in self.members.values().filter(|m| {
            (m.running || m.paused.is_some())
                && m.ordinal != r
                && m.node.master == Some(master)
                && !m.node.is_master()
        }) {
            for range in &ranges {
                for slot in range.iter() {
                    let Some(theirs) = sibling.node.keys.get(&slot) else {
                        continue;
                    };
                    gaps.extend(theirs.iter().filter(|k| !rn.holds(slot, **k)).copied());
                }
            }
        }
        self.promotion_gaps.extend(gaps);
    }
}
