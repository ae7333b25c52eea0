//! What a local cluster looks like on disk and how each `redis.conf` is generated.

use crate::error::{LocalError, Result};
use engine::model::{Addr, Ordinal};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How the nodes of one local cluster are laid out and configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// Cluster name, for logs.
    pub name: String,
    /// State directory, e.g. `.local-clusters/<name>`: one `node-<k>/` per member.
    pub dir: PathBuf,
    /// Address every node binds to and announces.
    pub bind_ip: String,
    /// Member `k` listens on `base_port + k`, its bus on that + 10000.
    pub base_port: u16,
    /// The server binary: a `redis-server` or `valkey-server`.
    pub redis_server: PathBuf,
    /// `maxmemory` (Redis syntax, e.g. `512mb`); Redis' default eviction policy (noeviction)
    /// is kept so a full node refuses writes instead of silently dropping keys.
    pub maxmemory: Option<String>,
    /// Sets both `requirepass` and `masterauth`, so replicas can sync from their master.
    pub password: Option<String>,
    pub node_timeout_ms: u64,
    pub appendonly: bool,
    /// Extra `redis.conf` directives, written last so they win.
    pub extra_config: BTreeMap<String, String>,
}

impl LocalConfig {
    /// Defaults for cluster `name` in `dir` on `base_port`, with `redis-server` looked up on
    /// PATH (the precise error says how to install it).
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>, base_port: u16) -> Result<Self> {
        Ok(Self::with_server(
            name,
            dir,
            base_port,
            find_redis_server()?,
        ))
    }

    /// The same defaults, running `server` (a `redis-server` or `valkey-server`).
    pub fn with_server(
        name: impl Into<String>,
        dir: impl Into<PathBuf>,
        base_port: u16,
        server: PathBuf,
    ) -> Self {
        // Nodes are recognised by their (absolute) working directory: keep `dir` absolute so a
        // relative path given here still matches them.
        let dir: PathBuf = dir.into();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Self {
            name: name.into(),
            dir,
            bind_ip: "127.0.0.1".to_owned(),
            base_port,
            redis_server: server,
            maxmemory: None,
            password: None,
            node_timeout_ms: 5000,
            appendonly: false,
            extra_config: BTreeMap::new(),
        }
    }

    /// Client port of member `ordinal`; errors when it or its bus port leaves the port range.
    pub fn port(&self, ordinal: Ordinal) -> Result<u16> {
        let port = u32::from(self.base_port) + ordinal;
        if port + 10000 > u32::from(u16::MAX) {
            return Err(LocalError::PortOutOfRange {
                ordinal,
                base_port: self.base_port,
            });
        }
        u16::try_from(port).map_err(|_| LocalError::PortOutOfRange {
            ordinal,
            base_port: self.base_port,
        })
    }

    pub fn addr(&self, ordinal: Ordinal) -> Result<Addr> {
        Ok(Addr::new(self.bind_ip.clone(), self.port(ordinal)?))
    }

    pub fn node_dir(&self, ordinal: Ordinal) -> PathBuf {
        self.dir.join(format!("node-{ordinal}"))
    }

    /// The `redis.conf` of member `ordinal`. Paths are absolute so the file means the same
    /// whatever directory the operator was started from.
    pub(crate) fn render(&self, ordinal: Ordinal, node_dir: &Path) -> Result<String> {
        let port = self.port(ordinal)?;
        let mut c = String::new();
        let mut line = |k: &str, v: &str| {
            let _ = writeln!(c, "{k} {v}");
        };
        line("port", &port.to_string());
        line("bind", &self.bind_ip);
        line("cluster-enabled", "yes");
        line("cluster-config-file", "nodes.conf");
        line("cluster-node-timeout", &self.node_timeout_ms.to_string());
        line("dir", &quote(&node_dir.display().to_string()));
        line(
            "pidfile",
            &quote(&node_dir.join("redis.pid").display().to_string()),
        );
        line(
            "logfile",
            &quote(&node_dir.join("redis.log").display().to_string()),
        );
        line("daemonize", "no");
        // A replica proves its stream flows by an offset above 0 (see the engine's
        // `has_synced_replica`); a new master's pings are what move it while nothing is
        // written, so they come every second rather than every ten.
        line("repl-ping-replica-period", "1");
        // Safe only because nodes listen on a local address the operator chose; protected
        // mode would otherwise refuse the other nodes' connections when no password is set.
        line("protected-mode", "no");
        if !self.appendonly {
            line("save", "\"\"");
        }
        line("appendonly", if self.appendonly { "yes" } else { "no" });
        if let Some(mm) = &self.maxmemory {
            line("maxmemory", mm);
        }
        if let Some(pw) = &self.password {
            line("requirepass", &quote(pw));
        }
        // Replicas authenticate as the replication user, which the engine creates only when
        // copying this node is safe (`engine::replication_gate`).
        line("masteruser", engine::replication_gate::USER);
        line(
            "masterauth",
            &quote(engine::replication_gate::masterauth(
                self.password.as_deref(),
            )),
        );
        for (k, v) in &self.extra_config {
            line(k, v);
        }
        Ok(c)
    }
}

impl LocalConfig {
    /// The fingerprint of what a node started now would run with and only a restart changes:
    /// the binary, and every setting except the ones Redis takes with `CONFIG SET`
    /// ([`engine::desired::LIVE_SETTINGS`], `maxmemory` among them), which the engine changes
    /// live. The layout (directory, ports) is not in it: it never changes for a member.
    pub fn fingerprint(&self) -> String {
        let mut text = String::new();
        let mut add = |k: &str, v: &str| {
            let _ = writeln!(text, "{k}={v}");
        };
        add("binary", &self.redis_server.display().to_string());
        add("bind", &self.bind_ip);
        add("cluster-node-timeout", &self.node_timeout_ms.to_string());
        add("appendonly", if self.appendonly { "yes" } else { "no" });
        add("password", self.password.as_deref().unwrap_or(""));
        for (k, v) in &self.extra_config {
            let name = k.trim().to_ascii_lowercase();
            if !engine::desired::LIVE_SETTINGS.contains(&name.as_str()) {
                add(&name, v.trim());
            }
        }
        format!("{:016x}", fnv1a(text.as_bytes()))
    }
}

/// FNV-1a, 64 bits: stable across Rust releases and runs (the fingerprint is stored on disk
/// and compared by later operator processes), which `std`'s hasher does not promise.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Redis config strings accept double quotes with backslash escapes.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}

/// The `redis-server` on PATH, or the error telling how to install it.
pub fn find_redis_server() -> Result<PathBuf> {
    find_on_path("redis-server", std::env::var_os("PATH").as_deref())
}

pub(crate) fn find_on_path(bin: &str, path: Option<&std::ffi::OsStr>) -> Result<PathBuf> {
    let path = path.ok_or(LocalError::RedisServerNotFound)?;
    std::env::split_paths(path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .ok_or(LocalError::RedisServerNotFound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg() -> LocalConfig {
        LocalConfig {
            name: "t".into(),
            dir: "/tmp/x".into(),
            bind_ip: "127.0.0.1".into(),
            base_port: 12000,
            redis_server: "/usr/bin/redis-server".into(),
            maxmemory: Some("64mb".into()),
            password: Some("s\"ecret".into()),
            node_timeout_ms: 3000,
            appendonly: false,
            extra_config: BTreeMap::from([("hz".to_owned(), "20".to_owned())]),
        }
    }

    #[test]
    fn a_missing_redis_server_names_the_install_command() {
        let e = find_on_path(
            "redis-server-definitely-absent",
            Some("/nonexistent".as_ref()),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "redis-server not found on PATH; install it with `apt-get install -y redis-server`"
        );
    }

    #[test]
    fn the_fingerprint_changes_with_restart_settings_but_not_with_live_ones() {
        let base = cfg();
        let mut live = cfg();
        live.maxmemory = Some("128mb".into());
        live.extra_config
            .insert("maxmemory-policy".into(), "allkeys-lru".into());
        assert_eq!(base.fingerprint(), live.fingerprint());
        let mut restart = cfg();
        restart.extra_config.insert("databases".into(), "4".into());
        assert_ne!(base.fingerprint(), restart.fingerprint());
        let mut persistent = cfg();
        persistent.appendonly = true;
        assert_ne!(base.fingerprint(), persistent.fingerprint());
        assert_eq!(base.fingerprint(), cfg().fingerprint());
    }

    #[test]
    fn replicas_authenticate_as_the_replication_user_with_or_without_a_password() {
        let mut c = cfg();
        c.password = None;
        let text = c.render(0, Path::new("/tmp/x/node-0")).unwrap();
        assert!(text.contains("masteruser rop-replication\nmasterauth \"no-password\"\n"));
        assert!(!text.contains("requirepass"));
    }

    #[test]
    fn ports_whose_bus_port_overflows_are_refused() {
        let mut c = cfg();
        c.base_port = 55535;
        assert_eq!(c.port(0).unwrap(), 55535);
        assert!(c.port(1).is_err());
    }

    #[test]
    fn the_generated_config_holds_every_setting_with_extras_last() {
        let text = cfg().render(2, Path::new("/tmp/x/node-2")).unwrap();
        assert!(text.starts_with("port 12002\nbind 127.0.0.1\ncluster-enabled yes\n"));
        assert!(text.contains("cluster-node-timeout 3000\n"));
        assert!(text.contains("save \"\"\nappendonly no\n"));
        assert!(text.contains("maxmemory 64mb\n"));
        assert!(text.contains(
            "requirepass \"s\\\"ecret\"\nmasteruser rop-replication\nmasterauth \"s\\\"ecret\"\n"
        ));
        assert!(text.ends_with("hz 20\n"));
    }
}
