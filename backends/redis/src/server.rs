//! Which server a node runs — Redis or Valkey, and its version — and whether it offers atomic
//! slot migration (`CLUSTER MIGRATESLOTS`, Valkey 9). No server here offers it yet (Debian's
//! Redis 7.0 and Valkey 8.1 from PyPI), so migrations always move keys one batch at a time;
//! this is the detection a move through the server would start from.

use crate::RedisAdapter;
use crate::error::AdapterError;
use engine::Addr;
use redis::Value;

/// The server software behind one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub kind: ServerKind,
    /// Its own version: `valkey_version` for Valkey (whose `redis_version` names the Redis
    /// version it is compatible with), `redis_version` for Redis.
    pub version: String,
    /// `COMMAND INFO CLUSTER|MIGRATESLOTS` describes the command.
    pub atomic_slot_migration: bool,
}

impl ServerInfo {
    /// Whether a slot's move may end by telling its source the new owner before its target
    /// (see `broadcast_owner`). Only where a node that takes a slot also forgets that the
    /// slot's previous owner had stopped claiming it: Redis 7.4 and later (redis/redis#12564)
    /// and Valkey 8. Redis 7.0-7.2 keeps that mark on the new owner, so a claim from the old
    /// owner sent before it was told and delivered late (each pair of nodes talks over two
    /// connections, in no common order) wins the slot back whatever its epoch, and the new
    /// owner deletes the keys: seen once in CI on Redis 7.0.15
    /// (`moves::migrate_slots_moves_thousands_of_keys_and_every_master_agrees_on_the_new_owner`).
    pub fn hands_over_source_first(&self) -> bool {
        source_first_is_safe(self.kind, &self.version)
    }
}

/// See [`ServerInfo::hands_over_source_first`].
fn source_first_is_safe(kind: ServerKind, version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    match kind {
        ServerKind::Redis => (major, minor) >= (7, 4),
        ServerKind::Valkey => major >= 8,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Redis,
    Valkey,
}

impl std::fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.kind {
            ServerKind::Redis => "Redis",
            ServerKind::Valkey => "Valkey",
        };
        write!(f, "{name} {}", self.version)
    }
}

/// Reads `INFO server`: Valkey says `server_name:valkey` and gives `valkey_version`.
pub(crate) fn parse_info_server(text: &str) -> (ServerKind, String) {
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.trim_end().split_once(':'))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    match field("server_name").as_deref() {
        Some("valkey") => (
            ServerKind::Valkey,
            field("valkey_version").unwrap_or_default(),
        ),
        _ => (
            ServerKind::Redis,
            field("redis_version").unwrap_or_default(),
        ),
    }
}

/// `COMMAND INFO` answers nil for a command the server does not know, and a description
/// (an array) for one it does.
pub(crate) fn describes_command(reply: &Value) -> bool {
    match reply {
        Value::Array(entries) => entries.first().is_some_and(|e| !matches!(e, Value::Nil)),
        _ => false,
    }
}

impl RedisAdapter {
    /// Asks `addr` which server it runs and whether it can migrate slots atomically.
    pub async fn server_info(&self, addr: &Addr) -> Result<ServerInfo, AdapterError> {
        let (kind, version) = self.server_identity(addr).await?;
        let mut probe = redis::cmd("COMMAND");
        probe.arg("INFO").arg("CLUSTER|MIGRATESLOTS");
        let reply: Value = self.pool.query(addr, &probe).await?;
        Ok(ServerInfo {
            kind,
            version,
            atomic_slot_migration: describes_command(&reply),
        })
    }

    /// `INFO server` on `addr`: which server it runs, and its version.
    async fn server_identity(&self, addr: &Addr) -> Result<(ServerKind, String), AdapterError> {
        let mut info = redis::cmd("INFO");
        info.arg("server");
        let text: String = self.pool.query(addr, &info).await?;
        Ok(parse_info_server(&text))
    }

    /// Whether a move into `addr` may tell its source first: what the observer found on the
    /// connection now in use, else one `INFO server` (Redis' own order, the target first,
    /// when the node does not answer).
    pub(crate) async fn hands_over_source_first(&self, addr: &Addr) -> bool {
        if let Some(known) = self.known_server(addr) {
            return known;
        }
        match self.server_identity(addr).await {
            Ok((kind, version)) => {
                let safe = source_first_is_safe(kind, &version);
                self.remember_server(addr, safe);
                safe
            }
            Err(_) => false,
        }
    }

    /// Whether `addr` hands over source-first, as found on the connection now in use; `None`
    /// when it was not read on that connection (a new connection may reach a new server).
    pub(crate) fn known_server(&self, addr: &Addr) -> Option<bool> {
        let generation = self.pool.generation(addr)?;
        let servers = self.servers.lock().ok()?;
        servers
            .get(addr)
            .filter(|(read_on, _)| *read_on == generation)
            .map(|(_, safe)| *safe)
    }

    /// Remembers what `INFO server` (`text`) said of `addr` for the connection now in use;
    /// whether it hands over source-first.
    pub(crate) fn remember_server_info(&self, addr: &Addr, text: &str) -> bool {
        let (kind, version) = parse_info_server(text);
        let safe = source_first_is_safe(kind, &version);
        self.remember_server(addr, safe);
        safe
    }

    fn remember_server(&self, addr: &Addr, hands_over_source_first: bool) {
        if let (Some(generation), Ok(mut servers)) =
            (self.pool.generation(addr), self.servers.lock())
        {
            servers.insert(addr.clone(), (generation, hands_over_source_first));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valkey_is_told_from_redis_by_its_server_name_and_own_version() {
        let valkey =
            "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.1.8\r\n";
        assert_eq!(
            parse_info_server(valkey),
            (ServerKind::Valkey, "8.1.8".to_owned())
        );
        let redis = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(
            parse_info_server(redis),
            (ServerKind::Redis, "7.0.15".to_owned())
        );
    }

    #[test]
    fn only_servers_that_forget_a_stale_not_claiming_mark_hand_over_source_first() {
        let info = |kind, version: &str| ServerInfo {
            kind,
            version: version.to_owned(),
            atomic_slot_migration: false,
        };
        assert!(!info(ServerKind::Redis, "7.0.15").hands_over_source_first());
        assert!(!info(ServerKind::Redis, "7.2.4").hands_over_source_first());
        assert!(info(ServerKind::Redis, "7.4.0").hands_over_source_first());
        assert!(info(ServerKind::Redis, "8.0.2").hands_over_source_first());
        assert!(!info(ServerKind::Valkey, "7.2.5").hands_over_source_first());
        assert!(info(ServerKind::Valkey, "8.1.8").hands_over_source_first());
        assert!(!info(ServerKind::Redis, "garbage").hands_over_source_first());
    }

    #[test]
    fn only_a_described_command_counts_as_offered() {
        assert!(!describes_command(&Value::Array(vec![Value::Nil])));
        assert!(!describes_command(&Value::Array(vec![])));
        assert!(!describes_command(&Value::Nil));
        let described = Value::Array(vec![Value::Array(vec![Value::BulkString(
            b"cluster|migrateslots".to_vec(),
        )])]);
        assert!(describes_command(&described));
    }
}
