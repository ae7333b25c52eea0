//! Copying back the keys of a slot that a master dropped while its replicas kept them
//! ([`engine::Effect::RestoreDroppedKeys`]): Redis 7.0 deletes the keys of a slot a master loses
//! to another node's claim on the master alone (`delKeysInSlot` sends no deletion to the
//! replicas; 7.2 and later do), so the replicas are the only copy left.

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::migrate::server_code;
use engine::Addr;
use redis::Value;
use std::time::{Duration, Instant};

/// Keys read or written per round trip.
const BATCH: usize = 256;

/// How long the master may take to serve the slot it just claimed (its `cluster_state` turns
/// `ok` on its next event-loop turn) and to take every key, before the effect fails.
const RESTORE_DEADLINE: Duration = Duration::from_secs(10);

/// One key as the replica holds it.
struct Dumped {
    key: Vec<u8>,
    /// Milliseconds left to live; 0 for none (what `RESTORE` takes).
    ttl_ms: u64,
    payload: Vec<u8>,
}

impl RedisAdapter {
    /// Reads every key of `slot` on `replica` first (the slot is down on the master, so
    /// nothing changes them meanwhile), then has `master` claim the slot and restores each
    /// key it lacks. Clients see the slot empty only between the claim and the restores (a
    /// round trip): a key written then is the newer value and is kept (`RESTORE` without
    /// `REPLACE` answers `BUSYKEY`). Returns how many keys were restored.
    pub(crate) async fn restore_dropped_keys(
        &self,
        replica: &Addr,
        master: &Addr,
        master_id: &str,
        slot: u16,
    ) -> Result<u64, AdapterError> {
        let dumped = self.dump_slot(replica, slot).await?;
        let mut claim = redis::cmd("CLUSTER");
        claim.arg("SETSLOT").arg(slot).arg("NODE").arg(master_id);
        self.pool.query::<()>(master, &claim).await?;
        let (restored, kept) = self.restore_all(master, slot, &dumped).await?;
        tracing::warn!(%master, %replica, slot, restored, newer_on_master = kept,
            "copied back the keys of a slot the master had dropped while its replica kept them");
        Ok(restored)
    }

    /// `DUMP` and `PTTL` of every key of `slot` on the replica `addr` (`READONLY` first: a
    /// replica redirects reads to its master otherwise).
    async fn dump_slot(&self, addr: &Addr, slot: u16) -> Result<Vec<Dumped>, AdapterError> {
        let mut count = redis::cmd("CLUSTER");
        count.arg("COUNTKEYSINSLOT").arg(slot);
        let n: u64 = self.pool.query(addr, &count).await?;
        let mut get = redis::cmd("CLUSTER");
        get.arg("GETKEYSINSLOT").arg(slot).arg(n);
        let keys: Vec<Vec<u8>> = self.pool.query(addr, &get).await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH) {
            let mut pipe = redis::pipe();
            pipe.cmd("READONLY");
            for k in chunk {
                pipe.cmd("DUMP").arg(k).cmd("PTTL").arg(k);
            }
            let mut replies = self
                .pool
                .pipe_values(addr, &pipe, "DUMP")
                .await?
                .into_iter();
            replies.next().transpose()?;
            for k in chunk {
                let (dump, ttl) = (replies.next(), replies.next());
                let (Some(dump), Some(ttl)) = (dump, ttl) else {
                    return Err(bad_reply(addr, "fewer replies than commands"));
                };
                let ttl = match ttl? {
                    Value::Int(t) => t,
                    other => return Err(bad_reply(addr, &format!("PTTL answered {other:?}"))),
                };
                match dump? {
                    // Gone since it was listed (expired): nothing to bring back.
                    Value::Nil => {}
                    _ if ttl == -2 => {}
                    Value::BulkString(payload) => out.push(Dumped {
                        key: k.clone(),
                        ttl_ms: u64::try_from(ttl).unwrap_or(0),
                        payload,
                    }),
                    other => return Err(bad_reply(addr, &format!("DUMP answered {other:?}"))),
                }
            }
        }
        Ok(out)
    }

    /// `RESTORE key ttl payload` on `master` for every dumped key, until each is restored or
    /// found newer there (`BUSYKEY`). While the master has not yet applied its own claim
    /// (`CLUSTERDOWN`), or answers slowly, it is asked again, up to [`RESTORE_DEADLINE`].
    /// Returns (restored, kept because newer).
    async fn restore_all(
        &self,
        master: &Addr,
        slot: u16,
        dumped: &[Dumped],
    ) -> Result<(u64, u64), AdapterError> {
        let deadline = Instant::now() + RESTORE_DEADLINE;
        let (mut restored, mut kept) = (0u64, 0u64);
        let mut left: Vec<&Dumped> = dumped.iter().collect();
        while !left.is_empty() {
            let mut retry = Vec::new();
            let mut last_error = None;
            for chunk in left.chunks(BATCH) {
                let mut pipe = redis::pipe();
                for d in chunk {
                    pipe.cmd("RESTORE")
                        .arg(&d.key)
                        .arg(d.ttl_ms)
                        .arg(&d.payload);
                }
                let replies = match self.pool.pipe_values(master, &pipe, "RESTORE").await {
                    Ok(replies) => replies,
                    Err(e) if e.is_connectivity() => {
                        retry.extend_from_slice(chunk);
                        last_error = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for (d, reply) in chunk.iter().zip(replies) {
                    match reply {
                        Ok(_) => restored += 1,
                        Err(e) => match server_code(&e) {
                            Some("BUSYKEY") => kept += 1,
                            Some("CLUSTERDOWN" | "TRYAGAIN" | "LOADING") => {
                                retry.push(*d);
                                last_error = Some(e);
                            }
                            _ => return Err(e),
                        },
                    }
                }
            }
            left = retry;
            if let Some(e) = last_error {
                if Instant::now() >= deadline {
                    tracing::error!(%master, slot, left = left.len(), error = %e,
                        "keys of a dropped slot not restored in time");
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok((restored, kept))
    }
}

fn bad_reply(addr: &Addr, message: &str) -> AdapterError {
    AdapterError::BadReply {
        addr: addr.clone(),
        command: "DUMP".into(),
        message: message.into(),
    }
}
