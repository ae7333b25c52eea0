//! A simulated application writing keys, and the ledger of what it was promised.
//!
//! Keys are integer ids, each written once, so a lost key is simply one no longer found on its
//! slot's owner. A write is acknowledged only when a master that the client reaches, that owns
//! the slot (or imports it, after an ASK redirect) and whose `cluster_state` is ok accepted
//! it. Replication is synchronous for acknowledged writes (see `docs/simulator.md`).

use crate::cluster::Cluster;
use crate::node::NodeKey;
use crate::rng::mix;
use engine::Ordinal;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default)]
pub struct Client {
    next_key: u64,
    /// Acknowledged key -> slot.
    pub acked: BTreeMap<u64, u16>,
    /// Acknowledged keys whose every copy died with crashed processes: losses the faults
    /// caused, which no operator could prevent.
    pub lost_to_faults: BTreeSet<u64>,
    /// Acknowledged keys that had no copy left before this step's environment faults (an
    /// effect lost them): a fault must not take the blame, or it would hide the engine's loss.
    pub dead_before_fault: BTreeSet<u64>,
    /// Acknowledged keys lost with the node the operator had migrated them to while it had
    /// no synced replica and the spec asked for replicas (`Cluster::exposed`): by holder.
    pub lost_to_operator: BTreeMap<u64, NodeKey>,
    pub refused: u64,
}

pub fn slot_of(key: u64) -> u16 {
    (mix(key) % u64::from(engine::SLOT_COUNT)) as u16
}

impl Client {
    /// Where a client with a fresh routing table sends `slot`: the running master it reaches
    /// that claims the slot under the highest config epoch.
    /// The master a client's write to `slot` reaches. With `serving`, only if that master
    /// reports `cluster_state:ok` (it refuses writes otherwise).
    fn route(cluster: &mut Cluster, slot: u16, serving: bool) -> Option<Ordinal> {
        let mut best: Option<(u64, Ordinal)> = None;
        for o in cluster.ordinals() {
            if !cluster.client_reaches(o) {
                continue;
            }
            let Some(m) = cluster.members.get(&o) else {
                continue;
            };
            let n = &m.node;
            if !n.is_master() || n.owner(slot) != n.key {
                continue;
            }
            let epoch = n.config_epoch;
            if best.is_none_or(|(e, _)| epoch > e) {
                best = Some((epoch, o));
            }
        }
        let (_, o) = best?;
        (!serving || cluster.cluster_ok(o)).then_some(o)
    }

    /// Writes one new key; returns whether it was acknowledged.
    pub fn write(&mut self, cluster: &mut Cluster) -> bool {
        let key = self.next_key;
        self.next_key += 1;
        let slot = slot_of(key);
        let Some(owner) = Self::route(cluster, slot, true) else {
            self.refused += 1;
            return false;
        };
        // A migrating slot: keys not on the source go to the importing target (ASK).
        let ask: Option<NodeKey> = cluster
            .members
            .get(&owner)
            .and_then(|m| m.node.migrating.get(&slot).copied());
        let dest = match ask {
            None => owner,
            Some(target) => {
                let t = cluster
                    .ordinal_of(target)
                    .filter(|t| cluster.client_reaches(*t));
                let importing = t
                    .and_then(|t| cluster.members.get(&t))
                    .is_some_and(|m| m.node.importing.contains_key(&slot));
                // The target checks its own `cluster_state` before serving `ASKING` + a write,
                // as it does for any keyed command: CLUSTERDOWN while it is down.
                let importing = importing && t.is_some_and(|t| cluster.cluster_ok(t));
                match t {
                    Some(t) if importing => t,
                    _ => {
                        self.refused += 1;
                        return false;
                    }
                }
            }
        };
        if let Some(m) = cluster.members.get_mut(&dest) {
            m.node.keys.entry(slot).or_default().insert(key);
            m.node.repl_offset += 1;
        }
        cluster.mirror_slot(dest, slot);
        self.acked.insert(key, slot);
        // A master cut off from the node that replaced it still serves its old slots until
        // it hears of the newer claim (Redis' stale-master window): what it acknowledges
        // meanwhile is dropped when it rejoins as a replica. Lost to the partition, not to
        // the operator.
        if ask.is_none() && Self::superseded(cluster, owner, slot) {
            self.lost_to_faults.insert(key);
        }
        true
    }

    /// Some running master claims `slot` in its own table under a newer epoch than `owner`.
    fn superseded(cluster: &Cluster, owner: Ordinal, slot: u16) -> bool {
        let Some(epoch) = cluster.members.get(&owner).map(|m| m.node.config_epoch) else {
            return false;
        };
        cluster.members.values().any(|m| {
            m.running
                && m.ordinal != owner
                && m.node.is_master()
                && m.node.owner(slot) == m.node.key
                && m.node.config_epoch > epoch
        })
    }

    /// Acknowledged keys an elected replica lacked while its cut-off master had them: lost
    /// by Redis' asynchronous replication when that master rejoins (see `Cluster::promotion_gaps`).
    pub fn account_promotion_gaps(&mut self, cluster: &mut Cluster) {
        for key in std::mem::take(&mut cluster.promotion_gaps) {
            if self.acked.contains_key(&key) {
                self.lost_to_faults.insert(key);
            }
        }
    }

    /// After a crash or a data-losing restart: acknowledged keys with no copy left (in memory
    /// on a running node, or on the volume of a stopped one with persistence) are lost to the
    /// fault itself, except keys the operator had exposed (see `Cluster::exposed`), which are
    /// lost to the operator.
    pub fn account_losses(&mut self, cluster: &Cluster) {
        for (key, slot) in &self.acked {
            if self.lost_to_faults.contains(key)
                || self.lost_to_operator.contains_key(key)
                || self.dead_before_fault.contains(key)
            {
                continue;
            }
            let alive = cluster
                .members
                .keys()
                .any(|o| cluster.keeps(*o, *slot, *key));
            if alive {
                continue;
            }
            match cluster.exposed.get(key) {
                Some(holder) => {
                    self.lost_to_operator.insert(*key, *holder);
                }
                None => {
                    self.lost_to_faults.insert(*key);
                }
            }
        }
    }

    /// Records the acknowledged keys that have no copy left now, before faults strike.
    pub fn note_dead(&mut self, cluster: &Cluster) {
        self.dead_before_fault = self
            .acked
            .iter()
            .filter(|(key, slot)| {
                !self.lost_to_faults.contains(*key)
                    && !self.lost_to_operator.contains_key(*key)
                    && !cluster
                        .members
                        .keys()
                        .any(|o| cluster.keeps(*o, **slot, **key))
            })
            .map(|(key, _)| *key)
            .collect();
    }

    /// Acknowledged keys (not lost to faults) missing from their slot's owner.
    pub fn missing(&self, cluster: &mut Cluster) -> Vec<(u64, u16)> {
        let mut out = Vec::new();
        for (key, slot) in &self.acked {
            if self.lost_to_faults.contains(key) || self.lost_to_operator.contains_key(key) {
                continue;
            }
            // Held by the master that owns the slot, whether or not the cluster serves right
            // now (a `Degraded` end keeps `cluster_state:fail` while slots are lost).
            let found = Self::route(cluster, *slot, false)
                .and_then(|o| cluster.members.get(&o))
                .is_some_and(|m| m.node.holds(*slot, *key));
            if !found {
                out.push((*key, *slot));
            }
        }
        out
    }
}
