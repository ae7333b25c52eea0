//! Reads the state of every running member concurrently: one pipelined round trip per node
//! for `CLUSTER NODES`, `CLUSTER INFO`, `INFO replication` and `DBSIZE`, and a second one for
//! the key counts of open slots when the node has any. Once every node answered, nodes that hold
//! keys also count the slots open anywhere else (see `count_keys_of_slots_open_elsewhere`).

use crate::RedisAdapter;
use crate::error::AdapterError;
use engine::Addr;
use engine::model::{Member, MemberInfo, NodeState, Observation, Ordinal};
use engine::parse::{parse_cluster_nodes, parse_info};
use std::collections::BTreeMap;

impl RedisAdapter {
    /// Observes every member; those without an address, not running, or not answering get
    /// `redis: None`. Never fails: an unreachable node is an observation, not an error.
    pub async fn observe(
        &self,
        members: impl IntoIterator<Item = MemberInfo>,
        now_ms: u64,
    ) -> Observation {
        let mut tasks = tokio::task::JoinSet::new();
        let mut out = BTreeMap::new();
        for m in members {
            match (&m.addr, m.running) {
                (Some(addr), true) => {
                    let this = self.clone();
                    let addr = addr.clone();
                    tasks.spawn(async move {
                        let state = match this.observe_node(&addr).await {
                            Ok(state) => Some(state),
                            Err(e) => {
                                tracing::warn!(ordinal = m.ordinal, %addr, error = %e, "node not observed");
                                None
                            }
                        };
                        (m, state)
                    });
                }
                _ => {
                    out.insert(m.ordinal, m.observed(None));
                }
            }
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((m, state)) => {
                    out.insert(m.ordinal, m.observed(state));
                }
                // Only a panic inside the task gets here; the member is then missing from the
                // observation, which the engine treats like a member it cannot see.
                Err(e) => tracing::warn!(error = %e, "observer task failed"),
            }
        }
        self.count_keys_of_slots_open_elsewhere(&mut out).await;
        Observation {
            now_ms,
            members: out,
            ..Observation::default()
        }
    }

    /// A slot open on one node may have keys on others: the target of an interrupted move
    /// died and its replica holds what had moved, or an import was closed by hand. For every
    /// slot open anywhere, each node that holds keys and did not count that slot itself
    /// (it counts its own open slots) reports its count when it is not zero, so the engine
    /// never closes a slot while keys of it sit where no marker shows them.
    async fn count_keys_of_slots_open_elsewhere(&self, members: &mut BTreeMap<Ordinal, Member>) {
        let open: std::collections::BTreeSet<u16> = members
            .values()
            .filter_map(|m| m.redis.as_ref()?.myself())
            .flat_map(|me| me.open_slots.iter().map(|o| o.slot()))
            .collect();
        if open.is_empty() {
            return;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (ordinal, m) in members.iter() {
            let (Some(addr), Some(state)) = (&m.addr, &m.redis) else {
                continue;
            };
            let missing: Vec<u16> = open
                .iter()
                .copied()
                .filter(|s| !state.open_slot_keys.contains_key(s))
                .collect();
            if state.keys == 0 || missing.is_empty() {
                continue;
            }
            let (this, addr, ordinal) = (self.clone(), addr.clone(), *ordinal);
            tasks.spawn(async move {
                let mut pipe = redis::pipe();
                for slot in &missing {
                    pipe.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*slot);
                }
                let counts: Result<Vec<u64>, _> = this
                    .pool
                    .pipe(&addr, &pipe, "CLUSTER COUNTKEYSINSLOT")
                    .await;
                (ordinal, addr, missing, counts)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((ordinal, addr, slots, counts)) = joined else {
                continue;
            };
            match counts {
                Ok(counts) => {
                    if let Some(state) = members.get_mut(&ordinal).and_then(|m| m.redis.as_mut()) {
                        state.open_slot_keys.extend(
                            slots
                                .into_iter()
                                .zip(counts)
                                .filter(|(_, count)| *count > 0),
                        );
                    }
                }
                // A node that stops answering here is not observed at all this time: a
                // partial count could hide keys from the engine.
                Err(e) => {
                    tracing::warn!(ordinal, %addr, error = %e, "node not observed (key counts)");
                    if let Some(m) = members.get_mut(&ordinal) {
                        m.redis = None;
                    }
                }
            }
        }
    }

    /// Reads one node's state.
    pub async fn observe_node(&self, addr: &Addr) -> Result<NodeState, AdapterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("CLUSTER").arg("NODES");
        pipe.cmd("CLUSTER").arg("INFO");
        pipe.cmd("INFO").arg("replication");
        pipe.cmd("DBSIZE");
        let (nodes_text, info_text, repl_text, keys): (String, String, String, u64) =
            self.pool.pipe(addr, &pipe, "observe").await?;
        let mut state = node_state_from_replies(&nodes_text, &info_text, &repl_text, keys)
            .map_err(|message| AdapterError::BadReply {
                addr: addr.clone(),
                command: "CLUSTER NODES".into(),
                message,
            })?;
        let open: Vec<u16> = state
            .myself()
            .map(|me| me.open_slots.iter().map(|s| s.slot()).collect())
            .unwrap_or_default();
        if !open.is_empty() {
            let mut pipe = redis::pipe();
            for slot in &open {
                pipe.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*slot);
            }
            let counts: Vec<u64> = self
                .pool
                .pipe(addr, &pipe, "CLUSTER COUNTKEYSINSLOT")
                .await?;
            state
                .open_slot_keys
                .extend(open.iter().copied().zip(counts));
        }
        state.config = self.live_config(addr).await;
        state.serves_replicas = self.gate_open(addr).await;
        Ok(state)
    }

    /// Whether the node's replication gate is open: the replication user exists and is on.
    /// A server that refuses `ACL` (renamed or disabled by a provider) has no gate this
    /// operator can open; it is reported open, as before the gate existed, so nothing waits
    /// on it.
    async fn gate_open(&self, addr: &Addr) -> bool {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("GETUSER").arg(engine::replication_gate::USER);
        match self.pool.query::<redis::Value>(addr, &cmd).await {
            Ok(reply) => user_is_on(&reply),
            Err(AdapterError::Redis { message, .. }) => {
                tracing::debug!(%addr, error = %message, "ACL refused; replication gate not used");
                true
            }
            Err(_) => false,
        }
    }

    /// The live-settable settings and whether the node persists, as `CONFIG GET` prints them.
    /// A server that refuses `CONFIG` (renamed or disabled by a provider) reports none, and
    /// the engine leaves them alone (and never restarts a master in place).
    async fn live_config(&self, addr: &Addr) -> BTreeMap<String, String> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET");
        for name in engine::desired::LIVE_SETTINGS {
            cmd.arg(*name);
        }
        cmd.arg(engine::desired::PERSISTENCE_SETTING);
        match self
            .pool
            .query::<BTreeMap<String, String>>(addr, &cmd)
            .await
        {
            Ok(map) => map,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "CONFIG GET refused; live settings not compared");
                BTreeMap::new()
            }
        }
    }
}

/// Valkey (8.0 and later) passes `SETSLOT MIGRATING/IMPORTING` on to a master's replicas, and a
/// replica then shows its master's markers on its own `myself` line; Redis shows none there.
/// They are a copy, not a move of the replica's own (a replica takes no `SETSLOT`): read as
/// Redis shows them, a replica has no open slot, and once promoted its markers are its own.
fn forget_mirrored_markers(myself: &mut engine::ClusterNode) {
    if myself.flags.replica {
        myself.open_slots.clear();
    }
}

/// `ACL GETUSER` answers nil for an unknown user, else a map (RESP3) or a flat list (RESP2)
/// of fields, `flags` among them.
fn user_is_on(reply: &redis::Value) -> bool {
    use redis::Value;
    let flags = match reply {
        Value::Array(items) => items
            .chunks(2)
            .find(|kv| matches!(&kv[0], Value::BulkString(k) if k == b"flags"))
            .and_then(|kv| kv.get(1)),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| matches!(k, Value::BulkString(k) if k == b"flags"))
            .map(|(_, v)| v),
        _ => None,
    };
    let Some(Value::Array(flags) | Value::Set(flags)) = flags else {
        return false;
    };
    flags.iter().any(|f| match f {
        Value::BulkString(b) => b == b"on",
        Value::SimpleString(s) => s == "on",
        _ => false,
    })
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
    let mut nodes = parse_cluster_nodes(nodes_text).map_err(|e| e.to_string())?;
    let myself = nodes
        .iter_mut()
        .find(|n| n.flags.myself)
        .ok_or_else(|| "no myself line".to_string())?;
    forget_mirrored_markers(myself);
    let id = myself.id.clone();
    let info = parse_info(info_text);
    let repl = parse_info(repl_text);
    let number = |map: &BTreeMap<String, String>, key: &str| {
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
