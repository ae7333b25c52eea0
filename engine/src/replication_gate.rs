//! The replication gate: no replica copies a dataset smaller than its own.
//!
//! Redis replicates by address. A replica whose link broke connects again, every second, to
//! the `host:port` it followed, and copies whatever process answers there: a full resync
//! first flushes its own keys. When a master without persistence dies and a new process
//! starts at its address (a kubelet restarts a container without asking; a node reboots)
//! before its replica was promoted, the replica copies the new, empty process and the
//! shard's data is gone, even though the replica held all of it a moment before (seen in
//! kube-sandbox: a node killed and started again within the node timeout).
//!
//! So replicas authenticate as a replication user (`masteruser`) that no server has when it
//! starts: every new process refuses replicas until the engine opens its gate
//! ([`Effect::AllowReplicas`] creates the user), and it opens it only when no replica would
//! lose data by copying it. A replica that would is left with its data until it is promoted
//! (Redis' election, or [`same_node_returned_with_less`] for a master that restarted with
//! its old identity), after which the new process is attached to it as any empty node is.

use crate::effect::{Effect, FailoverMode};
use crate::model::{Addr, NodeState, Observation, Ordinal};

/// The user replicas authenticate as (`masteruser`). No server has it when it starts; the
/// backends create it on a node for [`Effect::AllowReplicas`].
pub const USER: &str = "rop-replication";

/// `masterauth` of the nodes: the cluster's password, or, without one, a fixed word. Redis
/// sends `AUTH` (and so names [`USER`]) only when `masterauth` is set; without a password the
/// replication user takes any password. A replica with no `masterauth` would sync as the
/// default user and walk past the gate.
pub fn masterauth(password: Option<&str>) -> &str {
    password.unwrap_or("no-password")
}

/// A replica that would lose keys if the gate of a node opened now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRisk {
    pub replica: Ordinal,
    /// The node id the replica's cluster view names as its master.
    pub follows_id: Option<String>,
    pub replica_keys: u64,
    pub source_keys: u64,
}

/// The address a replica's replication link connects to: what Redis reports, else the
/// address its own view gives its master (older traces).
fn followed_addr(r: &NodeState) -> Option<&Addr> {
    if let Some(a) = &r.replicates_from {
        return Some(a);
    }
    let master = r.myself()?.master_id.as_deref()?;
    r.view_of(master)?.addr.as_ref()
}

/// The node most at risk if `source` served replicas now, holding more keys than the source
/// would hand it: a replica that follows the source's address with no working link, or a
/// master that claims some of the source's slots (one elected while the source was away:
/// should Redis settle the claims for the source, it would follow it and copy it).
pub fn at_risk(obs: &Observation, source: Ordinal) -> Option<AtRisk> {
    let member = obs.members.get(&source)?;
    let addr = member.addr.as_ref()?;
    let state = member.redis.as_ref()?;
    let claims = state
        .myself()
        .filter(|me| me.is_master())
        .map(|me| me.slots.as_slice())
        .unwrap_or_default();
    obs.members
        .iter()
        .filter(|(o, m)| **o != source && m.running)
        .filter_map(|(o, m)| Some((*o, m.redis.as_ref()?)))
        .filter(|(_, r)| r.keys > state.keys)
        .filter(|(_, r)| {
            r.myself().is_some_and(|me| {
                if me.is_master() {
                    crate::slots::overlap(&me.slots, claims)
                } else {
                    !r.master_link_up && followed_addr(r) == Some(addr)
                }
            })
        })
        .max_by_key(|(o, r)| (r.keys, std::cmp::Reverse(*o)))
        .map(|(o, r)| AtRisk {
            replica: o,
            follows_id: r.myself().and_then(|me| me.master_id.clone()),
            replica_keys: r.keys,
            source_keys: state.keys,
        })
}

/// `AllowReplicas` for every answering node whose gate is closed and safe to open.
pub(crate) fn gates_to_open(obs: &Observation) -> Vec<Effect> {
    obs.members
        .iter()
        .filter(|(_, m)| m.running)
        .filter(|(_, m)| m.redis.as_ref().is_some_and(|r| !r.serves_replicas))
        .filter(|(o, _)| at_risk(obs, **o).is_none())
        .map(|(o, _)| Effect::AllowReplicas { on: *o })
        .collect()
}

/// A master that came back under its old identity (its `nodes.conf` kept) with fewer keys
/// than a replica that follows it: a restart without persistence, or with a stale file. Its
/// gate stays shut, so the replica still holds the shard's data, and Redis will never elect
/// it (its master answers): the replica is forced over, and the master, seeing its slots
/// claimed at a higher epoch, becomes its replica and copies it. Writes the restarted master
/// took in the meantime are lost with its empty dataset; without the gate every key would
/// have been.
pub(crate) fn same_node_returned_with_less(obs: &Observation) -> Vec<Effect> {
    let mut out = Vec::new();
    for (o, m) in &obs.members {
        let Some(state) = m.redis.as_ref().filter(|r| m.running && !r.serves_replicas) else {
            continue;
        };
        let Some(me) = state
            .myself()
            .filter(|me| me.is_master() && !me.slots.is_empty())
        else {
            continue;
        };
        let Some(risk) = at_risk(obs, *o) else {
            continue;
        };
        if risk.follows_id.as_deref() != Some(me.id.as_str()) {
            continue;
        }
        out.push(Effect::Failover {
            on: risk.replica,
            mode: FailoverMode::Force,
        });
    }
    out
}
