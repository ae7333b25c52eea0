//! A simulated cluster rebuilt from one recorded observation, so that a what-if can go on
//! from the moment a trace shows (`simulate replay --set/--spec`).
//!
//! What an observation does not say is filled in plainly: keys are known only as counts
//! (`DBSIZE`, `COUNTKEYSINSLOT` of open slots), so each node gets that many made-up keys, in
//! its open slots first and then spread over the slots it owns; a replica whose link is up
//! holds its master's. A member that is running but did not answer is restored stopped. A
//! member that did not answer keeps the id, role and epoch the others list at its address
//! and the slot table of the first node that answered, with no keys. Addresses become the
//! simulator's (`10.0.x.y:6379`). A node is given at most [`MAX_MADE_UP_KEYS`] keys: the
//! simulator holds every key, and a production node's millions would only cost memory.

use crate::cluster::Cluster;
use crate::node::{Member, NodeKey, PORT, Peer, RedisNode, ip_for, start_config};
use engine::{ClusterNode, Desired, NodeState, Observation, OpenSlot, Ordinal};
use std::collections::{BTreeMap, BTreeSet};

/// Made-up keys per restored node, at most.
pub const MAX_MADE_UP_KEYS: u64 = 100_000;

impl Cluster {
    /// The cluster `obs` shows, ready to run under `desired`.
    pub fn from_observation(obs: &Observation, desired: &Desired, seed: u64) -> Cluster {
        let mut c = Cluster::new(seed, desired.node_timeout_ms);
        c.now_ms = obs.now_ms;
        c.persistent = desired.persistent;
        c.fingerprint = desired.fingerprint.clone();
        let ids = member_ids(obs);
        // Every id any view lists, interned in a fixed order (members first).
        for id in ids.values() {
            c.intern(id);
        }
        for state in obs.members.values().filter_map(|m| m.redis.as_ref()) {
            for e in &state.nodes {
                c.intern(&e.id);
            }
        }
        let address: BTreeMap<NodeKey, (String, u16)> = ids
            .iter()
            .map(|(&o, id)| (c.intern(id), (ip_for(o, 0), PORT)))
            .collect();
        let table = obs
            .members
            .values()
            .find_map(|m| m.redis.as_ref())
            .map(|s| s.nodes.to_vec())
            .unwrap_or_default();
        let mut next_key = 0u64;
        for (&o, m) in &obs.members {
            let Some(id) = ids.get(&o) else { continue };
            let key = c.intern(id);
            let answered = m.running && m.redis.is_some();
            let node = match &m.redis {
                Some(state) if answered => {
                    restored_node(&mut c, key, state, &address, obs.now_ms, &mut next_key)
                }
                _ => {
                    // Known only from the others: its line in their views, their slot table.
                    let line = obs
                        .members
                        .values()
                        .filter_map(|x| x.redis.as_ref())
                        .flat_map(|s| s.nodes.iter())
                        .find(|e| e.id == *id)
                        .cloned();
                    let mut state = NodeState {
                        id: id.clone(),
                        nodes: table
                            .iter()
                            .map(|e| ClusterNode {
                                flags: engine::NodeFlags {
                                    myself: e.id == *id,
                                    ..e.flags
                                },
                                ..e.clone()
                            })
                            .collect(),
                        cluster_ok: false,
                        current_epoch: 0,
                        repl_offset: 0,
                        master_link_up: false,
                        keys: 0,
                        open_slot_keys: BTreeMap::new(),
                        ever_linked: false,
                        serves_replicas: true,
                        replicates_from: None,
                        hands_over_source_first: false,
                        replid: None,
                        config: BTreeMap::new(),
                    };
                    if !state.nodes.iter().any(|e| e.flags.myself)
                        && let Some(mut line) = line
                    {
                        line.flags.myself = true;
                        state.nodes.entries_mut().push(line);
                    }
                    let mut n = restored_node(&mut c, key, &state, &address, obs.now_ms, &mut 0);
                    n.keys.clear();
                    n
                }
            };
            c.members.insert(
                o,
                Member {
                    ordinal: o,
                    running: answered,
                    address_generation: 0,
                    has_nodes_conf: true,
                    fingerprint: m.fingerprint.clone(),
                    node,
                    paused: None,
                },
            );
        }
        mirror_synced_replicas(&mut c);
        c
    }
}

/// The node id each member runs: its own answer, else the id the others list at its address.
fn member_ids(obs: &Observation) -> BTreeMap<Ordinal, String> {
    let mut out = BTreeMap::new();
    let mut fresh = 0u64;
    for (&o, m) in &obs.members {
        let id = m.redis.as_ref().map(|s| s.id.clone()).or_else(|| {
            let addr = m.addr.as_ref()?;
            obs.members
                .values()
                .filter_map(|x| x.redis.as_ref())
                .flat_map(|s| s.nodes.iter())
                .find(|e| e.addr.as_ref() == Some(addr))
                .map(|e| e.id.clone())
        });
        let id = id.unwrap_or_else(|| {
            // Never seen by anyone: a node of its own.
            fresh += 1;
            format!("{:040x}", 0xdead_0000_u64 + fresh)
        });
        out.insert(o, id);
    }
    out
}

fn restored_node(
    c: &mut Cluster,
    key: NodeKey,
    state: &NodeState,
    address: &BTreeMap<NodeKey, (String, u16)>,
    now: u64,
    next_key: &mut u64,
) -> RedisNode {
    let mut n = RedisNode::new(key);
    n.current_epoch = state.current_epoch;
    n.repl_offset = state.repl_offset;
    n.linked_since_master = state.ever_linked;
    // The address a replica follows is learnt from its live master on the first tick; the
    // recorded one names a real host the simulator does not use.
    n.serves_replicas = state.serves_replicas;
    n.config = if state.config.is_empty() {
        start_config()
    } else {
        state.config.clone()
    };
    for e in &state.nodes {
        let k = c.intern(&e.id);
        let master = e.master_id.as_deref().map(|m| c.intern(m));
        for slot in engine::slots::expand(&e.slots) {
            if let Some(owner) = n.owners.get_mut(usize::from(slot)) {
                *owner = k;
            }
        }
        if e.flags.myself {
            n.master = master;
            n.config_epoch = e.config_epoch;
            for open in &e.open_slots {
                match open {
                    OpenSlot::Migrating { slot, target } => {
                        n.migrating.insert(*slot, c.intern(target));
                    }
                    OpenSlot::Importing { slot, source } => {
                        n.importing.insert(*slot, c.intern(source));
                    }
                }
            }
            continue;
        }
        let (ip, port) = address.get(&k).cloned().unwrap_or_else(|| {
            e.addr
                .as_ref()
                .map_or((String::new(), 0), |a| (a.ip.clone(), a.port))
        });
        n.peers.insert(
            k,
            Peer {
                ip,
                port,
                master,
                config_epoch: e.config_epoch,
                last_pong_ms: now,
                pfail: e.flags.pfail,
                fail: e.flags.fail,
                fail_since_ms: now,
                failure_reports: BTreeMap::new(),
            },
        );
    }
    if n.master.is_some() {
        n.synced = state.master_link_up;
        n.last_sync_ms = state.master_link_up.then_some(now);
    }
    // Made-up keys: the open slots' counts first, the rest one per owned slot in turn.
    let mut left = state.keys.min(MAX_MADE_UP_KEYS);
    for (&slot, &count) in &state.open_slot_keys {
        let count = count.min(left);
        n.keys
            .entry(slot)
            .or_default()
            .extend(*next_key..*next_key + count);
        *next_key += count;
        left -= count;
    }
    let owned: Vec<u16> = (0..engine::SLOT_COUNT)
        .filter(|&s| n.owners.get(usize::from(s)) == Some(&key))
        .collect();
    if !owned.is_empty() {
        for i in 0..left {
            let slot = owned[(i as usize) % owned.len()];
            n.keys.entry(slot).or_default().insert(*next_key);
            *next_key += 1;
        }
    }
    n
}

/// A replica whose link is up holds what its master holds.
fn mirror_synced_replicas(c: &mut Cluster) {
    let datasets: BTreeMap<NodeKey, BTreeMap<u16, BTreeSet<u64>>> = c
        .members
        .values()
        .map(|m| (m.node.key, m.node.keys.clone()))
        .collect();
    for m in c.members.values_mut() {
        if let (Some(master), true) = (m.node.master, m.node.synced)
            && let Some(keys) = datasets.get(&master)
        {
            m.node.keys = keys.clone();
        }
    }
}
