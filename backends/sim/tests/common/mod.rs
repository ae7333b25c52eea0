//! Helpers shared by the simulator's hand-driven tests: a cluster built effect by effect, ticks,
//! a node's own view.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use engine::slots::even_split;
use engine::{Effect, Observation, Ordinal};
use redis_operator_sim::node::PORT;
use redis_operator_sim::{ApplyError, Cluster, ServerModel, StepBudget};

pub const TIMEOUT: u64 = 3000;

/// Applies `e`; a node it starts also gets its replication gate opened, as the engine's next
/// pass would when no replica is at risk (tests of the gate itself use `Cluster::apply`).
pub fn apply(c: &mut Cluster, e: Effect) -> Result<(), ApplyError> {
    c.apply(&e, &mut StepBudget::unlimited())?;
    if let Effect::CreateNode { ordinal } | Effect::ReplaceNode { ordinal } = e {
        c.apply(
            &Effect::AllowReplicas { on: ordinal },
            &mut StepBudget::unlimited(),
        )?;
    }
    Ok(())
}

pub fn id(c: &Cluster, o: Ordinal) -> String {
    c.id(c.members[&o].node.key).to_string()
}

pub fn ticks(c: &mut Cluster, n: u32) {
    for _ in 0..n {
        c.tick(1000);
    }
}

/// `masters` masters with slots split evenly, then `replicas` replicas each (ordinals after
/// the masters, replica `r` of master `m` at `masters + m * replicas + r`).
pub fn cluster(masters: u32, replicas: u32) -> Cluster {
    cluster_on(ServerModel::default(), masters, replicas)
}

/// [`cluster`], its nodes following `server`'s rules.
pub fn cluster_on(server: ServerModel, masters: u32, replicas: u32) -> Cluster {
    let mut c = Cluster::new(42, TIMEOUT);
    c.server = server;
    let total = masters * (replicas + 1);
    for o in 0..total {
        apply(&mut c, Effect::CreateNode { ordinal: o }).unwrap();
    }
    for (o, r) in even_split(masters).into_iter().enumerate() {
        apply(
            &mut c,
            Effect::AddSlots {
                on: o as Ordinal,
                slots: vec![r],
            },
        )
        .unwrap();
    }
    for o in 1..total {
        meet_node_0(&mut c, o);
    }
    ticks(&mut c, 3);
    for m in 0..masters {
        for r in 0..replicas {
            let on = masters + m * replicas + r;
            let master_id = id(&c, m);
            apply(&mut c, Effect::Replicate { on, master_id }).unwrap();
        }
    }
    ticks(&mut c, 5);
    c
}

pub fn myself(obs: &Observation, o: Ordinal) -> engine::ClusterNode {
    obs.members[&o]
        .redis
        .as_ref()
        .unwrap()
        .myself()
        .unwrap()
        .clone()
}

pub fn write_keys(c: &mut Cluster, client: &mut redis_operator_sim::client::Client, n: u32) {
    for _ in 0..n {
        assert!(client.write(c), "a healthy cluster acknowledges writes");
    }
}

/// `CLUSTER MEET` from node 0 to member `o`.
pub fn meet_node_0(c: &mut Cluster, o: Ordinal) {
    let ip = c.members[&o].ip();
    apply(
        c,
        Effect::Meet {
            on: 0,
            ip,
            port: PORT,
        },
    )
    .unwrap();
}

/// Plants `n` acknowledged keys in `slot` on master `o` and its synced replicas.
pub fn plant(
    c: &mut Cluster,
    client: &mut redis_operator_sim::client::Client,
    o: Ordinal,
    slot: u16,
    n: u64,
) -> Vec<u64> {
    let keys: Vec<u64> = (0..n)
        .map(|k| 5_000_000 + u64::from(slot) * 1000 + k)
        .collect();
    let node = &mut c.members.get_mut(&o).unwrap().node;
    node.keys
        .entry(slot)
        .or_default()
        .extend(keys.iter().copied());
    for k in &keys {
        client.acked.insert(*k, slot);
    }
    c.mirror_slot(o, slot);
    keys
}
