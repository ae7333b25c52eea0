//! Moving hash slots and their keys between masters, crash-safe at every step: a slot is
//! marked IMPORTING on the target before MIGRATING on the source, keys move in batches with
//! `MIGRATE ... KEYS`, and ownership changes (`SETSLOT NODE`) only once the source holds no
//! key of the slot — target first, so the slot is never owned by a node that lacks its keys.

use crate::RedisAdapter;
use crate::error::AdapterError;
use engine::Addr;
use redis::Value;
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
}

impl RedisAdapter {
    /// Migrates `slots` with up to `slot_concurrency` slots in flight. On the first error no
    /// new slot is started, the ones in flight finish, and that first error is returned.
    pub(crate) async fn migrate_slots(
        &self,
        mv: Move,
        slots: Vec<u16>,
    ) -> Result<(), AdapterError> {
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
            self.broadcast_owner(&mv, &finished, false).await?;
            for _ in &finished {
                self.progress.slot_done();
            }
        }

        let queue = Arc::new(Mutex::new(queue));
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
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((slot, owned)) = next else { break };
                    match this.migrate_one_slot(&mv, slot, owned).await {
                        Ok(()) => this.progress.slot_done(),
                        Err(e) => {
                            tracing::warn!(slot, from = %mv.from, to = %mv.to, error = %e, "slot migration stopped");
                            this.progress.slot_abandoned();
                            stop.store(true, Ordering::Relaxed);
                            first_error = Some(e);
                            break;
                        }
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
        let left = queue.lock().map(|q| q.len()).unwrap_or(0);
        for _ in 0..left {
            self.progress.slot_abandoned();
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn migrate_one_slot(
        &self,
        mv: &Move,
        slot: u16,
        target_owns: bool,
    ) -> Result<(), AdapterError> {
        if !target_owns {
            let mut importing = redis::cmd("CLUSTER");
            importing
                .arg("SETSLOT")
                .arg(slot)
                .arg("IMPORTING")
                .arg(&mv.from_id);
            let () = self.pool.query(&mv.to, &importing).await?;
            let mut migrating = redis::cmd("CLUSTER");
            migrating
                .arg("SETSLOT")
                .arg(slot)
                .arg("MIGRATING")
                .arg(&mv.to_id);
            let () = self.pool.query(&mv.from, &migrating).await?;
        }
        self.move_keys(&mv.from, &mv.to, slot).await?;
        self.broadcast_owner(mv, &[slot], !target_owns).await
    }

    /// `SETSLOT slot NODE to_id` on the target (when asked), then the source, then every
    /// other master, each node receiving all `slots` in one pipeline.
    async fn broadcast_owner(
        &self,
        mv: &Move,
        slots: &[u16],
        include_target: bool,
    ) -> Result<(), AdapterError> {
        let mut pipe = redis::pipe();
        for s in slots {
            pipe.cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(*s)
                .arg("NODE")
                .arg(&mv.to_id)
                .ignore();
        }
        if include_target {
            let () = self
                .pool
                .pipe(&mv.to, &pipe, "CLUSTER SETSLOT NODE")
                .await?;
        }
        let () = self
            .pool
            .pipe(&mv.from, &pipe, "CLUSTER SETSLOT NODE")
            .await?;
        // The other masters learn the new owner through gossip anyway (the target bumped its
        // epoch); telling them directly only closes the window of MOVED redirects, so a
        // failure here is logged, not returned.
        let mut tasks = tokio::task::JoinSet::new();
        for other in mv.others.iter().filter(|a| **a != mv.from && **a != mv.to) {
            let (this, other, pipe) = (self.clone(), other.clone(), pipe.clone());
            tasks.spawn(async move {
                let r: Result<(), AdapterError> =
                    this.pool.pipe(&other, &pipe, "CLUSTER SETSLOT NODE").await;
                if let Err(e) = r {
                    tracing::warn!(%other, error = %e, "could not tell a master the new slot owner");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
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
            match self.migrate_keys(from, to, &keys, false).await {
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

    /// One `MIGRATE host port "" 0 timeout [REPLACE] [AUTH pw] KEYS ...`; returns the number
    /// of keys it moved.
    async fn migrate_keys(
        &self,
        from: &Addr,
        to: &Addr,
        keys: &[Vec<u8>],
        replace: bool,
    ) -> Result<u64, AdapterError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let config = self.config();
        let mut migrate = redis::cmd("MIGRATE");
        migrate
            .arg(&to.ip)
            .arg(to.port)
            .arg("")
            .arg(0)
            .arg(config.migrate_timeout.as_millis() as u64);
        if replace {
            migrate.arg("REPLACE");
        }
        if let Some(pw) = &config.password {
            migrate.arg("AUTH").arg(pw);
        }
        migrate.arg("KEYS");
        for k in keys {
            migrate.arg(k.as_slice());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING");
        pipe.add_command(migrate);
        let mut replies = self.pool.pipe_values(from, &pipe, "MIGRATE").await?;
        let reply = replies.pop().unwrap_or(Ok(Value::Nil))?;
        // "NOKEY" means none of the keys exists any more: nothing moved, nothing wrong.
        let moved = match reply {
            Value::SimpleString(s) if s == "NOKEY" => 0,
            _ => keys.len() as u64,
        };
        Ok(moved)
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
            moved += self.migrate_keys(from, to, &identical, true).await?;
        }
        if !fresh.is_empty() {
            match self.migrate_keys(from, to, &fresh, false).await {
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
