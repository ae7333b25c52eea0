//! Moving hash slots and their keys between masters, crash-safe at every step: a slot is
//! marked IMPORTING on the target before MIGRATING on the source, keys move in batches with
//! `MIGRATE ... KEYS`, and ownership changes (`SETSLOT NODE`) only once the source holds no
//! key of the slot, to the pair in the order the server makes safe (see `broadcast_owner`).

use crate::RedisAdapter;
use crate::announce::Announcer;
use crate::error::AdapterError;
use crate::keys::moved_by;
use crate::protected::MigrateMode;
use engine::Addr;
use redis::{FromRedisValue, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One (source, target) pair, and who tells the other masters about the slots it moved.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub from: Addr,
    pub from_id: String,
    pub to: Addr,
    pub to_id: String,
    pub announcer: Arc<Announcer>,
    /// Stop between rounds when the target has no synced replica.
    pub needs_replica: bool,
    /// End each slot by telling the source before the target (`broadcast_owner`).
    pub source_first: bool,
    /// The epoch the target must know before it is told (`wait_target_outranks`).
    pub epoch_floor: u64,
}

impl RedisAdapter {
    /// Migrates `slots` with up to `slot_concurrency` slots in flight. On the first error no
    /// new slot is started, the ones in flight finish, and that first error is returned.
    pub(crate) async fn migrate_slots(
        &self,
        mv: Move,
        slots: Vec<u16>,
    ) -> Result<(), AdapterError> {
        // A target that has no synced replica when the move starts was chosen so by the
        // engine (it finishes a half-moved slot towards the only node holding its moved
        // keys); only a target that loses its replica during the move makes it pause.
        let mut mv = mv;
        mv.needs_replica = mv.needs_replica && self.ensure_target_replicated(&mv.to).await.is_ok();
        let mv = Arc::new(mv);
        self.progress.add_slots(slots.len() as u64);

        // Slots the target already owns are either finished (source holds none of their
        // keys: only the broadcast may be missing) or were taken over while the source kept
        // stray keys (moved like any other slot's keys, without SETSLOT IMPORTING, which the
        // owner would refuse).
        let target_owns = self.owned_slots(&mv.to).await?;
        let (owned, todo): (Vec<u16>, Vec<u16>) = slots
            .into_iter()
            .partition(|s| target_owns.get(usize::from(*s)).copied().unwrap_or(false));
        let mut finished = Vec::new();
        let mut queue: VecDeque<(u16, bool)> = todo.into_iter().map(|s| (s, false)).collect();
        if !owned.is_empty() {
            let mut pipe = redis::pipe();
            for s in &owned {
                pipe.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*s);
            }
            let counts: Vec<u64> = self
                .pool
                .pipe(&mv.from, &pipe, "CLUSTER COUNTKEYSINSLOT")
                .await?;
            for (slot, count) in owned.into_iter().zip(counts) {
                if count == 0 {
                    finished.push(slot);
                } else {
                    queue.push_back((slot, true));
                }
            }
        }
        if !finished.is_empty() {
            // Only the announcement may be missing; the target is told again too (see
            // `broadcast_owner`).
            self.broadcast_owner(&mv, &finished).await?;
            for _ in &finished {
                self.progress.slot_done();
            }
        }

        // Rounds of `slots_per_round` slots, `slot_concurrency` rounds in flight.
        let per_round = self.config().slots_per_round.max(1);
        let queue: Vec<(u16, bool)> = queue.into();
        let rounds: VecDeque<Vec<(u16, bool)>> =
            queue.chunks(per_round).map(<[_]>::to_vec).collect();
        let queue = Arc::new(Mutex::new(rounds));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = self.config().slot_concurrency.max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let this = self.clone();
            let (queue, stop, mv) = (queue.clone(), stop.clone(), mv.clone());
            tasks.spawn(async move {
                let mut first_error = None;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // Between rounds, never inside one: the slots in flight finish, the next
                    // ones wait for the engine to see the target protected again.
                    if mv.needs_replica
                        && let Err(e) = this.ensure_target_replicated(&mv.to).await
                    {
                        stop.store(true, Ordering::Relaxed);
                        first_error = Some(e);
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(round) = next else { break };
                    if let Err(e) = this.migrate_round(&mv, round).await {
                        tracing::debug!(from = %mv.from, to = %mv.to, error = %e, "slot migration stopped");
                        stop.store(true, Ordering::Relaxed);
                        first_error = Some(e);
                        break;
                    }
                }
                first_error
            });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Some(e)) = joined {
                first_error.get_or_insert(e);
            }
        }
        // Slots never started because of an error are not pending for this run any more.
        let left: usize = queue
            .lock()
            .map(|q| q.iter().map(Vec::len).sum())
            .unwrap_or(0);
        for _ in 0..left {
            self.progress.slot_abandoned();
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) fn slot_failed(
        &self,
        mv: &Move,
        slot: u16,
        e: AdapterError,
        first: &mut Option<AdapterError>,
    ) {
        tracing::debug!(slot, from = %mv.from, to = %mv.to, error = %e, "slot not migrated");
        self.progress.slot_abandoned();
        first.get_or_insert(e);
    }

    /// Moves one round of slots. A slot that fails stays open (the next observation reports
    /// it); the others of the round still finish. Returns the first failure.
    async fn migrate_round(&self, mv: &Move, round: Vec<(u16, bool)>) -> Result<(), AdapterError> {
        let mut first_error: Option<AdapterError> = None;
        let mut active: Vec<u16> = round
            .iter()
            .filter(|(_, owned)| *owned)
            .map(|(s, _)| *s)
            .collect();

        // Markers: IMPORTING on the target for all slots, then MIGRATING on the source for
        // those the target accepted. A slot refused by either stays out of the round.
        let mut marked: Vec<u16> = round
            .iter()
            .filter(|(_, owned)| !*owned)
            .map(|(s, _)| *s)
            .collect();
        for (addr, state, peer) in [
            (&mv.to, "IMPORTING", &mv.from_id),
            (&mv.from, "MIGRATING", &mv.to_id),
        ] {
            if marked.is_empty() {
                break;
            }
            let setslot = |s: u16| {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("SETSLOT").arg(s).arg(state).arg(peer);
                cmd
            };
            // Valkey holds each SETSLOT until the node's replicas acknowledge it, refusing with
            // NOREPLICAS after 2 s: the first slot goes alone, so a node whose replica does
            // not answer (frozen, still syncing) costs one wait, not one per slot of the round.
            if let [first, _, ..] = marked[..]
                && let Err(e) = self.pool.query::<redis::Value>(addr, &setslot(first)).await
                && server_code(&e) == Some("NOREPLICAS")
            {
                let e = on_target(mv, addr, e);
                for s in marked.drain(..) {
                    self.slot_failed(mv, s, e.clone(), &mut first_error);
                }
                break;
            }
            let cmds: Vec<redis::Cmd> = marked.iter().map(|s| setslot(*s)).collect();
            let replies = match self
                .pool
                .spread_values(addr, &cmds, SETSLOT_LANES, "CLUSTER SETSLOT")
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    for s in marked.drain(..) {
                        self.slot_failed(mv, s, on_target(mv, addr, e.clone()), &mut first_error);
                    }
                    break;
                }
            };
            let mut accepted = Vec::with_capacity(marked.len());
            for (s, reply) in marked.iter().zip(replies) {
                match reply {
                    Ok(_) => accepted.push(*s),
                    Err(e) => self.slot_failed(mv, *s, on_target(mv, addr, e), &mut first_error),
                }
            }
            marked = accepted;
        }
        active.extend(marked);
        active.sort_unstable();

        let drained = self.drain_slots(mv, active, &mut first_error).await;
        let finished = self
            .confirm_source_still_migrates(mv, drained, &mut first_error)
            .await;
        if !finished.is_empty() {
            match self.broadcast_owner(mv, &finished).await {
                Ok(()) => {
                    for _ in &finished {
                        self.progress.slot_done();
                    }
                }
                Err(e) => {
                    for s in &finished {
                        self.slot_failed(mv, *s, e.clone(), &mut first_error);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Empties `slots` on the source: each turn asks `COUNTKEYSINSLOT` + `GETKEYSINSLOT` for
    /// every slot still holding keys in one pipeline, then sends one `MIGRATE` per slot in
    /// one pipeline (up to `keys_per_round_trip` keys). Returns the slots now empty; failed
    /// slots are counted as abandoned and their first error kept in `first_error`.
    async fn drain_slots(
        &self,
        mv: &Move,
        slots: Vec<u16>,
        first_error: &mut Option<AdapterError>,
    ) -> Vec<u16> {
        let config = self.config();
        let batch = config.migrate_batch.max(1);
        let budget = config.keys_per_round_trip.max(batch);
        let max_idle = config.max_idle_rounds.max(1);
        // (slot, turns without progress)
        let mut active: Vec<(u16, u32)> = slots.into_iter().map(|s| (s, 0)).collect();
        let mut finished = Vec::new();
        while !active.is_empty() {
            let mut pipe = redis::pipe();
            for (s, _) in &active {
                pipe.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*s);
                pipe.cmd("CLUSTER").arg("GETKEYSINSLOT").arg(*s).arg(batch);
            }
            let listing = self.list_keys(&mv.from, &pipe).await;
            let listing = match listing {
                Ok(l) => l,
                Err(e) => {
                    for (s, _) in active.drain(..) {
                        self.slot_failed(mv, s, e.clone(), first_error);
                    }
                    break;
                }
            };
            let mut next = Vec::with_capacity(active.len());
            let mut sending: Vec<(u16, u32, Vec<Vec<u8>>)> = Vec::new();
            let mut in_flight = 0usize;
            for ((slot, idle), (count, keys)) in active.iter().copied().zip(listing) {
                if count == 0 && keys.is_empty() {
                    finished.push(slot);
                } else if keys.is_empty() || in_flight >= budget {
                    // Keys counted but none listed (should not happen), or over budget:
                    // look again next turn; only the former is a turn without progress.
                    let idle = if keys.is_empty() { idle + 1 } else { idle };
                    if idle >= max_idle {
                        self.slot_failed(
                            mv,
                            slot,
                            AdapterError::KeysRemain { slot, count },
                            first_error,
                        );
                    } else {
                        next.push((slot, idle));
                    }
                } else {
                    in_flight += keys.len();
                    sending.push((slot, idle, keys));
                }
            }
            if !sending.is_empty() {
                let results = if mv.needs_replica {
                    let batches: Vec<(u16, Vec<Vec<u8>>)> =
                        sending.iter().map(|(s, _, k)| (*s, k.clone())).collect();
                    self.move_batches_protected(mv, &batches).await
                } else {
                    self.move_batches(mv, &sending).await
                };
                let results = match results {
                    Ok(r) => r,
                    Err(e) => {
                        for (s, _, _) in sending {
                            self.slot_failed(mv, s, e.clone(), first_error);
                        }
                        for (s, _) in next {
                            self.slot_failed(mv, s, e.clone(), first_error);
                        }
                        break;
                    }
                };
                let mut cluster_down = false;
                for ((slot, idle, _), result) in sending.into_iter().zip(results) {
                    match result {
                        Ok(n) => {
                            self.progress.keys_moved_add(n);
                            next.push((slot, if n == 0 { idle + 1 } else { 0 }));
                        }
                        Err(e)
                            if matches!(passed_on_code(&e), Some("TRYAGAIN" | "CLUSTERDOWN")) =>
                        {
                            cluster_down |= passed_on_code(&e) == Some("CLUSTERDOWN");
                            if idle + 1 >= max_idle {
                                self.slot_failed(mv, slot, e, first_error);
                            } else {
                                next.push((slot, idle + 1));
                            }
                        }
                        Err(e) => self.slot_failed(mv, slot, e, first_error),
                    }
                }
                if cluster_down && let Some(e) = self.stuck_importer(mv).await {
                    // Down until the engine repairs it: give the slots back to it now.
                    for (s, _) in next.drain(..) {
                        self.slot_failed(mv, s, e.clone(), first_error);
                    }
                    break;
                }
                if cluster_down {
                    // The source refused MIGRATE because its own `cluster_state` is `fail`, or
                    // passed on the target's refusal for the same reason (Valkey's target
                    // checks): nothing moved. On an overloaded host (a scale-out from 100 masters on
                    // two cores) a node misses pongs past the node timeout, counts too few
                    // masters reachable and refuses writes for a moment; it recovers on its
                    // own. Abandoning the slot left it open for a whole repair pass, so the
                    // move waits, a little longer each turn, within `max_idle_rounds`.
                    let waited = next.iter().map(|(_, idle)| *idle).max().unwrap_or(1);
                    tokio::time::sleep(CLUSTER_DOWN_PAUSE * waited).await;
                }
            }
            active = next;
            self.progress.maybe_log(config.progress_log_interval);
        }
        finished
    }

    /// One plain `MIGRATE` per batch in one pipeline (the target has no replica to protect
    /// the keys, or the spec asks for none): returns, per batch, the keys that left the
    /// source. A `BUSYKEY` is resolved by comparing values (see `resolve_busy_keys`).
    async fn move_batches(
        &self,
        mv: &Move,
        sending: &[(u16, u32, Vec<Vec<u8>>)],
    ) -> Result<Vec<Result<u64, AdapterError>>, AdapterError> {
        let mut pipe = redis::pipe();
        for (_, _, keys) in sending {
            pipe.cmd("ASKING");
            pipe.add_command(self.migrate_command(&mv.to, keys, MigrateMode::Move));
        }
        let replies = self.pool.pipe_values(&mv.from, &pipe, "MIGRATE").await?;
        let mut out = Vec::with_capacity(sending.len());
        for ((slot, _, keys), reply) in sending.iter().zip(replies.into_iter().skip(1).step_by(2)) {
            out.push(match reply {
                Ok(v) => Ok(moved_by(&v, keys.len())),
                Err(e) if is_busy_key(&e) => {
                    self.resolve_busy_keys(&mv.from, &mv.to, *slot, keys).await
                }
                Err(e) => Err(e),
            });
        }
        Ok(out)
    }

    /// Runs a pipeline of (`COUNTKEYSINSLOT`, `GETKEYSINSLOT`) pairs.
    async fn list_keys(
        &self,
        addr: &Addr,
        pipe: &redis::Pipeline,
    ) -> Result<Vec<(u64, Vec<Vec<u8>>)>, AdapterError> {
        let values: Vec<Value> = self.pool.pipe(addr, pipe, "CLUSTER GETKEYSINSLOT").await?;
        values
            .chunks(2)
            .map(|pair| {
                <(u64, Vec<Vec<u8>>)>::from_redis_value(Value::Array(pair.to_vec())).map_err(|e| {
                    AdapterError::BadReply {
                        addr: addr.clone(),
                        command: "CLUSTER GETKEYSINSLOT".into(),
                        message: e.to_string(),
                    }
                })
            })
            .collect()
    }

    /// Either end of `mv` whose `CLUSTERDOWN` will not pass on its own (see
    /// [`AdapterError::ImporterStuck`]); `None` when neither's view shows such a slot or a
    /// view could not be read (the caller then waits as for any `CLUSTERDOWN`).
    async fn stuck_importer(&self, mv: &Move) -> Option<AdapterError> {
        let read = |addr: &Addr| {
            let addr = addr.clone();
            async move {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("NODES");
                let text: String = self.pool.query(&addr, &cmd).await.ok()?;
                let nodes = engine::parse::parse_cluster_nodes(&text).ok()?;
                let slot = import_without_live_owner(&nodes)?;
                Some(AdapterError::ImporterStuck { addr, slot })
            }
        };
        let (to, from) = tokio::join!(read(&mv.to), read(&mv.from));
        to.or(from)
    }

    /// A bitmap of the slots `addr` says it owns.
    async fn owned_slots(&self, addr: &Addr) -> Result<Vec<bool>, AdapterError> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        let text: String = self.pool.query(addr, &cmd).await?;
        let nodes =
            engine::parse::parse_cluster_nodes(&text).map_err(|e| AdapterError::BadReply {
                addr: addr.clone(),
                command: "CLUSTER NODES".into(),
                message: e.to_string(),
            })?;
        let mut owned = vec![false; usize::from(engine::SLOT_COUNT)];
        if let Some(me) = nodes.iter().find(|n| n.flags.myself) {
            for s in engine::slots::expand(&me.slots) {
                if let Some(bit) = owned.get_mut(usize::from(s)) {
                    *bit = true;
                }
            }
        }
        Ok(owned)
    }
}

/// The first wait after a source refused `MIGRATE` with `CLUSTERDOWN`; the n-th is n times
/// longer, so the default 20 turns allow about 20 s for the node to see its peers again.
const CLUSTER_DOWN_PAUSE: Duration = Duration::from_millis(100);

/// Connections a round's `SETSLOT`s are spread over: Valkey answers each only once the node's
/// replicas acknowledge it, which one connection would wait for slot after slot.
pub(crate) const SETSLOT_LANES: usize = 8;

/// A refusal by `addr` during move `mv`, read for what it means there. Valkey (8.0 and later)
/// passes `CLUSTER SETSLOT` on to the node's replicas and answers `NOREPLICAS` when they do not
/// acknowledge it in time (2 s by default): from the target of a move, that says its replica
/// is not keeping up, the very case in which moving keys to it pauses. Redis never answers so.
pub(crate) fn on_target(mv: &Move, addr: &Addr, e: AdapterError) -> AdapterError {
    if *addr == mv.to && server_code(&e) == Some("NOREPLICAS") {
        AdapterError::TargetUnprotected {
            addr: mv.to.clone(),
        }
    } else {
        e
    }
}

/// A slot the node of this view imports while the view gives it to no master, or to one
/// flagged failed: Redis then keeps the node's `cluster_state` at `fail` (a slot unserved)
/// until someone tells it the slot's owner, which it will not learn from gossip.
fn import_without_live_owner(view: &[engine::ClusterNode]) -> Option<u16> {
    let me = view.iter().find(|n| n.flags.myself)?;
    me.open_slots.iter().find_map(|open| {
        let engine::OpenSlot::Importing { slot, .. } = open else {
            return None;
        };
        let owner = view
            .iter()
            .find(|n| n.is_master() && n.slots.iter().any(|r| r.start <= *slot && *slot <= r.end));
        owner.is_none_or(|o| o.is_failed()).then_some(*slot)
    })
}

/// The source reports the target's refusal inside its own error:
/// `ERR Target instance replied with error: BUSYKEY ...`.
pub(crate) fn is_busy_key(e: &AdapterError) -> bool {
    matches!(e, AdapterError::Redis { message, .. } if message.contains("BUSYKEY"))
}

/// The code of a refusal, or of the target's refusal a source passed on inside its own
/// (`ERR Target instance replied with error: CLUSTERDOWN ...`).
fn passed_on_code(e: &AdapterError) -> Option<&str> {
    match e {
        AdapterError::Redis { message, .. } => message
            .strip_prefix("ERR Target instance replied with error:")
            .unwrap_or(message)
            .split_whitespace()
            .next(),
        _ => None,
    }
}

/// The Redis error code (`BUSYKEY`, `TRYAGAIN`, ...) of a refusal.
pub(crate) fn server_code(e: &AdapterError) -> Option<&str> {
    match e {
        AdapterError::Redis { message, .. } => message.split_whitespace().next(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(message: &str) -> AdapterError {
        AdapterError::Redis {
            addr: Addr::new("127.0.0.1", 1),
            command: "MIGRATE".into(),
            message: message.into(),
        }
    }

    fn view(lines: &[&str]) -> Vec<engine::ClusterNode> {
        engine::parse::parse_cluster_nodes(&lines.join("\n")).unwrap_or_default()
    }

    const IMPORTER: &str = "6666666666666666666666666666666666666666 127.0.0.1:7006@17006 myself,master - 0 0 7 connected 0-99 [100-<-1111111111111111111111111111111111111111]";
    const REPLICA_OF_OLD: &str = "3333333333333333333333333333333333333333 127.0.0.1:7003@17003 master - 0 0 8 connected 101-5460";

    #[test]
    fn an_importer_whose_source_failed_or_turned_replica_is_stuck_until_told_the_owner() {
        let failed = view(&[
            IMPORTER,
            "1111111111111111111111111111111111111111 127.0.0.1:7001@17001 master,fail - 0 0 1 disconnected 100",
            REPLICA_OF_OLD,
        ]);
        assert_eq!(import_without_live_owner(&failed), Some(100));
        // Back as a replica: Redis dropped its slots from the view, so slot 100 has no owner.
        let replica = view(&[
            IMPORTER,
            "1111111111111111111111111111111111111111 127.0.0.1:7001@17001 slave 3333333333333333333333333333333333333333 0 0 8 connected",
            REPLICA_OF_OLD,
        ]);
        assert_eq!(import_without_live_owner(&replica), Some(100));
    }

    #[test]
    fn an_importer_whose_source_still_serves_the_slot_is_not_stuck() {
        let live = view(&[
            IMPORTER,
            "1111111111111111111111111111111111111111 127.0.0.1:7001@17001 master - 0 0 1 connected 100",
            REPLICA_OF_OLD,
        ]);
        assert_eq!(import_without_live_owner(&live), None);
    }

    #[test]
    fn a_busy_key_is_recognised_inside_the_sources_wrapped_error() {
        let e = refusal(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists.",
        );
        assert!(is_busy_key(&e));
        assert_eq!(server_code(&e), Some("ERR"));
        assert_eq!(passed_on_code(&e), Some("BUSYKEY"));
        let down =
            refusal("ERR Target instance replied with error: CLUSTERDOWN The cluster is down");
        assert_eq!(passed_on_code(&down), Some("CLUSTERDOWN"));
        assert_eq!(
            passed_on_code(&refusal("CLUSTERDOWN The cluster is down")),
            Some("CLUSTERDOWN")
        );
        assert_eq!(
            server_code(&refusal(
                "TRYAGAIN Multiple keys request during rehashing of slot"
            )),
            Some("TRYAGAIN")
        );
    }

    #[test]
    fn nokey_means_nothing_moved() {
        assert_eq!(moved_by(&Value::SimpleString("NOKEY".into()), 10), 0);
        assert_eq!(moved_by(&Value::Okay, 10), 10);
    }
}
