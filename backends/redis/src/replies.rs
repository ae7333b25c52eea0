//! A node's state from what it replied (`CLUSTER NODES`, `CLUSTER INFO`, `INFO replication`):
//! pure functions, so the fuzz targets run them on arbitrary replies, apart from the observer
//! that sends the commands.

use engine::model::{NodeState, View, ViewInterner};
use engine::parse::{parse_cluster_nodes, parse_info};
use std::collections::BTreeMap;

/// Valkey (8.0 and later) passes `SETSLOT MIGRATING/IMPORTING` on to a master's replicas, and a
/// replica then shows its master's markers on its own `myself` line; Redis shows none there.
/// They are a copy, not a move of the replica's own (a replica takes no `SETSLOT`): read as
/// Redis shows them, a replica has no open slot, and once promoted its markers are its own.
pub(crate) fn forget_mirrored_markers(myself: &mut engine::ClusterNode) {
    if myself.flags.replica {
        myself.open_slots.clear();
    }
}

/// A node's state from its `CLUSTER NODES`, `CLUSTER INFO` and `INFO replication` replies and
/// its key count: pure, so the fuzz targets run it on arbitrary replies. Open-slot key counts
/// and live settings need more commands and are left empty. A field missing from `INFO` or not
/// a number reads as 0; only an unparseable `CLUSTER NODES` or one without a `myself` line is
/// an error.
pub fn node_state_from_replies(
    nodes_text: &str,
    info_text: &str,
    repl_text: &str,
    keys: u64,
) -> Result<NodeState, String> {
    let nodes = parse_view(nodes_text, &mut ViewInterner::default())?;
    node_state_from_view(nodes, info_text, repl_text, keys)
}

/// A full view parsed, its mirrored markers forgotten (see `forget_mirrored_markers`), on a
/// base `shared` knows when one fits.
pub(crate) fn parse_view(nodes_text: &str, shared: &mut ViewInterner) -> Result<View, String> {
    Ok(shared.view(parse_entries(nodes_text)?))
}

/// A full view parsed into its entries, mirrored markers forgotten: what `parse_view` shares.
pub(crate) fn parse_entries(nodes_text: &str) -> Result<Vec<engine::ClusterNode>, String> {
    let mut nodes = parse_cluster_nodes(nodes_text).map_err(|e| e.to_string())?;
    if let Some(myself) = nodes.iter_mut().find(|n| n.flags.myself) {
        forget_mirrored_markers(myself);
    }
    Ok(nodes)
}

/// A node's state from its parsed full view (read now or remembered from an earlier pass,
/// mirrored markers already forgotten), its `CLUSTER INFO` and `INFO replication` replies and
/// its key count.
pub(crate) fn node_state_from_view(
    nodes: View,
    info_text: &str,
    repl_text: &str,
    keys: u64,
) -> Result<NodeState, String> {
    let id = nodes
        .myself()
        .ok_or_else(|| "no myself line".to_string())?
        .id
        .clone();
    let info = parse_info(info_text);
    let repl = parse_info(repl_text);
    let number = |map: &BTreeMap<&str, &str>, key: &str| {
        map.get(key)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let is_replica = repl.get("role").map(|r| r.trim()) == Some("slave");
    let repl_offset = if is_replica {
        number(&repl, "slave_repl_offset")
    } else {
        number(&repl, "master_repl_offset")
    };
    // -1 while `repl_down_since` is 0: the link has not been up since the node last was a
    // master (promotion and start reset it); losing a link, re-pointing included, sets it.
    let ever_linked = !is_replica
        || repl.get("master_link_status").map(|s| s.trim()) == Some("up")
        || repl
            .get("master_link_down_since_seconds")
            .is_none_or(|v| v.trim() != "-1");
    let replicates_from = match (repl.get("master_host"), repl.get("master_port")) {
        (Some(host), Some(port)) if is_replica => port
            .trim()
            .parse::<u16>()
            .ok()
            .map(|port| engine::Addr::new(host.trim(), port)),
        _ => None,
    };
    Ok(NodeState {
        id,
        ever_linked,
        // Read apart (see `gate_open`); closed until then, as a new process starts.
        serves_replicas: false,
        // Read apart, once per connection (see `observer::read_facts`).
        hands_over_source_first: false,
        replicates_from,
        replid: repl
            .get("master_replid")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
        cluster_ok: info.get("cluster_state").map(|s| s.trim()) == Some("ok"),
        current_epoch: number(&info, "cluster_current_epoch"),
        repl_offset,
        master_link_up: repl.get("master_link_status").map(|s| s.trim()) == Some("up"),
        keys,
        open_slot_keys: BTreeMap::new(),
        config: BTreeMap::new(),
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// `me`'s `CLUSTER NODES`, in the order `first` then the other, with its own pong times.
    fn nodes_text(me: &str, first: &str, pong: u64) -> String {
        let line = |id: &str, port: u16, slots: &str| {
            let myself = if id == me { "myself," } else { "" };
            format!(
                "{id} 127.0.0.1:{port}@{} {myself}master - 0 {pong} 1 connected {slots}\n",
                port + 10000
            )
        };
        let (a, b) = (line(A, 7000, "0-8191"), line(B, 7001, "8192-16383"));
        if first == A { a + &b } else { b + &a }
    }

    #[test]
    fn views_read_in_one_pass_that_differ_only_per_viewer_share_one_base() {
        let mut shared = ViewInterner::default();
        let a = parse_view(&nodes_text(A, A, 10), &mut shared).expect("valid");
        let b = parse_view(&nodes_text(B, B, 20), &mut shared).expect("valid");
        assert!(b.shares_base_with(&a));
        let plain = parse_cluster_nodes(&nodes_text(B, B, 20)).expect("valid");
        assert_eq!(
            b.to_vec(),
            plain,
            "each reads as Redis printed it, order and times kept"
        );
        assert_eq!(b.myself().map(|e| e.id.as_str()), Some(B));
    }

    #[test]
    fn a_view_that_moved_a_slot_gets_a_base_of_its_own() {
        let mut shared = ViewInterner::default();
        let a = parse_view(&nodes_text(A, A, 10), &mut shared).expect("valid");
        let moved = nodes_text(B, A, 10).replace("0-8191", "0-8190");
        let b = parse_view(&moved, &mut shared).expect("valid");
        assert!(!b.shares_base_with(&a));
    }
}
