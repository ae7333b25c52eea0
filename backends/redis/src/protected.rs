//! Moving a batch of keys so that no key ever exists on one node only.
//!
//! A plain `MIGRATE` deletes the keys from the source as soon as the target has them: until
//! the target's replica applies them too, they exist once, and a target killed in that gap
//! loses them (the node-loss script lost a whole batch that way). When the target has a
//! replica, a batch therefore moves in steps:
//!
//! 1. **copy**: in one transaction on the source, `MIGRATE ... COPY REPLACE` the batch and take
//!    the SHA-1 of each key's `DUMP` — the fingerprint of exactly what was copied;
//! 2. **confirm**: wait until a replica of the target applied everything the target received
//!    (`replication::await_target_replicated`);
//! 3. **delete what did not change**: per key, a script on the source deletes it only if its
//!    fingerprint is still the copied one. A key written meanwhile stays; it is moved at once
//!    with a single-key `MIGRATE ... REPLACE` (its latest value is then as exposed as any
//!    write Redis replicates asynchronously, and its copy already sits on the replica);
//! 4. **forget stale copies**: a key that vanished from the source between the copy and the
//!    delete (deleted by a client, expired) must not come back from the target's copy, so the
//!    same script deletes it on the target when the target still holds exactly the copy. A
//!    client that re-created it there meanwhile with a different value keeps it.
//!
//! `REPLACE` in the copy is right because, while a slot is migrating, a key that exists on the
//! source is served by the source (clients reach the target only for keys the source lacks):
//! any copy the target holds of such a key is an earlier copy of ours.
//!
//! Known limit: in step 4, a client that deleted the key on the source and re-created it
//! through the target with the very same value and no TTL change, between steps 3 and 4,
//! sees it deleted.

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::migrate::{Move, server_code};
use engine::Addr;
use redis::Value;

/// Fingerprints of the keys of the transaction's `KEYS`, in order ("" for a key with no value).
const FINGERPRINTS: &str = "local d = {} \
    for i, k in ipairs(KEYS) do \
        local v = redis.call('DUMP', k) \
        if v then d[i] = redis.sha1hex(v) else d[i] = '' end \
    end \
    return d";

/// Deletes `KEYS[1]` if its fingerprint is `ARGV[1]`: 1 deleted, 0 different, -1 absent.
const DELETE_IF_SAME: &str = "local v = redis.call('DUMP', KEYS[1]) \
    if not v then return -1 end \
    if redis.sha1hex(v) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end \
    return 0";

/// Why a transaction was discarded: a command refused while being queued (a key of a
/// migrating slot that vanished makes the source answer `TRYAGAIN` for several keys, `ASK`
/// for one, and `EXEC` then only says `EXECABORT`). The queued command's own refusal is what
/// tells the caller to retry; `None` when `EXEC` was not aborted.
fn queued_refusal(
    exec: &Result<Value, AdapterError>,
    queued: [Option<Result<Value, AdapterError>>; 2],
) -> Option<AdapterError> {
    let aborted = matches!(exec, Err(e) if server_code(e) == Some("EXECABORT"));
    if !aborted {
        return None;
    }
    queued
        .into_iter()
        .flatten()
        .find_map(Result::err)
        .map(|e| match e {
            // `ASK` while queueing means the one key is gone from the source: the same
            // situation as `TRYAGAIN` for several, and retried the same way.
            AdapterError::Redis { addr, message, .. } if message.starts_with("ASK ") => {
                AdapterError::Redis {
                    addr,
                    command: "MIGRATE".into(),
                    message: format!("TRYAGAIN a key left the slot while queued ({message})"),
                }
            }
            other => other,
        })
}

/// What became of one key of a batch after step 3.
enum Fate {
    Moved,
    Changed,
    Gone,
}

impl RedisAdapter {
    /// Moves each `(slot, keys)` batch with the protected protocol. `Err` stops the whole turn
    /// (the source or target cannot be talked to, the target lost its replica); otherwise one
    /// result per batch: the number of keys that left the source, or why that slot failed
    /// (`TRYAGAIN` when a key vanished before the copy: the caller retries).
    pub(crate) async fn move_batches_protected(
        &self,
        mv: &Move,
        batches: &[(u16, Vec<Vec<u8>>)],
    ) -> Result<Vec<Result<u64, AdapterError>>, AdapterError> {
        let copied = self.copy_batches(mv, batches).await?;
        if copied.iter().any(Result::is_ok) {
            self.await_target_replicated(&mv.to).await?;
        }
        // Step 3 for every copied batch in one pipeline; a key's reply error fails its batch.
        let (all_keys, all_prints): (Vec<Vec<u8>>, Vec<String>) = batches
            .iter()
            .zip(&copied)
            .filter_map(|((_, keys), copy)| copy.as_ref().ok().map(|prints| (keys, prints)))
            .flat_map(|(keys, prints)| keys.iter().cloned().zip(prints.iter().cloned()))
            .unzip();
        let mut fates = match self
            .delete_if_same(&mv.from, &all_keys, &all_prints, false)
            .await
        {
            Ok(fates) => fates.into_iter(),
            Err(e) => {
                return Ok(copied.into_iter().map(|c| c.and(Err(e.clone()))).collect());
            }
        };
        let mut out = Vec::with_capacity(batches.len());
        for ((slot, keys), copy) in batches.iter().zip(copied) {
            match copy {
                Ok(prints) => {
                    let batch_fates: Result<Vec<Fate>, AdapterError> =
                        fates.by_ref().take(keys.len()).collect();
                    out.push(match batch_fates {
                        Ok(f) => self.release_batch(mv, *slot, keys, &prints, f).await,
                        Err(e) => Err(e),
                    });
                }
                Err(e) => out.push(Err(e)),
            }
        }
        Ok(out)
    }

    /// Step 1 for every batch in one pipeline: `MULTI`, `MIGRATE COPY REPLACE`, fingerprints,
    /// `EXEC` per slot. Returns each batch's fingerprints.
    async fn copy_batches(
        &self,
        mv: &Move,
        batches: &[(u16, Vec<Vec<u8>>)],
    ) -> Result<Vec<Result<Vec<String>, AdapterError>>, AdapterError> {
        let mut pipe = redis::pipe();
        for (_, keys) in batches {
            pipe.cmd("MULTI");
            pipe.add_command(self.migrate_command(&mv.to, keys, MigrateMode::CopyReplace));
            let mut prints = redis::cmd("EVAL");
            prints.arg(FINGERPRINTS).arg(keys.len());
            for k in keys {
                prints.arg(k.as_slice());
            }
            pipe.add_command(prints);
            pipe.cmd("EXEC");
        }
        let replies = self.pool.pipe_values(&mv.from, &pipe, "MIGRATE").await?;
        // MULTI, QUEUED, QUEUED, then EXEC's reply, per batch.
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(batches.len());
        for (_, keys) in batches {
            let mut quad = replies.by_ref().take(4).skip(1);
            let (migrate, prints, exec) = (quad.next(), quad.next(), quad.next());
            let exec = exec.unwrap_or_else(|| {
                Err(AdapterError::BadReply {
                    addr: mv.from.clone(),
                    command: "EXEC".into(),
                    message: "fewer replies than commands in the pipeline".into(),
                })
            });
            out.push(
                queued_refusal(&exec, [migrate, prints])
                    .map_or_else(|| self.fingerprints(&mv.from, exec, keys.len()), Err),
            );
        }
        Ok(out)
    }

    /// Reads `EXEC`'s reply to a copy: `[MIGRATE's reply, [fingerprint...]]`.
    fn fingerprints(
        &self,
        addr: &Addr,
        exec: Result<Value, AdapterError>,
        count: usize,
    ) -> Result<Vec<String>, AdapterError> {
        let bad = |message: String| AdapterError::BadReply {
            addr: addr.clone(),
            command: "EXEC".into(),
            message,
        };
        let Value::Array(parts) = exec? else {
            return Err(bad(
                "a transaction answered something else than an array".into()
            ));
        };
        let mut parts = parts.into_iter();
        match parts.next() {
            Some(Value::ServerError(e)) => return Err(self.pool.refusal(addr, "MIGRATE", e)),
            Some(_) => {}
            None => return Err(bad("an empty transaction reply".into())),
        }
        let prints: Vec<String> = match parts.next() {
            Some(Value::ServerError(e)) => return Err(self.pool.refusal(addr, "EVAL", e)),
            Some(v) => redis::FromRedisValue::from_redis_value(v)
                .map_err(|e| bad(format!("fingerprints: {e}")))?,
            None => return Err(bad("no fingerprints".into())),
        };
        if prints.len() != count {
            return Err(bad(format!(
                "{} fingerprints for {count} keys",
                prints.len()
            )));
        }
        Ok(prints)
    }

    /// The rest of step 3 and step 4 for one batch, given what step 3's script did to each of
    /// its keys. Returns how many keys left the source.
    async fn release_batch(
        &self,
        mv: &Move,
        slot: u16,
        keys: &[Vec<u8>],
        prints: &[String],
        fates: Vec<Fate>,
    ) -> Result<u64, AdapterError> {
        let mut moved = 0;
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        for ((key, print), fate) in keys.iter().zip(prints).zip(fates) {
            match fate {
                Fate::Moved => moved += 1,
                Fate::Changed => changed.push((key.clone(), print.clone())),
                Fate::Gone => gone.push((key.clone(), print.clone())),
            }
        }
        if !changed.is_empty() {
            tracing::debug!(
                slot,
                keys = changed.len(),
                "keys written during their copy; moving their latest value"
            );
            let mut pipe = redis::pipe();
            for (key, _) in &changed {
                pipe.cmd("ASKING");
                pipe.add_command(self.migrate_command(
                    &mv.to,
                    std::slice::from_ref(key),
                    MigrateMode::OneKeyReplace,
                ));
            }
            let replies = self.pool.pipe_values(&mv.from, &pipe, "MIGRATE").await?;
            for ((key, print), reply) in changed
                .into_iter()
                .zip(replies.into_iter().skip(1).step_by(2))
            {
                match reply {
                    Ok(Value::SimpleString(s)) if s == "NOKEY" => gone.push((key, print)),
                    Ok(_) => moved += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        if !gone.is_empty() {
            let (keys, prints): (Vec<Vec<u8>>, Vec<String>) = gone.into_iter().unzip();
            for fate in self.delete_if_same(&mv.to, &keys, &prints, true).await? {
                fate?;
            }
        }
        Ok(moved)
    }

    /// Runs [`DELETE_IF_SAME`] for each key on `addr` (after `ASKING` on an importing node),
    /// in one pipeline; one result per key. A key the node redirects with `ASK` is absent there.
    async fn delete_if_same(
        &self,
        addr: &Addr,
        keys: &[Vec<u8>],
        prints: &[String],
        asking: bool,
    ) -> Result<Vec<Result<Fate, AdapterError>>, AdapterError> {
        let script = redis::Script::new(DELETE_IF_SAME);
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(DELETE_IF_SAME);
        for (k, print) in keys.iter().zip(prints) {
            if asking {
                pipe.cmd("ASKING");
            }
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(1)
                .arg(k.as_slice())
                .arg(print);
        }
        let replies = self.pool.pipe_values(addr, &pipe, "EVALSHA").await?;
        let step = if asking { 2 } else { 1 };
        Ok(replies
            .into_iter()
            .skip(step)
            .step_by(step)
            .map(|reply| match reply {
                Ok(Value::Int(1)) => Ok(Fate::Moved),
                Ok(Value::Int(0)) => Ok(Fate::Changed),
                Ok(Value::Int(_)) => Ok(Fate::Gone),
                Err(e) if server_code(&e) == Some("ASK") => Ok(Fate::Gone),
                Ok(other) => Err(AdapterError::BadReply {
                    addr: addr.clone(),
                    command: "EVALSHA".into(),
                    message: format!("{other:?}"),
                }),
                Err(e) => Err(e),
            })
            .collect())
    }
}

/// How a `MIGRATE` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MigrateMode {
    /// `... KEYS k...`: moves, refuses keys the target has (`BUSYKEY`).
    Move,
    /// `... REPLACE KEYS k...`: moves, overwriting the target's copies.
    Replace,
    /// `... COPY REPLACE KEYS k...`: the source keeps the keys.
    CopyReplace,
    /// `MIGRATE host port k 0 timeout REPLACE`: one key, and `NOKEY` says it was absent.
    OneKeyReplace,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(message: &str) -> Result<Value, AdapterError> {
        Err(AdapterError::Redis {
            addr: Addr::new("127.0.0.1", 1),
            command: "MIGRATE".into(),
            message: message.into(),
        })
    }

    fn queued() -> Option<Result<Value, AdapterError>> {
        Some(Ok(Value::SimpleString("QUEUED".into())))
    }

    #[test]
    fn an_aborted_copy_reports_the_queued_commands_refusal_so_it_is_retried() {
        let exec = refused("EXECABORT Transaction discarded because of previous errors.");
        let why = queued_refusal(
            &exec,
            [
                queued(),
                Some(refused(
                    "TRYAGAIN Multiple keys request during rehashing of slot",
                )),
            ],
        )
        .expect("the queued refusal");
        assert_eq!(server_code(&why), Some("TRYAGAIN"));
    }

    #[test]
    fn an_ask_while_queueing_one_key_is_retried_like_tryagain() {
        let exec = refused("EXECABORT Transaction discarded because of previous errors.");
        let why = queued_refusal(&exec, [Some(refused("ASK 12182 127.0.0.1:19002")), None])
            .expect("the queued refusal");
        assert_eq!(server_code(&why), Some("TRYAGAIN"));
        assert!(why.to_string().contains("ASK 12182"), "{why}");
    }

    #[test]
    fn a_transaction_that_ran_has_no_queued_refusal() {
        let exec = Ok(Value::Array(vec![]));
        assert!(queued_refusal(&exec, [queued(), queued()]).is_none());
        let other = refused("ERR Target instance replied with error: BUSYKEY x");
        assert!(queued_refusal(&other, [queued(), queued()]).is_none());
    }
}
