//! Elections: a replica of a failed master asks the serving masters for votes (Redis'
//! automatic failover), or is told to by the operator (`CLUSTER FAILOVER`).

use crate::cluster::Cluster;
use crate::gossip::promote;
use crate::node::NodeKey;
use engine::Ordinal;

/// `cluster-replica-validity-factor` (default 10).
const VALIDITY_FACTOR: u64 = 10;

/// How long a replica that started an election waits before it starts another, forced or its
/// own (Redis 7.0 `clusterHandleSlaveFailover`: twice the auth timeout, itself twice the node
/// timeout and at least 2 s). A forced election that loses thus holds Redis' own back.
fn retry_ms(node_timeout_ms: u64) -> u64 {
    2 * (2 * node_timeout_ms).max(2000)
}

impl Cluster {
    pub(crate) fn auto_failover(&mut self) {
        let now = self.now_ms;
        let timeout = self.node_timeout_ms;
        for o in self.ordinals() {
            let offsets: Vec<(NodeKey, u64)> = self
                .members
                .values()
                .filter(|m| m.running)
                .map(|m| (m.node.key, m.node.repl_offset))
                .collect();
            let jitter = self.rng.below(500);
            let Some(m) = self.members.get_mut(&o).filter(|m| m.running) else {
                continue;
            };
            let n = &mut m.node;
            let Some(mk) = n.master else { continue };
            let master_failed = n.peers.get(&mk).is_some_and(|p| p.fail);
            let has_slots = n.slot_count_of(mk) > 0;
            let fresh = n
                .last_sync_ms
                .is_some_and(|t| now.saturating_sub(t) <= timeout * VALIDITY_FACTOR + timeout);
            if !(master_failed && has_slots && fresh) {
                n.failover_at = None;
                continue;
            }
            match n.failover_at {
                None => {
                    let mine = n.repl_offset;
                    let siblings: Vec<NodeKey> = n
                        .peers
                        .iter()
                        .filter(|(_, p)| p.master == Some(mk))
                        .map(|(k, _)| *k)
                        .collect();
                    let rank = offsets
                        .iter()
                        .filter(|(k, off)| siblings.contains(k) && *off > mine)
                        .count() as u64;
                    n.failover_at = Some(now + 500 + jitter + rank * 1000);
                }
                Some(at) if now >= at => {
                    // An election this replica started lately (a forced one, say) holds its
                    // own back until the retry time is over.
                    let free_at = n.election_ms.map_or(0, |t| t + retry_ms(timeout));
                    if now < free_at {
                        n.failover_at = Some(free_at + 500 + jitter);
                    } else if !self.election(o, mk, true)
                        && let Some(m) = self.members.get_mut(&o)
                    {
                        m.node.failover_at = Some(now + retry_ms(timeout));
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// A replica asks the serving masters for votes; with a majority it takes over its
    /// master's slots under a new epoch. `require_fail`: voters must see the master failed
    /// (automatic failover); a forced manual failover skips that.
    pub fn election(&mut self, r: Ordinal, master: NodeKey, require_fail: bool) -> bool {
        let (now, timeout) = (self.now_ms, self.node_timeout_ms);
        let Some(rm) = self.members.get_mut(&r) else {
            return false;
        };
        let needed = rm.node.serving_masters().len() / 2 + 1;
        let max_epoch = self
            .members
            .values()
            .map(|m| m.node.current_epoch)
            .max()
            .unwrap_or(0);
        let Some(rm) = self.members.get_mut(&r) else {
            return false;
        };
        if rm
            .node
            .election_ms
            .is_some_and(|t| now < t + retry_ms(timeout))
        {
            return false;
        }
        rm.node.election_ms = Some(now);
        let epoch = rm.node.current_epoch.max(max_epoch) + 1;
        rm.node.current_epoch = epoch;
        let rkey = rm.node.key;
        // The request carries the slots the candidate's view gives its master and that
        // master's config epoch there: a voter that knows a newer owner for any of them
        // refuses (Redis' `clusterSendFailoverAuthIfNeeded`), so a replica with a stale view
        // (one that was paused while its master was replaced) never takes them back.
        let claimed: Vec<u16> = rm
            .node
            .slots_of(master)
            .iter()
            .flat_map(|r| r.iter())
            .collect();
        let claimed_epoch = rm.node.peers.get(&master).map_or(0, |p| p.config_epoch);
        let mut votes = 0;
        for v in self.ordinals() {
            if v == r || !self.can_talk(r, v) {
                continue;
            }
            let Some(vm) = self.members.get_mut(&v) else {
                continue;
            };
            let vn = &mut vm.node;
            let vkey = vn.key;
            let serves = vn.is_master() && vn.slot_count_of(vkey) > 0;
            let knows_replica = vn
                .peers
                .get(&rkey)
                .is_some_and(|p| p.master == Some(master));
            let sees_fail = vn.peers.get(&master).is_some_and(|p| p.fail);
            let voted_lately = vn
                .voted_for_master
                .get(&master)
                .is_some_and(|t| now.saturating_sub(*t) < 2 * timeout);
            let newer_owner = claimed.iter().any(|s| {
                let owner = vn.owner(*s);
                let owner_epoch = if owner == vkey {
                    vn.config_epoch
                } else {
                    vn.peers.get(&owner).map_or(0, |p| p.config_epoch)
                };
                owner_epoch > claimed_epoch
            });
            if serves
                && knows_replica
                && (sees_fail || !require_fail)
                && vn.last_vote_epoch < epoch
                && !voted_lately
                && !newer_owner
            {
                vn.last_vote_epoch = epoch;
                vn.voted_for_master.insert(master, now);
                vn.current_epoch = vn.current_epoch.max(epoch);
                votes += 1;
            }
        }
        if votes < needed {
            return false;
        }
        self.record_promotion_gap(r, master);
        if require_fail {
            self.record_sibling_gap(r, master);
        }
        if let Some(rm) = self.members.get_mut(&r) {
            promote(&mut rm.node, master, epoch);
        }
        // Redis (clusterFailoverReplaceYourMaster): the new master tells everyone at once.
        self.broadcast_pong(r);
        true
    }

    /// Replica `r` becomes master in `master`'s place under an epoch above every node's, with
    /// no vote (`CLUSTER FAILOVER TAKEOVER`, or an election the model does not run step by
    /// step); the caller decides when the others hear of it.
    pub(crate) fn take_over(&mut self, r: Ordinal, master: NodeKey) {
        let epoch = self
            .members
            .values()
            .map(|m| m.node.current_epoch)
            .max()
            .unwrap_or(0)
            + 1;
        self.record_promotion_gap(r, master);
        if let Some(m) = self.members.get_mut(&r) {
            promote(&mut m.node, master, epoch);
        }
    }
}
