//! Reads the state of every running member concurrently: one pipelined round trip per node
//! for `CLUSTER INFO`, `INFO replication`, `DBSIZE` (and `CLUSTER NODES` when every full view is
//! read), the settings and the replication gate, and the key counts of open slots when the node
//! has any. A steady observation ([`Views::Steady`]) reads full views only where `view_cache`
//! says something may have moved, and reuses the others from earlier passes. Once every node answered, nodes that hold
//! keys also count the slots open anywhere else and the slots no master claims (see
//! `count_keys_of_unsettled_slots`).

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::replies::{node_state_from_view, parse_entries};
use crate::view_cache::{Reads, Summary, ViewCache};
use engine::Addr;
use engine::ClusterNode;
use engine::model::{Member, MemberInfo, NodeState, Observation, Ordinal, View, ViewInterner};
use redis::FromRedisValue;
use std::collections::{BTreeMap, BTreeSet};

/// Which full views (`CLUSTER NODES`) an observation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Views {
    /// Every node's, as every observation did before steady passes.
    Full,
    /// Every node's summary, and full views only where the summaries or the views remembered
    /// from earlier passes say something may have moved (see `view_cache`).
    Steady,
}

/// How many full views an observation read and how many it reused from earlier passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewsRead {
    pub read: usize,
    pub reused: usize,
    /// Why every view was read, when a steady observation did.
    pub all_because: Option<&'static str>,
}

/// What one node answered before its full view is known.
struct Facts {
    info_text: String,
    repl_text: String,
    keys: u64,
    /// The full view when it was read this pass, parsed once (or why it would not parse).
    view: Option<Result<Vec<ClusterNode>, String>>,
    summary: Summary,
    config: BTreeMap<String, String>,
    serves_replicas: bool,
    hands_over_source_first: bool,
}

impl RedisAdapter {
    /// Observes every member, reading every node's full view; those without an address, not
    /// running, or not answering get `redis: None`. Never fails: an unreachable node is an
    /// observation, not an error.
    pub async fn observe(
        &self,
        members: impl IntoIterator<Item = MemberInfo>,
        now_ms: u64,
    ) -> Observation {
        self.observe_views(members, now_ms, Views::Full).await.0
    }

    /// Observes every member, reading full views as `views` says, and reports how many it read.
    pub async fn observe_views(
        &self,
        members: impl IntoIterator<Item = MemberInfo>,
        now_ms: u64,
        views: Views,
    ) -> (Observation, ViewsRead) {
        let off = self.lock_views().is_none_or(|c| c.is_off());
        let views = if off { Views::Full } else { views };
        let mut tasks = tokio::task::JoinSet::new();
        let mut out = BTreeMap::new();
        let mut complete = true;
        for m in members {
            match (&m.addr, m.running) {
                (Some(addr), true) => {
                    let this = self.clone();
                    let addr = addr.clone();
                    tasks.spawn(async move {
                        let facts = this.read_facts(&addr, views == Views::Full).await;
                        (m, addr, facts)
                    });
                }
                (addr, _) => {
                    complete &= addr.is_none();
                    out.insert(m.ordinal, m.observed(None));
                }
            }
        }
        let mut answered = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((m, addr, Ok(facts))) => answered.push((m, addr, facts)),
                Ok((m, addr, Err(e))) => {
                    tracing::warn!(ordinal = m.ordinal, %addr, error = %e, "node not observed");
                    complete = false;
                    out.insert(m.ordinal, m.observed(None));
                }
                // Only a panic inside the task gets here; the member is then missing from the
                // observation, which the engine treats like a member it cannot see.
                Err(e) => {
                    complete = false;
                    tracing::warn!(error = %e, "observer task failed");
                }
            }
        }
        let mut report = ViewsRead::default();
        let mut reused: BTreeMap<Addr, View> = BTreeMap::new();
        if views == Views::Steady {
            let summaries: Vec<(Addr, Summary)> = answered
                .iter()
                .map(|(_, addr, f)| (addr.clone(), f.summary.clone()))
                .collect();
            let plan = self.lock_views().map(|mut c| c.plan(&summaries, complete));
            match plan {
                Some(Reads::Some(fresh)) => {
                    let fresh: BTreeSet<Addr> = fresh.into_iter().collect();
                    let moved = self
                        .read_views(&mut answered, |addr| fresh.contains(addr))
                        .await;
                    if moved {
                        report.all_because =
                            Some("a view read again differs from the remembered one");
                    } else if let Some(mut cache) = self.lock_views() {
                        for (_, addr, f) in &answered {
                            if f.view.is_none()
                                && let Some(nodes) = cache.reuse(addr)
                            {
                                reused.insert(addr.clone(), nodes);
                            }
                        }
                    }
                }
                Some(Reads::All(why)) => report.all_because = Some(why),
                None => report.all_because = Some("the view cache is unusable"),
            }
            // Every view not reused is read now: all of them when something moved.
            self.read_views(&mut answered, |addr| !reused.contains_key(addr))
                .await;
        }
        // Views that list the same nodes alike share one base: the engine then indexes each
        // distinct base once, and a pass holds one copy of the cluster's table, not one per
        // node. Remembered views keep the base they were read on: sharing them again would
        // copy each one's entries (every viewer times its pongs differently, so almost every
        // entry is its own) to save nothing the engine needs.
        let mut shared = ViewInterner::default();
        for (m, addr, facts) in answered {
            let ordinal = m.ordinal;
            let state = match reused.remove(&addr) {
                Some(nodes) => {
                    report.reused += 1;
                    node_state_from_view(nodes, &facts.info_text, &facts.repl_text, facts.keys)
                        .map(|mut s| {
                            s.config = facts.config;
                            s.serves_replicas = facts.serves_replicas;
                            s
                        })
                        .map_err(|message| AdapterError::BadReply {
                            addr: addr.clone(),
                            command: "CLUSTER NODES".into(),
                            message,
                        })
                }
                None => {
                    report.read += 1;
                    self.node_state(&addr, facts, &mut shared).await
                }
            };
            match state {
                Ok(state) => {
                    out.insert(ordinal, m.observed(Some(state)));
                }
                Err(e) => {
                    tracing::warn!(ordinal, %addr, error = %e, "node not observed");
                    out.insert(ordinal, m.observed(None));
                }
            }
        }
        self.count_keys_of_unsettled_slots(&mut out).await;
        (
            Observation {
                now_ms,
                members: out,
                ..Observation::default()
            },
            report,
        )
    }

    fn lock_views(&self) -> Option<std::sync::MutexGuard<'_, ViewCache>> {
        self.views.lock().ok()
    }

    /// Reads the full view of every answered node `wanted` selects that has none yet. Returns
    /// whether one of them differs from the view remembered for it (ping times aside).
    async fn read_views(
        &self,
        answered: &mut [(MemberInfo, Addr, Facts)],
        wanted: impl Fn(&Addr) -> bool,
    ) -> bool {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (_, addr, f)) in answered.iter().enumerate() {
            if f.view.is_none() && wanted(addr) {
                let (this, addr) = (self.clone(), addr.clone());
                tasks.spawn(async move {
                    let cmd = redis::cmd("CLUSTER").arg("NODES").to_owned();
                    let text = this.pool.query::<String>(&addr, &cmd).await;
                    // Parsed here, in parallel, and once: `node_state` takes the entries.
                    (i, text.map(|t| parse_entries(&t)))
                });
            }
        }
        let mut moved = false;
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, text)) = joined else {
                moved = true;
                continue;
            };
            let (m, addr, f) = &mut answered[i];
            match text {
                Ok(view) => {
                    let same = view.as_ref().is_ok_and(|nodes| {
                        self.lock_views().is_some_and(|c| c.unchanged(addr, nodes))
                    });
                    moved |= !same;
                    f.view = Some(view);
                }
                Err(e) => {
                    // Left without a view: `node_state` reads it once more, and a node that
                    // still does not answer is not observed.
                    tracing::debug!(ordinal = m.ordinal, %addr, error = %e, "full view not read");
                    moved = true;
                }
            }
        }
        moved
    }

    /// The small replies of one node: its summary, key count, settings and replication gate,
    /// and with `with_view` its full view, all in one round trip: at 200 nodes a pass's
    /// socket writes and wake-ups were a fifth of its CPU when they took three.
    async fn read_facts(&self, addr: &Addr, with_view: bool) -> Result<Facts, AdapterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("CLUSTER").arg("INFO");
        pipe.cmd("INFO").arg("replication");
        pipe.cmd("DBSIZE");
        let config_parts = live_config_commands();
        let config_count = config_parts.len();
        for cmd in config_parts {
            pipe.add_command(cmd);
        }
        pipe.cmd("ACL")
            .arg("GETUSER")
            .arg(engine::replication_gate::USER);
        if with_view {
            pipe.cmd("CLUSTER").arg("NODES");
        }
        let known_server = self.known_server(addr);
        if known_server.is_none() {
            pipe.cmd("INFO").arg("server");
        }
        let mut replies = self
            .pool
            .pipe_values(addr, &pipe, "observe")
            .await?
            .into_iter();
        let mut next = |what: &str| {
            replies.next().unwrap_or_else(|| {
                Err(AdapterError::BadReply {
                    addr: addr.clone(),
                    command: "observe".into(),
                    message: format!("no reply to {what}"),
                })
            })
        };
        let info_text: String = decode(addr, "CLUSTER INFO", next("CLUSTER INFO"))?;
        let repl_text: String = decode(addr, "INFO replication", next("INFO replication"))?;
        let keys: u64 = decode(addr, "DBSIZE", next("DBSIZE"))?;
        let config_replies: Vec<_> = (0..config_count).map(|_| next("CONFIG GET")).collect();
        let config = live_config(addr, config_replies);
        let serves_replicas = gate_open(addr, next("ACL GETUSER"));
        let view = if with_view {
            let text: String = decode(addr, "CLUSTER NODES", next("CLUSTER NODES"))?;
            Some(parse_entries(&text))
        } else {
            None
        };
        let hands_over_source_first = match known_server {
            Some(known) => known,
            None => {
                let text: String = decode(addr, "INFO server", next("INFO server"))?;
                self.remember_server_info(addr, &text)
            }
        };
        let summary = Summary::from_replies(self.pool.generation(addr), &info_text, &repl_text);
        Ok(Facts {
            info_text,
            repl_text,
            keys,
            view,
            summary,
            config,
            serves_replicas,
            hands_over_source_first,
        })
    }

    /// One node's state from its facts and full view (read now if not read yet, and put on a
    /// base `shared` knows when one fits), with the key counts of its open slots; the view is
    /// remembered for later steady passes.
    async fn node_state(
        &self,
        addr: &Addr,
        facts: Facts,
        shared: &mut ViewInterner,
    ) -> Result<NodeState, AdapterError> {
        let entries = match facts.view {
            Some(entries) => entries,
            None => {
                let cmd = redis::cmd("CLUSTER").arg("NODES").to_owned();
                parse_entries(&self.pool.query::<String>(addr, &cmd).await?)
            }
        };
        let mut state = entries
            .map(|entries| shared.view(entries))
            .and_then(|nodes| {
                node_state_from_view(nodes, &facts.info_text, &facts.repl_text, facts.keys)
            })
            .map_err(|message| AdapterError::BadReply {
                addr: addr.clone(),
                command: "CLUSTER NODES".into(),
                message,
            })?;
        if let Some(mut cache) = self.lock_views() {
            cache.remember(addr, facts.summary, &state.nodes);
        }
        self.count_own_open_slots(addr, &mut state).await?;
        state.config = facts.config;
        state.serves_replicas = facts.serves_replicas;
        state.hands_over_source_first = facts.hands_over_source_first;
        Ok(state)
    }

    /// A slot open on one node may have keys on others: the target of an interrupted move
    /// died and its replica holds what had moved, or an import was closed by hand. So may a
    /// slot no master claims (`engine::routed_but_unclaimed`: a hand-over whose target died
    /// after its source was told). For every such slot, each node that holds keys and did not
    /// count that slot itself (it counts its own open slots) reports its count when it is not
    /// zero, so the engine never closes or assigns a slot while keys of it sit where no marker
    /// shows them. In a settled cluster both sets are empty and this reads nothing.
    async fn count_keys_of_unsettled_slots(&self, members: &mut BTreeMap<Ordinal, Member>) {
        let mut open: std::collections::BTreeSet<u16> = members
            .values()
            .filter_map(|m| m.redis.as_ref()?.myself())
            .flat_map(|me| me.open_slots.iter().map(|o| o.slot()))
            .collect();
        open.extend(engine::routed_but_unclaimed(
            members.values().filter_map(|m| m.redis.as_ref()),
        ));
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

    /// Reads one node's state, full view included.
    pub async fn observe_node(&self, addr: &Addr) -> Result<NodeState, AdapterError> {
        let facts = self.read_facts(addr, true).await?;
        self.node_state(addr, facts, &mut ViewInterner::default())
            .await
    }

    /// `COUNTKEYSINSLOT` for each slot the node has open itself.
    async fn count_own_open_slots(
        &self,
        addr: &Addr,
        state: &mut NodeState,
    ) -> Result<(), AdapterError> {
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
        Ok(())
    }
}

/// One reply of a pipeline as `T`, or a `BadReply` naming the command it answered.
fn decode<T: FromRedisValue>(
    addr: &Addr,
    command: &str,
    reply: Result<redis::Value, AdapterError>,
) -> Result<T, AdapterError> {
    reply.and_then(|v| {
        T::from_redis_value(v).map_err(|e| AdapterError::BadReply {
            addr: addr.clone(),
            command: command.into(),
            message: e.to_string(),
        })
    })
}

/// Whether the node's replication gate is open (from its `ACL GETUSER` reply): the
/// replication user exists and is on. A server that refuses `ACL` (renamed or disabled by a
/// provider) has no gate this operator can open; it is reported open, as before the gate
/// existed, so nothing waits on it.
fn gate_open(addr: &Addr, reply: Result<redis::Value, AdapterError>) -> bool {
    match reply {
        Ok(reply) => user_is_on(&reply),
        Err(AdapterError::Redis { message, .. }) => {
            tracing::debug!(%addr, error = %message, "ACL refused; replication gate not used");
            true
        }
        Err(_) => false,
    }
}

/// Names per `CONFIG GET`: with `CONFIG GET` itself, 10 arguments. Redis closes the
/// connection of an unauthenticated client that sends a command of more (a guard against
/// memory abuse), and the observer's pipeline would then report a broken pipe instead of the
/// server's `NOAUTH` (found by `hostile_nodes`).
const CONFIG_NAMES_PER_GET: usize = 8;

/// `CONFIG GET` of the live-settable settings and of whether the node persists, in parts.
fn live_config_commands() -> Vec<redis::Cmd> {
    let names: Vec<&str> = engine::desired::LIVE_SETTINGS
        .iter()
        .copied()
        .chain([engine::desired::PERSISTENCE_SETTING])
        .collect();
    names
        .chunks(CONFIG_NAMES_PER_GET)
        .map(|part| {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("GET").arg(part);
            cmd
        })
        .collect()
}

/// The settings as the parts of `CONFIG GET` printed them. A server that refuses `CONFIG`
/// (renamed or disabled by a provider) reports none, and the engine leaves them alone (and
/// never restarts a master in place).
fn live_config(
    addr: &Addr,
    replies: Vec<Result<redis::Value, AdapterError>>,
) -> BTreeMap<String, String> {
    let mut config = BTreeMap::new();
    for reply in replies {
        match decode::<BTreeMap<String, String>>(addr, "CONFIG GET", reply) {
            Ok(part) => config.extend(part),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "CONFIG GET refused; live settings not compared");
                return BTreeMap::new();
            }
        }
    }
    config
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
