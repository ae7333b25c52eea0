//! `LocalBackend`: the members of one local cluster, found on disk and kept running.

use crate::config::LocalConfig;
use crate::error::{LocalError, Result};
use crate::process;
use engine::model::{Addr, Ordinal};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a starting node gets to answer PING. Loading a large dataset can take a while, so
/// this is generous; a node that dies early is reported at once anyway.
const START_LIMIT: Duration = Duration::from_secs(30);

/// What is known about one member without talking to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMember {
    pub addr: Addr,
    /// Its `redis.pid` names a live redis-server serving its directory.
    pub running: bool,
    /// The pid of the live process, `None` when not running.
    pub pid: Option<u32>,
    /// The configuration fingerprint it was last started with ([`LocalConfig::fingerprint`],
    /// kept in its directory); `None` for a member started before fingerprints were written.
    pub fingerprint: Option<String>,
}

/// The file beside a member's data that holds the fingerprint it was started with.
const FINGERPRINT_FILE: &str = "fingerprint";

/// The members of one local cluster. Cheap to clone; clones share the per-member locks that
/// keep two tasks from starting or stopping the same member at once.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    cfg: Arc<LocalConfig>,
    locks: Arc<Mutex<BTreeMap<Ordinal, Arc<tokio::sync::Mutex<()>>>>>,
    exits: Arc<tokio::sync::Notify>,
}

impl LocalBackend {
    /// A backend for `cfg`. Touches nothing: members are discovered from `cfg.dir` on demand,
    /// so nodes left running by an earlier operator process are adopted as they are.
    pub fn new(cfg: LocalConfig) -> Result<Self> {
        if !cfg.redis_server.is_file() {
            return Err(LocalError::RedisServerMissing(cfg.redis_server));
        }
        Ok(Self {
            cfg: Arc::new(cfg),
            locks: Arc::default(),
            exits: Arc::default(),
        })
    }

    /// Notified when a `redis-server` this process started exits, for whatever reason: the
    /// shell looks at the cluster at once instead of at its next poll (a node this process
    /// did not start, adopted from an earlier run, is found by polling only).
    pub fn exits(&self) -> Arc<tokio::sync::Notify> {
        self.exits.clone()
    }

    pub fn config(&self) -> &LocalConfig {
        &self.cfg
    }

    /// Every member with a `node-<k>/` directory, running or not.
    pub fn members(&self) -> Result<BTreeMap<Ordinal, LocalMember>> {
        let entries = match std::fs::read_dir(&self.cfg.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(LocalError::io(&self.cfg.dir)(e)),
        };
        let mut members = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(LocalError::io(&self.cfg.dir))?;
            let name = entry.file_name();
            let Some(ordinal) = name
                .to_str()
                .and_then(|n| n.strip_prefix("node-"))
                .and_then(|k| k.parse::<Ordinal>().ok())
            else {
                continue;
            };
            // The directory entry's own type (no `stat` on most file systems); a symlink is
            // followed, as `is_dir` would.
            let is_dir = match entry.file_type() {
                Ok(t) if t.is_symlink() => entry.path().is_dir(),
                Ok(t) => t.is_dir(),
                Err(_) => false,
            };
            if !is_dir {
                continue;
            }
            match self.cfg.addr(ordinal) {
                Ok(addr) => {
                    members.insert(ordinal, self.info(ordinal, addr));
                }
                Err(e) => tracing::warn!(cluster = %self.cfg.name, error = %e, "ignoring member"),
            }
        }
        Ok(members)
    }

    fn info(&self, ordinal: Ordinal, addr: Addr) -> LocalMember {
        let dir = self.cfg.node_dir(ordinal);
        let pid = process::read_pid(&dir.join("redis.pid"))
            .filter(|&pid| process::is_alive(pid, Some(&dir)));
        let fingerprint = std::fs::read_to_string(dir.join(FINGERPRINT_FILE))
            .ok()
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty());
        LocalMember {
            addr,
            running: pid.is_some(),
            pid,
            fingerprint,
        }
    }

    fn lock(&self, ordinal: Ordinal) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.locks.lock() {
            Ok(l) => l,
            // A panic elsewhere cannot leave the map inconsistent: entries are only inserted.
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.entry(ordinal).or_default().clone()
    }

    /// Make member `ordinal` run with the backend's own configuration (see
    /// [`LocalBackend::ensure_running_with`]).
    pub async fn ensure_running(&self, ordinal: Ordinal) -> Result<LocalMember> {
        let cfg = self.cfg.clone();
        self.ensure_running_with(ordinal, &cfg).await
    }

    /// Make member `ordinal` run: adopt it when it already does, otherwise (re)write its config
    /// from `settings` and start it — with its existing `nodes.conf`, so it keeps its node id —
    /// and wait until it answers PING. Only the settings are taken from `settings`; where the
    /// member lives (directory, address) is this backend's.
    pub async fn ensure_running_with(
        &self,
        ordinal: Ordinal,
        settings: &LocalConfig,
    ) -> Result<LocalMember> {
        let lock = self.lock(ordinal);
        let _guard = lock.lock().await;
        let info = self.info(ordinal, self.cfg.addr(ordinal)?);
        if info.running {
            return Ok(info);
        }
        self.start(ordinal, settings).await
    }

    /// Restart member `ordinal` with `settings`, keeping its directory: stopped gracefully
    /// (its keys saved when `settings` asks for persistence, so it loads them again), then
    /// started as [`LocalBackend::ensure_running_with`] does. A member that is not running is
    /// simply started.
    pub async fn replace(&self, ordinal: Ordinal, settings: &LocalConfig) -> Result<LocalMember> {
        let lock = self.lock(ordinal);
        let _guard = lock.lock().await;
        self.stop_one(ordinal, settings.appendonly).await?;
        tracing::info!(cluster = %self.cfg.name, ordinal, fingerprint = %settings.fingerprint(), "restarting member with a new configuration");
        self.start(ordinal, settings).await
    }

    /// Writes the member's config and fingerprint, starts it and waits for its PING. The
    /// caller holds the member's lock and has checked it is not running.
    async fn start(&self, ordinal: Ordinal, settings: &LocalConfig) -> Result<LocalMember> {
        let addr = self.cfg.addr(ordinal)?;
        let dir = self.cfg.node_dir(ordinal);
        std::fs::create_dir_all(&dir).map_err(LocalError::io(&dir))?;
        let dir = std::fs::canonicalize(&dir).map_err(LocalError::io(&dir))?;
        let conf = dir.join("redis.conf");
        let layout = LocalConfig {
            name: self.cfg.name.clone(),
            dir: self.cfg.dir.clone(),
            bind_ip: self.cfg.bind_ip.clone(),
            base_port: self.cfg.base_port,
            ..settings.clone()
        };
        std::fs::write(&conf, layout.render(ordinal, &dir)?).map_err(LocalError::io(&conf))?;
        // Written before the start: a process that runs always runs what the file says (a
        // crash between the two leaves a stopped member, started again with the file rewritten).
        let fingerprint = layout.fingerprint();
        let fp_file = dir.join(FINGERPRINT_FILE);
        std::fs::write(&fp_file, format!("{fingerprint}\n")).map_err(LocalError::io(&fp_file))?;
        // Checked up front because Redis' own message is buried in its log and, for the bus
        // port, only shows once the node is half up.
        for port in [u32::from(addr.port), addr.bus_port()] {
            check_port_free(ordinal, &addr.ip, port).await?;
        }

        let pid = process::spawn(&layout.redis_server, &dir, self.exits.clone())?;
        // Redis writes this file itself once started; writing it now closes the window in
        // which a crash of the operator would leave a node nobody can find.
        let pidfile = dir.join("redis.pid");
        std::fs::write(&pidfile, format!("{pid}\n")).map_err(LocalError::io(&pidfile))?;
        tracing::info!(cluster = %self.cfg.name, ordinal, pid, %addr, "started redis-server");

        let addr_s = addr.to_string();
        if let Err(reason) =
            process::wait_ready(&addr_s, layout.password.as_deref(), pid, START_LIMIT).await
        {
            // Never leave a half-started node behind to confuse the next attempt.
            if process::is_alive(pid, None) {
                let _ = process::signal(pid, "KILL").await;
            }
            let log = dir.join("redis.log");
            let tail = process::log_tail(&log, 15);
            if tail.contains("Address already in use") {
                return Err(LocalError::PortInUse {
                    ordinal,
                    addr: addr_s,
                });
            }
            return Err(LocalError::StartFailed {
                ordinal,
                addr: addr_s,
                reason,
                log,
                tail,
            });
        }
        Ok(LocalMember {
            addr,
            running: true,
            pid: Some(pid),
            fingerprint: Some(fingerprint),
        })
    }

    /// Stop member `ordinal` and keep its directory (`nodes.conf`, data, config): it can be
    /// started again as the same node, or its storage dropped with
    /// [`LocalBackend::delete_data`]. Its keys are saved first with persistence. Deleting a
    /// member that does not run succeeds.
    pub async fn delete(&self, ordinal: Ordinal) -> Result<()> {
        let lock = self.lock(ordinal);
        let _guard = lock.lock().await;
        self.stop_one(ordinal, self.cfg.appendonly).await?;
        tracing::info!(cluster = %self.cfg.name, ordinal, "deleted member (storage kept)");
        Ok(())
    }

    /// Remove member `ordinal`'s directory: its node id and data are gone for good. A member
    /// still running is stopped first, without saving. Removing what does not exist succeeds.
    pub async fn delete_data(&self, ordinal: Ordinal) -> Result<()> {
        let lock = self.lock(ordinal);
        let _guard = lock.lock().await;
        self.stop_one(ordinal, false).await?;
        let dir = self.cfg.node_dir(ordinal);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LocalError::io(dir)(e)),
            _ => {
                tracing::info!(cluster = %self.cfg.name, ordinal, "deleted member storage");
                Ok(())
            }
        }
    }

    async fn stop_one(&self, ordinal: Ordinal, save: bool) -> Result<()> {
        let addr = self.cfg.addr(ordinal)?;
        let dir = self.cfg.node_dir(ordinal);
        let Some(pid) = self.info(ordinal, addr.clone()).pid else {
            return Ok(());
        };
        process::stop(
            ordinal,
            pid,
            &dir,
            &addr.to_string(),
            self.cfg.password.as_deref(),
            save,
        )
        .await
    }

    async fn stop_every(&self, save: bool) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for ordinal in self.members()?.into_keys() {
            let me = self.clone();
            tasks.spawn(async move {
                let lock = me.lock(ordinal);
                let _guard = lock.lock().await;
                me.stop_one(ordinal, save).await
            });
        }
        let mut first_err = None;
        while let Some(res) = tasks.join_next().await {
            let res = res.unwrap_or_else(|e| {
                Err(LocalError::Io {
                    path: self.cfg.dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
            if let Err(e) = res {
                tracing::error!(cluster = %self.cfg.name, error = %e, "stopping a member failed");
                first_err.get_or_insert(e);
            }
        }
        // Whatever the pid files said, nothing of this cluster may keep running.
        process::stop_strays(&self.cfg.dir).await;
        first_err.map_or(Ok(()), Err)
    }

    /// Stop every member gracefully, saving its keys, and keep all state on disk so the next
    /// `ensure_running` brings back the same cluster with the same node ids.
    pub async fn stop_all(&self) -> Result<()> {
        self.stop_every(true).await
    }

    /// Stop every member and remove the whole state directory.
    pub async fn destroy(&self) -> Result<()> {
        self.stop_every(false).await?;
        match std::fs::remove_dir_all(&self.cfg.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(LocalError::io(&self.cfg.dir)(e))
            }
            _ => Ok(()),
        }
    }

    /// SIGKILL every running member, synchronously: for `Drop` guards and panics, where no
    /// runtime may be left to stop them gracefully. Errors are ignored on purpose.
    pub fn kill_all_now(&self) {
        for info in self.members().unwrap_or_default().into_values() {
            if let Some(pid) = info.pid {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// Errors when something listens on `ip:port`. The check is retried for a moment because the
/// kernel releases the sockets of a just-killed process shortly *after* it has become a zombie.
async fn check_port_free(ordinal: Ordinal, ip: &str, port: u32) -> Result<()> {
    const PATIENCE: Duration = Duration::from_secs(2);
    let Ok(port16) = u16::try_from(port) else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match std::net::TcpListener::bind((ip, port16)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(LocalError::PortInUse {
                        ordinal,
                        addr: format!("{ip}:{port}"),
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Any other failure (an address not on this host…) is left for redis-server to
            // report in its own words in the log.
            _ => return Ok(()),
        }
    }
}
