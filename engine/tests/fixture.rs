//! Builds observations of clusters in known shapes for the engine tests.
#![allow(dead_code)]

use redis_operator_engine::model::*;
use redis_operator_engine::slots::{SlotRange, even_split};
use std::collections::BTreeMap;

pub fn id(n: u32) -> String {
    format!("{:040x}", u64::from(n) + 0xabc000)
}

pub fn addr(ord: u32) -> Addr {
    Addr::new("127.0.0.1", 13000 + ord as u16)
}

pub struct Node {
    pub ord: u32,
    pub id: String,
    pub master: Option<String>,
    pub slots: Vec<SlotRange>,
    pub keys: u64,
    pub running: bool,
    pub open: Vec<OpenSlot>,
    pub open_keys: BTreeMap<u16, u64>,
    pub fail: bool,
}

impl Node {
    pub fn new(ord: u32) -> Self {
        Self {
            ord,
            id: id(ord),
            master: None,
            slots: Vec::new(),
            keys: 0,
            running: true,
            open: Vec::new(),
            open_keys: BTreeMap::new(),
            fail: false,
        }
    }

    fn entry(&self, myself: bool) -> ClusterNode {
        ClusterNode {
            id: self.id.clone(),
            addr: Some(addr(self.ord)),
            hostname: None,
            flags: NodeFlags {
                myself,
                master: self.master.is_none(),
                replica: self.master.is_some(),
                fail: self.fail && !myself,
                ..NodeFlags::default()
            },
            master_id: self.master.clone(),
            ping_sent_ms: 0,
            pong_recv_ms: 1_000,
            config_epoch: u64::from(self.ord) + 1,
            link: LinkState::Connected,
            slots: self.slots.clone(),
            open_slots: if myself {
                self.open.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// An observation where every running node sees every node (a settled cluster), or, when
/// `alone`, where every node only knows itself (fresh nodes). Views that list the same nodes
/// alike share one base, as a real observer builds them.
pub fn observe(nodes: &[Node], alone: bool, now_ms: u64) -> Observation {
    let mut members = BTreeMap::new();
    let mut views = ViewInterner::default();
    for n in nodes {
        let state = n.running.then(|| NodeState {
            id: n.id.clone(),
            nodes: views.view(
                nodes
                    .iter()
                    .filter(|o| !alone || o.ord == n.ord)
                    .map(|o| o.entry(o.ord == n.ord))
                    .collect(),
            ),
            cluster_ok: !alone && nodes.iter().all(|o| o.running || o.master.is_some()),
            current_epoch: 10,
            repl_offset: 100,
            master_link_up: n.master.is_some(),
            keys: n.keys,
            open_slot_keys: n.open_keys.clone(),
            ever_linked: true,
            serves_replicas: true,
            replicates_from: None,
            hands_over_source_first: false,
            replid: None,
            config: Default::default(),
        });
        members.insert(
            n.ord,
            Member {
                ordinal: n.ord,
                addr: Some(addr(n.ord)),
                running: n.running,
                host: None,
                fingerprint: None,
                redis: state,
            },
        );
    }
    Observation {
        now_ms,
        members,
        ..Observation::default()
    }
}

/// `masters` masters with an even split and `replicas` replicas each, ordinals masters first.
pub fn healthy(masters: u32, replicas: u32) -> Vec<Node> {
    let split = even_split(masters);
    let mut nodes: Vec<Node> = (0..masters)
        .map(|i| {
            let mut n = Node::new(i);
            n.slots = vec![split[i as usize]];
            n.keys = 10;
            n
        })
        .collect();
    for r in 0..masters * replicas {
        let mut n = Node::new(masters + r);
        n.master = Some(id(r % masters));
        n.keys = 10;
        nodes.push(n);
    }
    nodes
}

/// What member `ord` answered; it must have answered.
pub fn state(obs: &mut Observation, ord: u32) -> &mut NodeState {
    obs.members
        .get_mut(&ord)
        .and_then(|m| m.redis.as_mut())
        .expect("the member answered")
}

/// `nodes` observed a minute on, with #0's process gone and every view flagging it failed.
pub fn observe_with_master_0_dead(mut nodes: Vec<Node>) -> Observation {
    nodes[0].running = false;
    nodes[0].fail = true;
    observe(&nodes, false, 60_000)
}

/// Sets the config epoch every view (the node's own line included) shows for node `n`.
pub fn set_epoch(obs: &mut Observation, n: u32, epoch: u64) {
    for state in obs.members.values_mut().filter_map(|m| m.redis.as_mut()) {
        for e in state
            .nodes
            .entries_mut()
            .iter_mut()
            .filter(|e| e.id == id(n))
        {
            e.config_epoch = epoch;
        }
    }
}

/// Sets the current epoch every answering node reports.
pub fn set_current_epoch(obs: &mut Observation, epoch: u64) {
    for state in obs.members.values_mut().filter_map(|m| m.redis.as_mut()) {
        state.current_epoch = epoch;
    }
}

/// Node `n` also claims `slots` on its own line (not in anyone else's view).
pub fn claim_also(obs: &mut Observation, n: u32, slots: SlotRange) {
    if let Some(s) = obs.members.get_mut(&n).and_then(|m| m.redis.as_mut()) {
        for me in s
            .nodes
            .entries_mut()
            .iter_mut()
            .filter(|e| e.flags.myself)
            .take(1)
        {
            me.slots.push(slots);
        }
    }
}

/// The decision's effects are exactly `expected` (its summary says why when not).
pub fn assert_effects(
    decision: &redis_operator_engine::Decision,
    expected: &[redis_operator_engine::Effect],
) {
    assert_eq!(decision.effects, expected, "{}", decision.summary);
}
