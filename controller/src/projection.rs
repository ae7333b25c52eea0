//! One projection of an observation into what users see: the HTTP directory's entries and the
//! CLI tables read the same role, slots and health from here.

use crate::http::NodeEntry;
use engine::{ClusterNode, Member, Observation};

/// A node's role as users see it, by the engine's one definition ([`ClusterNode::is_master`])
/// applied to the node's own `myself` line.
pub fn role(me: &ClusterNode) -> &'static str {
    if me.is_master() { "master" } else { "replica" }
}

/// A member whose process runs and whose node answers with `cluster_state:ok`.
pub fn healthy(m: &Member) -> bool {
    m.running && m.redis.as_ref().is_some_and(|s| s.cluster_ok)
}

/// What the HTTP API serves: every node that answered, with its role and slots.
pub fn node_entries(obs: &Observation) -> Vec<NodeEntry> {
    obs.members
        .values()
        .filter_map(|m| {
            let me = m.redis.as_ref()?.myself()?;
            let addr = m.addr.as_ref()?;
            Some(NodeEntry {
                ip: addr.ip.clone(),
                port: addr.port,
                role: role(me).to_string(),
                node_id: me.id.clone(),
                master_id: me.master_id.clone(),
                slots: engine::slots::format_ranges(&me.slots),
                healthy: healthy(m),
            })
        })
        .collect()
}
