//! The local cluster under soak: its manifest, the `local up` it runs as a child process (so
//! that it can be SIGKILLed and started again like any user's), its nodes and their signals.

use super::super::local::{Judgement, NameArgs, ScaleArgs, judge, local_config, scale_to};
use super::super::local_state::load_saved;
use super::CmdError;
use super::driver::{Target, Undo};
use super::settings::Settings;
use engine::SlotRange;
use local::LocalBackend;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// At most 6 masters with 2 replicas each.
pub(super) const MAX_NODES: u16 = 18;

/// The node timeout of the soak's cluster: short, so failovers (and the soak) go fast.
pub(super) const NODE_TIMEOUT_MS: u64 = 2_000;

pub(super) const NAME: &str = "soak";

/// A node as the soak sees it.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub ordinal: u32,
    pub pid: u32,
    pub master: bool,
    /// Slots it serves, and those it is moving in or out.
    pub slots: Vec<SlotRange>,
    pub id: String,
    /// The master it replicates, for a replica.
    pub master_id: Option<String>,
    /// A replica whose link to its master is up (it has the master's data).
    pub synced: bool,
    /// It is sending a slot's keys to another master (`MIGRATING`).
    pub migrating: bool,
}

impl super::driver::MovingNode for Node {
    fn is_master(&self) -> bool {
        self.master
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn master_id(&self) -> Option<&str> {
        self.master_id.as_deref()
    }
    fn synced(&self) -> bool {
        self.synced
    }
    fn migrating(&self) -> bool {
        self.migrating
    }
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
            settings: Settings::initial(),
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
        let text = self.settings.manifest(NAME, None, self.base_port);
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
        let mut cmd = super::operator_command(&self.work, "info")?;
        cmd.args(["local", "up", "-f"])
            .arg(self.manifest())
            .arg("--dir")
            .arg(self.state())
            .args(["--listen", "off"]);
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
                id: me.id.clone(),
                master_id: me.master_id.clone(),
                synced: !me.is_master() && state.master_link_up,
                migrating: me
                    .open_slots
                    .iter()
                    .any(|o| matches!(o, engine::OpenSlot::Migrating { .. })),
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

impl Target for SoakCluster {
    async fn judge(&mut self) -> Result<Judgement, CmdError> {
        SoakCluster::judge(self).await
    }

    fn kill_operator(&mut self) {
        SoakCluster::kill_operator(self);
    }

    fn start_operator(&mut self) -> Result<(), CmdError> {
        SoakCluster::start_operator(self)
    }

    fn operator_exited(&mut self) -> Option<std::process::ExitStatus> {
        SoakCluster::operator_exited(self)
    }

    fn ready_mark(&self) -> usize {
        self.ready_lines()
    }

    /// A restarted `local up` has printed "is ready" once more than before it was killed.
    async fn operator_settled(&mut self, restarted_since: Option<usize>) -> bool {
        restarted_since.is_none_or(|n| self.ready_lines() > n)
    }

    async fn undo(&mut self, undo: &Undo) -> Result<(), CmdError> {
        match undo {
            Undo::Continue { pid, .. } => {
                signal(*pid, "CONT")?;
                self.stopped = None;
                Ok(())
            }
            Undo::StartOperator => SoakCluster::start_operator(self),
            Undo::StartNode(node) => Err(format!("a local soak has no node {node}").into()),
        }
    }
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
