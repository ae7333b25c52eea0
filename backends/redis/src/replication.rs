//! Whether keys moved to a migration target exist twice: the target has a synced replica, and
//! that replica has applied everything the target received so far.
//!
//! `WAIT` cannot answer the second question: it waits for the offset of the calling
//! connection's own last write, and the keys of a `MIGRATE` are written on the target by the
//! source's connection, not ours. So the target's `master_repl_offset` is read right after a
//! batch and its replicas are asked for their applied offset (`slave_repl_offset`) directly:
//! the replicas' own acknowledgements to the target arrive only once per second.

use crate::RedisAdapter;
use crate::error::AdapterError;
use engine::Addr;
use std::time::{Duration, Instant};

/// First pause between two polls of a lagging replica; doubled up to [`MAX_POLL_PAUSE`].
const FIRST_POLL_PAUSE: Duration = Duration::from_micros(200);
const MAX_POLL_PAUSE: Duration = Duration::from_millis(20);

impl RedisAdapter {
    /// The target has at least one replica that finished its sync and is online: keys moved
    /// to it exist twice. Read from the target's `INFO replication` (`slaveN:...,state=online`).
    pub(crate) async fn ensure_target_replicated(&self, to: &Addr) -> Result<(), AdapterError> {
        let info = self.replication_info(to).await?;
        if online_replicas(&info).is_empty() {
            Err(AdapterError::TargetUnprotected { addr: to.clone() })
        } else {
            Ok(())
        }
    }

    /// Waits until one online replica of `to` has applied everything `to` had received when
    /// this was called (keys of the `MIGRATE`s that just returned included). Gives up after
    /// the response timeout with [`AdapterError::TargetUnprotected`]: a replica that far
    /// behind does not protect the keys, and the move pauses like one whose target lost its
    /// replica.
    pub(crate) async fn await_target_replicated(&self, to: &Addr) -> Result<(), AdapterError> {
        let info = self.replication_info(to).await?;
        let wanted = info_field(&info, "master_repl_offset")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| AdapterError::BadReply {
                addr: to.clone(),
                command: "INFO replication".into(),
                message: "no master_repl_offset".into(),
            })?;
        let replicas = online_replicas(&info);
        if replicas.is_empty() {
            return Err(AdapterError::TargetUnprotected { addr: to.clone() });
        }
        let deadline = Instant::now() + self.config().response_timeout;
        let mut pause = FIRST_POLL_PAUSE;
        loop {
            for replica in &replicas {
                // A replica that cannot be asked is skipped: another one may answer, and the
                // deadline bounds the whole wait.
                if let Ok(info) = self.replication_info(replica).await
                    && applied_offset(&info).is_some_and(|applied| applied >= wanted)
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!(target = %to, offset = wanted, "no replica of the migration target caught up; pausing the move");
                return Err(AdapterError::TargetUnprotected { addr: to.clone() });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
        }
    }

    async fn replication_info(&self, addr: &Addr) -> Result<String, AdapterError> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("replication");
        self.pool.query(addr, &cmd).await
    }
}

/// Replicas a master's `INFO replication` lists as `state=online` (synced and streaming),
/// by the address they announced.
fn online_replicas(info: &str) -> Vec<Addr> {
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains(":ip="))
        .filter_map(|line| {
            let (_, fields) = line.split_once(':')?;
            let mut ip = None;
            let mut port = None;
            let mut online = false;
            for field in fields.trim().split(',') {
                match field.split_once('=') {
                    Some(("ip", v)) => ip = Some(v),
                    Some(("port", v)) => port = v.parse::<u16>().ok(),
                    Some(("state", "online")) => online = true,
                    _ => {}
                }
            }
            online.then(|| Some(Addr::new(ip?, port?))).flatten()
        })
        .collect()
}

/// The offset of the replication stream a replica has applied (Redis and Valkey both name it
/// `slave_repl_offset`; a later rename to `replica_repl_offset` is accepted too).
fn applied_offset(info: &str) -> Option<u64> {
    info_field(info, "slave_repl_offset")
        .or_else(|| info_field(info, "replica_repl_offset"))
        .and_then(|v| v.parse().ok())
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replicas_in_state_online_protect_a_target() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=7001,state=online,offset=120,lag=0\r\n\
            slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n\
            master_failover_state:no-failover\r\nmaster_repl_offset:130\r\n";
        assert_eq!(online_replicas(info), vec![Addr::new("127.0.0.1", 7001)]);
        assert_eq!(info_field(info, "master_repl_offset"), Some("130"));
        assert!(
            online_replicas("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n").is_empty()
        );
    }

    #[test]
    fn a_replica_reports_the_offset_it_applied_not_the_one_it_read() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n\
            slave_read_repl_offset:500\r\nslave_repl_offset:480\r\nmaster_repl_offset:480\r\n";
        assert_eq!(applied_offset(info), Some(480));
        assert_eq!(applied_offset("role:master\r\n"), None);
    }
}
