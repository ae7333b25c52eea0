//! Moving the keys of one slot between two nodes with `MIGRATE`, whoever owns the slot, and
//! what to do when the target already holds one of them (`BUSYKEY`).

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::migrate::{is_busy_key, server_code};
use crate::protected::MigrateMode;
use engine::Addr;
use redis::Value;
use std::time::Duration;

impl RedisAdapter {
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
    pub(crate) async fn resolve_busy_keys(
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
pub(crate) fn moved_by(reply: &Value, sent: usize) -> u64 {
    match reply {
        Value::SimpleString(s) if s == "NOKEY" => 0,
        _ => sent as u64,
    }
}
