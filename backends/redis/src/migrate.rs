//! Moving hash slots and their keys between masters, crash-safe at every step: a slot is
//! marked IMPORTING on the target before MIGRATING on the source, keys move in batches with
//! `MIGRATE ... KEYS`, and ownership changes (`SETSLOT NODE`) only once the source holds no
//! key of the slot — target first, so the slot is never owned by a node that lacks its keys.

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::protected::MigrateMode;
use engine::Addr;
use redis::{FromRedisValue, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One (source, target) pair and where the other masters are, for the final broadcast.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub from: Addr,
    pub from_id: String,
    pub to: Addr,
    pub to_id: String,
    pub others: Vec<Addr>,
    /// Stop between rounds when the target has no synced replica.
    pub needs_replica: bool,
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
            // The target is told again too: its own line may have shown the slot when this
            // move began and lost it since (a failover claiming its old master's slots, then
            // an older claim), and a target that does not claim a slot leaves every other
            // view pointing at it while its own points elsewhere, for ever.
            self.broadcast_owner(&mv, &finished, true).await?;
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
            match self.broadcast_owner(mv, &finished, true).await {
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
                for ((slot, idle, _), result) in sending.into_iter().zip(results) {
                    match result {
                        Ok(n) => {
                            self.progress.keys_moved_add(n);
                            next.push((slot, if n == 0 { idle + 1 } else { 0 }));
                        }
                        Err(e) if server_code(&e) == Some("TRYAGAIN") => {
                            if idle + 1 >= max_idle {
                                self.slot_failed(mv, slot, e, first_error);
                            } else {
                                next.push((slot, idle + 1));
                            }
                        }
                        Err(e) => self.slot_failed(mv, slot, e, first_error),
                    }
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

    /// `SETSLOT slot NODE to_id` on the target (when asked), then the source, then every
    /// other master, each node receiving all `slots` in one pipeline.
    async fn broadcast_owner(
        &self,
        mv: &Move,
        slots: &[u16],
        include_target: bool,
    ) -> Result<(), AdapterError> {
        let cmds: Arc<Vec<redis::Cmd>> = Arc::new(
            slots
                .iter()
                .map(|s| {
                    let mut cmd = redis::cmd("CLUSTER");
                    cmd.arg("SETSLOT").arg(*s).arg("NODE").arg(&mv.to_id);
                    cmd
                })
                .collect(),
        );
        if include_target {
            self.set_owner_on(&mv.to, &cmds)
                .await
                .map_err(|e| on_target(mv, &mv.to, e))?;
        }
        self.set_owner_on(&mv.from, &cmds).await?;
        // The other masters learn the new owner through gossip anyway (the target bumped its
        // epoch); telling them directly only closes the window of MOVED redirects, so a
        // failure here is logged, not returned.
        let mut tasks = tokio::task::JoinSet::new();
        for other in mv.others.iter().filter(|a| **a != mv.from && **a != mv.to) {
            let (this, other, cmds) = (self.clone(), other.clone(), cmds.clone());
            tasks.spawn(async move {
                if let Err(e) = this.set_owner_on(&other, &cmds).await {
                    tracing::warn!(%other, error = %e, "could not tell a master the new slot owner");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Runs `SETSLOT … NODE` commands on `addr`; the first refusal is the result.
    async fn set_owner_on(&self, addr: &Addr, cmds: &[redis::Cmd]) -> Result<(), AdapterError> {
        self.pool
            .spread_values(addr, cmds, SETSLOT_LANES, "CLUSTER SETSLOT NODE")
            .await?
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
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

    /// Moves every key of `slot` from `from` to `to` until `COUNTKEYSINSLOT` is 0 on `from`.
    /// Works whether `from` owns the slot (migrating) or not (importing, stray keys): every
    /// key command is preceded by `ASKING`, which an owner ignores.
    pub(crate) async fn move_keys(
        &self,
        from: &Addr,
        to: &Addr,
        slot: u16,
    ) -> Result<(), AdapterError> {
        let batch = self.config().migrate_batch.max(1);
        let max_idle = self.config().max_idle_rounds.max(1);
        let mut idle = 0u32;
        loop {
            let mut get = redis::cmd("CLUSTER");
            get.arg("GETKEYSINSLOT").arg(slot).arg(batch);
            let keys: Vec<Vec<u8>> = self.pool.query(from, &get).await?;
            if keys.is_empty() {
                let mut count = redis::cmd("CLUSTER");
                count.arg("COUNTKEYSINSLOT").arg(slot);
                let left: u64 = self.pool.query(from, &count).await?;
                if left == 0 {
                    return Ok(());
                }
                idle += 1;
                if idle >= max_idle {
                    return Err(AdapterError::KeysRemain { slot, count: left });
                }
                continue;
            }
            match self.migrate_keys(from, to, &keys, MigrateMode::Move).await {
                Ok(moved) => {
                    idle = 0;
                    self.progress.keys_moved_add(moved);
                }
                Err(e) if is_busy_key(&e) => {
                    let moved = self.resolve_busy_keys(from, to, slot, &keys).await?;
                    if moved == 0 {
                        idle += 1;
                    }
                    self.progress.keys_moved_add(moved);
                }
                // A key vanished between GETKEYSINSLOT and MIGRATE (expired, deleted): the
                // source refuses a multi-key command on a migrating slot then. Just retry.
                Err(e) if server_code(&e) == Some("TRYAGAIN") => {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e),
            }
            if idle >= max_idle {
                let mut count = redis::cmd("CLUSTER");
                count.arg("COUNTKEYSINSLOT").arg(slot);
                let left: u64 = self.pool.query(from, &count).await?;
                return Err(AdapterError::KeysRemain { slot, count: left });
            }
            self.progress.maybe_log(self.config().progress_log_interval);
        }
    }

    /// `MIGRATE host port "" 0 timeout [COPY] [REPLACE] [AUTH pw] KEYS ...`, or the one-key
    /// form `MIGRATE host port key 0 timeout REPLACE [AUTH pw]`.
    pub(crate) fn migrate_command(
        &self,
        to: &Addr,
        keys: &[Vec<u8>],
        mode: MigrateMode,
    ) -> redis::Cmd {
        let config = self.config();
        let mut migrate = redis::cmd("MIGRATE");
        migrate.arg(&to.ip).arg(to.port);
        match (mode, keys) {
            (MigrateMode::OneKeyReplace, [key]) => migrate.arg(key.as_slice()),
            _ => migrate.arg(""),
        };
        migrate
            .arg(0)
            .arg(config.migrate_timeout.as_millis() as u64);
        match mode {
            MigrateMode::Move => {}
            MigrateMode::Replace | MigrateMode::OneKeyReplace => {
                migrate.arg("REPLACE");
            }
            MigrateMode::CopyReplace => {
                migrate.arg("COPY").arg("REPLACE");
            }
        }
        if let Some(pw) = &config.password {
            migrate.arg("AUTH").arg(pw);
        }
        if !(mode == MigrateMode::OneKeyReplace && keys.len() == 1) {
            migrate.arg("KEYS");
            for k in keys {
                migrate.arg(k.as_slice());
            }
        }
        migrate
    }

    /// One `MIGRATE` after `ASKING`; returns the number of keys it moved.
    async fn migrate_keys(
        &self,
        from: &Addr,
        to: &Addr,
        keys: &[Vec<u8>],
        mode: MigrateMode,
    ) -> Result<u64, AdapterError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING");
        pipe.add_command(self.migrate_command(to, keys, mode));
        let mut replies = self.pool.pipe_values(from, &pipe, "MIGRATE").await?;
        let reply = replies.pop().unwrap_or(Ok(Value::Nil))?;
        Ok(moved_by(&reply, keys.len()))
    }

    /// After a BUSYKEY: `MIGRATE` moved the keys it could and stopped at keys that already
    /// exist on the target. Each such key is compared by `DUMP` on both sides: identical
    /// values are moved again with `REPLACE` (nothing is lost), different values stop the
    /// migration with [`AdapterError::BusyKey`], leaving both values and the slot open for a
    /// human or a later decision. Returns how many keys left the source.
    async fn resolve_busy_keys(
        &self,
        from: &Addr,
        to: &Addr,
        slot: u16,
        keys: &[Vec<u8>],
    ) -> Result<u64, AdapterError> {
        let source = self.dump_all(from, keys).await?;
        let still_here: Vec<(&Vec<u8>, Vec<u8>)> = keys
            .iter()
            .zip(source)
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let gone = (keys.len() - still_here.len()) as u64;
        let names: Vec<Vec<u8>> = still_here.iter().map(|(k, _)| (*k).clone()).collect();
        let target = self.dump_all(to, &names).await?;
        let mut fresh = Vec::new();
        let mut identical = Vec::new();
        let mut conflict = None;
        for ((key, here), there) in still_here.into_iter().zip(target) {
            match there {
                None => fresh.push(key.clone()),
                Some(there) if there == here => identical.push(key.clone()),
                Some(_) => {
                    conflict.get_or_insert_with(|| String::from_utf8_lossy(key).into_owned());
                }
            }
        }
        let mut moved = gone;
        if !identical.is_empty() {
            tracing::info!(
                slot,
                keys = identical.len(),
                "keys already on the target with the same value; replacing"
            );
            moved += self
                .migrate_keys(from, to, &identical, MigrateMode::Replace)
                .await?;
        }
        if !fresh.is_empty() {
            match self.migrate_keys(from, to, &fresh, MigrateMode::Move).await {
                Ok(n) => moved += n,
                // A key appeared on the target meanwhile: the next round looks at it again.
                Err(e) if is_busy_key(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(key) = conflict {
            return Err(AdapterError::BusyKey { slot, key });
        }
        Ok(moved)
    }

    /// `DUMP` of each key (after `ASKING`, so an importing node answers too). A key the
    /// source already handed over answers `ASK` on a migrating node: absent here.
    async fn dump_all(
        &self,
        addr: &Addr,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, AdapterError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("ASKING");
            pipe.cmd("DUMP").arg(k.as_slice());
        }
        let replies = self.pool.pipe_values(addr, &pipe, "DUMP").await?;
        // Every second reply is a DUMP; the others answer ASKING.
        replies
            .into_iter()
            .skip(1)
            .step_by(2)
            .map(|reply| match reply {
                Ok(Value::BulkString(bytes)) => Ok(Some(bytes)),
                Ok(Value::Nil) => Ok(None),
                Ok(other) => Err(AdapterError::BadReply {
                    addr: addr.clone(),
                    command: "DUMP".into(),
                    message: format!("{other:?}"),
                }),
                Err(e) if server_code(&e) == Some("ASK") => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }
}

/// Keys moved by a successful `MIGRATE` of `sent` keys: "NOKEY" means none of them exists
/// any more (deleted or expired meanwhile), nothing moved and nothing is wrong.
fn moved_by(reply: &Value, sent: usize) -> u64 {
    match reply {
        Value::SimpleString(s) if s == "NOKEY" => 0,
        _ => sent as u64,
    }
}

/// Connections a round's `SETSLOT`s are spread over: Valkey answers each only once the node's
/// replicas acknowledge it, which one connection would wait for slot after slot.
const SETSLOT_LANES: usize = 8;

/// A refusal by `addr` during move `mv`, read for what it means there. Valkey (8.0 and later)
/// passes `CLUSTER SETSLOT` on to the node's replicas and answers `NOREPLICAS` when they do not
/// acknowledge it in time (2 s by default): from the target of a move, that says its replica
/// is not keeping up, the very case in which moving keys to it pauses. Redis never answers so.
fn on_target(mv: &Move, addr: &Addr, e: AdapterError) -> AdapterError {
    if *addr == mv.to && server_code(&e) == Some("NOREPLICAS") {
        AdapterError::TargetUnprotected {
            addr: mv.to.clone(),
        }
    } else {
        e
    }
}

/// The source reports the target's refusal inside its own error:
/// `ERR Target instance replied with error: BUSYKEY ...`.
fn is_busy_key(e: &AdapterError) -> bool {
    matches!(e, AdapterError::Redis { message, .. } if message.contains("BUSYKEY"))
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

    #[test]
    fn a_busy_key_is_recognised_inside_the_sources_wrapped_error() {
        let e = refusal(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists.",
        );
        assert!(is_busy_key(&e));
        assert_eq!(server_code(&e), Some("ERR"));
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
