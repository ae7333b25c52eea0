//! The cluster under soak: its manifest, the `local up` it runs as a child process (so that
//! it can be SIGKILLed and started again like any user's), its nodes and their signals, and
//! the judgement of whether it is healthy.

use super::super::local::{Judgement, NameArgs, ScaleArgs, judge, local_config, scale_to};
use super::super::local_state::load_saved;
use super::CmdError;
use engine::{Phase, SlotRange};
use local::LocalBackend;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// At most 6 masters with 2 replicas each.
pub(super) const MAX_NODES: u16 = 18;

/// The node timeout of the soak's cluster: short, so failovers (and the soak) go fast.
pub(super) const NODE_TIMEOUT_MS: u64 = 2_000;

pub(super) const NAME: &str = "soak";

/// What the manifest says; the soak edits it and `local scale` overrides the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub masters: u32,
    pub replicas: u32,
    /// `maxMemory`, a setting Redis applies live.
    pub max_memory_mb: u32,
    /// `hash-max-listpack-entries`, a setting that needs a restart: a rolling replacement.
    pub listpack_entries: u32,
}

/// A node as the soak sees it.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub ordinal: u32,
    pub pid: u32,
    pub master: bool,
    /// Slots it serves, and those it is moving in or out.
    pub slots: Vec<SlotRange>,
}

pub(super) struct SoakCluster {
    pub work: PathBuf,
    pub base_port: u16,
    pub settings: Settings,
    server_binary: Option<PathBuf>,
    operator: Option<Child>,
    /// A node left SIGSTOPped (by an interrupted fault) is continued before teardown.
    pub stopped: Option<u32>,
}

impl SoakCluster {
    pub(super) fn new(work: &Path, base_port: u16, server_binary: Option<PathBuf>) -> Self {
        Self {
            work: work.to_path_buf(),
            base_port,
            settings: Settings {
                masters: 3,
                replicas: 1,
                max_memory_mb: 256,
                listpack_entries: 128,
            },
            server_binary,
            operator: None,
            stopped: None,
        }
    }

    pub(super) fn state(&self) -> PathBuf {
        self.work.join("state")
    }

    fn manifest(&self) -> PathBuf {
        self.work.join("cluster.yaml")
    }

    fn name_args(&self) -> NameArgs {
        NameArgs {
            name: NAME.into(),
            dir: Some(self.state()),
        }
    }

    /// Writes the manifest with [`Self::settings`] (counts included: an edited manifest
    /// wins over an earlier `local scale`).
    pub(super) fn write_manifest(&self) -> Result<(), CmdError> {
        let s = &self.settings;
        let text = format!(
            "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {NAME}\n\
             spec:\n  masters: {}\n  replicas: {}\n  basePort: {}\n  maxMemory: {}mb\n  \
             clusterNodeTimeoutMs: {NODE_TIMEOUT_MS}\n  redisConfig:\n    \
             hash-max-listpack-entries: \"{}\"\n",
            s.masters, s.replicas, self.base_port, s.max_memory_mb, s.listpack_entries
        );
        let path = self.manifest();
        // Written aside and renamed: the running `up` reads it every pass.
        let partial = self.work.join("cluster.yaml.partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()).into())
    }

    /// `local scale` to `masters` x `replicas`.
    pub(super) fn scale(&mut self, masters: u32, replicas: u32) -> Result<(), CmdError> {
        scale_to(&ScaleArgs {
            cluster: self.name_args(),
            masters: Some(masters),
            replicas: Some(replicas),
        })?;
        self.settings.masters = masters;
        self.settings.replicas = replicas;
        Ok(())
    }

    /// Starts `local up` (this very binary) in the background, its output appended to
    /// `operator.log`.
    pub(super) fn start_operator(&mut self) -> Result<(), CmdError> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let log_path = self.work.join("operator.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let mut cmd = Command::new(exe);
        cmd.args(["local", "up", "-f"])
            .arg(self.manifest())
            .arg("--dir")
            .arg(self.state())
            .args(["--listen", "off"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // Saved by the first `up`; every later one runs the same binary.
        if let Some(binary) = &self.server_binary {
            cmd.arg("--server-binary").arg(binary);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `local up`: {e}"))?;
        self.operator = Some(child);
        Ok(())
    }

    /// SIGKILL the running `local up` (its nodes keep running, in their own process groups).
    pub(super) fn kill_operator(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many times the operators so far printed that the cluster is ready (`local up`
    /// does once per start, at its first ready pass): one more means a restarted operator
    /// has looked at the cluster and found nothing to do.
    pub(super) fn ready_lines(&self) -> usize {
        std::fs::read_to_string(self.work.join("operator.log"))
            .map(|t| t.matches(&format!("cluster {NAME} is ready:")).count())
            .unwrap_or(0)
    }

    /// The operator exited on its own (it should never).
    pub(super) fn operator_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.operator
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub(super) async fn judge(&self) -> Result<Judgement, CmdError> {
        judge(&self.name_args(), Some(&self.manifest())).await
    }

    /// The running nodes, with their pids and what they serve.
    pub(super) async fn nodes(&self) -> Result<Vec<Node>, CmdError> {
        let j = self.judge().await?;
        let backend = self.backend()?;
        let members = backend.members()?;
        let mut out = Vec::new();
        for (ord, m) in &j.observation.members {
            let (Some(state), Some(pid)) = (
                m.redis.as_ref(),
                members.get(ord).and_then(|l| l.pid.filter(|_| l.running)),
            ) else {
                continue;
            };
            let Some(me) = state.myself() else { continue };
            let mut slots = me.slots.clone();
            slots.extend(me.open_slots.iter().map(|o| SlotRange::single(o.slot())));
            out.push(Node {
                ordinal: *ord,
                pid,
                master: me.is_master(),
                slots,
            });
        }
        Ok(out)
    }

    fn backend(&self) -> Result<LocalBackend, CmdError> {
        let (dir, cluster) = load_saved(&self.name_args())?;
        Ok(LocalBackend::new(local_config(&cluster, &dir)?)?)
    }

    /// Stops the operator and every node; deletes the state unless `keep`.
    pub(super) async fn teardown(&mut self, keep: bool) -> Result<(), CmdError> {
        if let Some(pid) = self.stopped.take() {
            let _ = signal(pid, "CONT");
        }
        self.kill_operator();
        let backend = self.backend()?;
        if keep {
            backend.stop_all().await?;
        } else {
            backend.destroy().await?;
        }
        Ok(())
    }
}

/// Healthy: the engine, looking at the cluster now with the spec in force, has nothing to do
/// (every member runs and answers, the shape and configuration are the wanted ones, every
/// view agrees, no slot is open), nothing is degraded, every node says `cluster_state:ok`
/// and every replica's link to its master is up (a restarted replica is not healthy until
/// its sync finished: until then its shard has no copy).
pub(super) fn healthy(j: &Judgement) -> bool {
    let nodes_ok = j.observation.members.values().all(|m| {
        m.redis.as_ref().is_some_and(|s| {
            s.cluster_ok && (s.myself().is_some_and(|me| me.is_master()) || s.master_link_up)
        })
    });
    nodes_ok && engine_has_nothing_to_do(j)
}

fn engine_has_nothing_to_do(j: &Judgement) -> bool {
    let d = &j.decision;
    d.phase == Phase::Ready
        && d.effects.is_empty()
        && d.is_true(engine::ConditionKind::Ready)
        && !d.is_true(engine::ConditionKind::Degraded)
        && j.observation.members.len() == (j.desired.masters * (1 + j.desired.replicas)) as usize
        && j.observation
            .members
            .values()
            .all(|m| m.running && m.redis.is_some())
}

/// Whether a change is in its risky part: a slot open somewhere (a migration), or some but
/// not all members on the configuration wanted (a rolling replacement).
pub(super) fn in_progress(j: &Judgement) -> (bool, bool) {
    let migrating = j.observation.members.values().any(|m| {
        m.redis
            .as_ref()
            .and_then(|s| s.myself())
            .is_some_and(|me| !me.open_slots.is_empty())
    });
    let wanted = j.desired.fingerprint.as_deref();
    let renewed = j
        .observation
        .members
        .values()
        .filter(|m| m.fingerprint.as_deref() == wanted)
        .count();
    let rolling = renewed > 0 && renewed < j.observation.members.len();
    (migrating, rolling)
}

/// `kill -SIG pid` (the `kill` command: this crate uses no unsafe code for libc).
pub(super) fn signal(pid: u32, sig: &str) -> Result<(), CmdError> {
    let out = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "kill -{sig} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into())
    }
}

/// `redis-cli --cluster check` on `port`: `Ok` when every slot is covered and it reports no
/// error or warning, else its output.
pub(super) fn cluster_check(port: u16, password: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new("redis-cli");
    if let Some(pw) = password {
        // Through the environment, never on the command line (`ps` shows arguments).
        cmd.env("REDISCLI_AUTH", pw);
    }
    let out = cmd
        .args(["--cluster", "check", &format!("127.0.0.1:{port}")])
        .output()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success()
        && text.contains("[OK] All 16384 slots covered")
        && !text.contains("[ERR]")
        && !text.contains("[WARNING]")
    {
        Ok(())
    } else {
        Err(text)
    }
}
