//! One multiplexed connection per node address, opened on first use and replaced after an
//! I/O error or a timeout (a timed-out reply may still arrive later and desynchronise nothing
//! in a multiplexed connection, but a dead peer would keep failing until we reconnect).

use crate::config::AdapterConfig;
use crate::error::AdapterError;
use engine::Addr;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, FromRedisValue, IntoConnectionInfo,
    RedisConnectionInfo, RedisError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub(crate) struct Pool {
    config: Arc<AdapterConfig>,
    // A plain mutex: it is never held across an await, connecting happens outside it.
    // Each connection carries the number it was opened as (see `Pool::generation`).
    conns: Arc<Mutex<HashMap<Addr, (MultiplexedConnection, u64)>>>,
    /// The extra connections of [`Pool::spread_values`], kept like the shared one: opened
    /// afresh for every call, they made a scale-out at 100 masters open thousands of
    /// connections to the busiest nodes, and connecting timed out there.
    lanes: Arc<Mutex<HashMap<(Addr, usize), MultiplexedConnection>>>,
    opened: Arc<std::sync::atomic::AtomicU64>,
}

impl Pool {
    pub(crate) fn new(config: Arc<AdapterConfig>) -> Self {
        Self {
            config,
            conns: Arc::new(Mutex::new(HashMap::new())),
            lanes: Arc::new(Mutex::new(HashMap::new())),
            opened: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    pub(crate) fn config(&self) -> &AdapterConfig {
        &self.config
    }

    fn cached(&self, addr: &Addr) -> Option<MultiplexedConnection> {
        self.conns
            .lock()
            .ok()
            .and_then(|map| map.get(addr).map(|(conn, _)| conn.clone()))
    }

    /// The number the connection to `addr` now in use was opened as, unique in this pool: a
    /// different one means the old connection broke (a restarted server breaks it) and a new
    /// one was opened since. `None` when there is none.
    pub(crate) fn generation(&self, addr: &Addr) -> Option<u64> {
        self.conns
            .lock()
            .ok()
            .and_then(|map| map.get(addr).map(|(_, generation)| *generation))
    }

    /// Drops every connection to `addr`: an error on one says the server restarted or went
    /// away, which breaks the others too.
    fn forget(&self, addr: &Addr) {
        if let Ok(mut map) = self.conns.lock() {
            map.remove(addr);
        }
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.retain(|(a, _), _| a != addr);
        }
    }

    /// Extra connection number `lane` (1 and up) to `addr`, opened on first use.
    async fn lane(&self, addr: &Addr, lane: usize) -> Result<MultiplexedConnection, AdapterError> {
        let key = (addr.clone(), lane);
        if let Some(conn) = self.lanes.lock().ok().and_then(|l| l.get(&key).cloned()) {
            return Ok(conn);
        }
        let conn = self.open(addr).await?;
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.insert(key, conn.clone());
        }
        Ok(conn)
    }

    async fn connection(&self, addr: &Addr) -> Result<MultiplexedConnection, AdapterError> {
        if let Some(conn) = self.cached(addr) {
            return Ok(conn);
        }
        let conn = self.open(addr).await?;
        let generation = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut map) = self.conns.lock() {
            map.insert(addr.clone(), (conn.clone(), generation));
        }
        Ok(conn)
    }

    /// A new connection to `addr`, not shared with anyone.
    async fn open(&self, addr: &Addr) -> Result<MultiplexedConnection, AdapterError> {
        let unreachable = |e: RedisError| AdapterError::Unreachable {
            addr: addr.clone(),
            message: e.to_string(),
        };
        let mut settings = RedisConnectionInfo::default();
        if let Some(password) = &self.config.password {
            settings = settings.set_password(password);
        }
        let info = ConnectionAddr::Tcp(addr.ip.clone(), addr.port)
            .into_connection_info()
            .map_err(unreachable)?
            .set_redis_settings(settings);
        let client = Client::open(info).map_err(unreachable)?;
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout));
        // The library's connect timeout covers TCP; this outer one also bounds the AUTH
        // handshake, which a wedged server could otherwise stall.
        let connect = client.get_multiplexed_async_connection_with_config(&conn_config);
        let conn = match tokio::time::timeout(
            self.config.connect_timeout + self.config.response_timeout,
            connect,
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) if e.is_timeout() => {
                return Err(AdapterError::Timeout {
                    addr: addr.clone(),
                    command: "connect".into(),
                });
            }
            Ok(Err(e)) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
                return Err(AdapterError::AuthRefused {
                    addr: addr.clone(),
                    message: e.to_string(),
                });
            }
            Ok(Err(e)) => return Err(unreachable(e)),
            Err(_) => {
                return Err(AdapterError::Timeout {
                    addr: addr.clone(),
                    command: "connect".into(),
                });
            }
        };
        Ok(conn)
    }

    /// Turns a library error into ours, dropping the cached connection when it is broken.
    fn classify(&self, addr: &Addr, command: &str, e: RedisError) -> AdapterError {
        if e.is_timeout() {
            self.forget(addr);
            return AdapterError::Timeout {
                addr: addr.clone(),
                command: command.to_string(),
            };
        }
        if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            self.forget(addr);
            return AdapterError::Unreachable {
                addr: addr.clone(),
                message: e.to_string(),
            };
        }
        let message = match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            // A pipeline's error carries its text only in the Display (found by
            // `hostile_nodes`: the reply read "refused observe: ERR"). The code stays the
            // first word, which `migrate::server_code` reads.
            (Some(code), None) => format!("{code} {e}"),
            _ => e.to_string(),
        };
        if matches!(
            e.kind(),
            redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse
        ) {
            return AdapterError::BadReply {
                addr: addr.clone(),
                command: command.to_string(),
                message,
            };
        }
        AdapterError::Redis {
            addr: addr.clone(),
            command: command.to_string(),
            message,
        }
    }

    /// An error reply found inside another reply (an element of `EXEC`'s array).
    pub(crate) fn refusal(
        &self,
        addr: &Addr,
        command: &str,
        err: redis::ServerError,
    ) -> AdapterError {
        let e: RedisError = err.into();
        self.classify(addr, command, e)
    }

    /// Runs one command and converts its reply.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        addr: &Addr,
        cmd: &redis::Cmd,
    ) -> Result<T, AdapterError> {
        let name = command_name(cmd);
        let mut conn = self.connection(addr).await?;
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| self.classify(addr, &name, e))
    }

    /// Runs a pipeline in one round trip. A server error in any command fails the whole call
    /// (the library reports the first); callers that expect per-command errors use
    /// [`Pool::pipe_values`].
    pub(crate) async fn pipe<T: FromRedisValue>(
        &self,
        addr: &Addr,
        pipe: &redis::Pipeline,
        name: &str,
    ) -> Result<T, AdapterError> {
        let mut conn = self.connection(addr).await?;
        pipe.query_async(&mut conn)
            .await
            .map_err(|e| self.classify(addr, name, e))
    }

    /// Runs `cmds` on `addr` over `lanes` connections at once (the shared one and extra ones),
    /// each lane a pipeline of every `lanes`-th command, and returns each reply in the order
    /// of `cmds`, server errors included. For commands a server answers only after its
    /// replicas acknowledge them (Valkey's `CLUSTER SETSLOT`): one connection would wait for
    /// one acknowledgement after another, while an acknowledgement releases every waiting
    /// connection at once.
    pub(crate) async fn spread_values(
        &self,
        addr: &Addr,
        cmds: &[redis::Cmd],
        lanes: usize,
        name: &str,
    ) -> Result<Vec<Result<redis::Value, AdapterError>>, AdapterError> {
        let lanes = lanes.clamp(1, cmds.len().max(1));
        let mut tasks = tokio::task::JoinSet::new();
        for lane in 0..lanes {
            let mut pipe = redis::pipe();
            for cmd in cmds.iter().skip(lane).step_by(lanes) {
                pipe.add_command(cmd.clone());
            }
            let (pool, addr, name) = (self.clone(), addr.clone(), name.to_owned());
            tasks.spawn(async move {
                let conn = if lane == 0 {
                    pool.connection(&addr).await
                } else {
                    pool.lane(&addr, lane).await
                };
                let result = match conn {
                    Ok(conn) => pool.run_values(&addr, conn, &pipe, &name).await,
                    Err(e) => Err(e),
                };
                (lane, result)
            });
        }
        let mut by_lane: Vec<Option<std::vec::IntoIter<_>>> = (0..lanes).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (lane, result) = joined.map_err(|e| AdapterError::Unreachable {
                addr: addr.clone(),
                message: format!("a {name} task failed: {e}"),
            })?;
            by_lane[lane] = Some(result?.into_iter());
        }
        let mut out = Vec::with_capacity(cmds.len());
        for i in 0..cmds.len() {
            let reply = by_lane
                .get_mut(i % lanes)
                .and_then(Option::as_mut)
                .and_then(Iterator::next)
                .unwrap_or_else(|| {
                    Err(AdapterError::BadReply {
                        addr: addr.clone(),
                        command: name.to_owned(),
                        message: "fewer replies than commands".into(),
                    })
                });
            out.push(reply);
        }
        Ok(out)
    }

    /// Runs a pipeline and returns each reply separately, server errors included, so one
    /// refused command does not hide the others' answers.
    pub(crate) async fn pipe_values(
        &self,
        addr: &Addr,
        pipe: &redis::Pipeline,
        name: &str,
    ) -> Result<Vec<Result<redis::Value, AdapterError>>, AdapterError> {
        let conn = self.connection(addr).await?;
        self.run_values(addr, conn, pipe, name).await
    }

    async fn run_values(
        &self,
        addr: &Addr,
        mut conn: MultiplexedConnection,
        pipe: &redis::Pipeline,
        name: &str,
    ) -> Result<Vec<Result<redis::Value, AdapterError>>, AdapterError> {
        let mut p = pipe.clone();
        let values: Vec<redis::Value> = p
            .ignore_errors()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.classify(addr, name, e))?;
        Ok(values
            .into_iter()
            .map(|v| match v {
                redis::Value::ServerError(err) => {
                    let e: RedisError = err.into();
                    Err(self.classify(addr, name, e))
                }
                other => Ok(other),
            })
            .collect())
    }
}

/// `CLUSTER SETSLOT`-style name of a command for error messages: the first two arguments
/// when the first is a container command, else the first.
fn command_name(cmd: &redis::Cmd) -> String {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).to_uppercase()),
        _ => None,
    });
    match args.next() {
        Some(first) if matches!(first.as_str(), "CLUSTER" | "CONFIG" | "CLIENT" | "INFO") => {
            match args.next() {
                Some(second) => format!("{first} {second}"),
                None => first,
            }
        }
        Some(first) => first,
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_commands_are_named_by_their_subcommand() {
        let mut setslot = redis::cmd("cluster");
        setslot.arg("setslot").arg(5).arg("NODE");
        assert_eq!(command_name(&setslot), "CLUSTER SETSLOT");
        let mut migrate = redis::cmd("MIGRATE");
        migrate.arg("127.0.0.1");
        assert_eq!(command_name(&migrate), "MIGRATE");
    }
}
