//! One container's process: starting it, noticing its exit, restarting it per the Pod's
//! `restartPolicy` with a growing back-off, and killing its process group when dropped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Child;

use super::process::{Launch, NotRunnable, signal_group, spawn};
use super::status::State;
use crate::object;

pub struct ContainerRun {
    pub name: String,
    pub spec: Value,
    pub launch: Result<Launch, NotRunnable>,
    pub mounts: Vec<(String, PathBuf)>,
    pub log: PathBuf,
    /// Where the log of the previous run is kept once the container restarts.
    pub previous_log: PathBuf,
    child: Option<Child>,
    pub pid: Option<u32>,
    pub state: State,
    pub last: Option<State>,
    pub restarts: u32,
    pub ready: bool,
    pub done: bool,
    restart_at: Option<Instant>,
    pub next_probe: Instant,
    /// When the liveness probe is next due, and its failures in a row.
    pub next_liveness: Instant,
    pub liveness_failures: u64,
    /// Whether the startup probe has passed in this run (true without one); until it
    /// does, neither readiness nor liveness is probed.
    pub startup_passed: bool,
    pub next_startup: Instant,
    pub startup_failures: u64,
}

impl ContainerRun {
    pub fn new(
        spec: Value,
        launch: Result<Launch, NotRunnable>,
        mounts: Vec<(String, PathBuf)>,
        (log, previous_log): (PathBuf, PathBuf),
    ) -> ContainerRun {
        let state = match &launch {
            Ok(_) => State::waiting("ContainerCreating", ""),
            Err(e) => State::waiting(e.reason, e.message.clone()),
        };
        ContainerRun {
            name: spec["name"].as_str().unwrap_or("").to_string(),
            spec,
            launch,
            mounts,
            log,
            previous_log,
            child: None,
            pid: None,
            state,
            last: None,
            restarts: 0,
            ready: false,
            done: false,
            restart_at: Some(Instant::now()),
            next_probe: Instant::now(),
            next_liveness: Instant::now(),
            liveness_failures: 0,
            startup_passed: false,
            next_startup: Instant::now(),
            startup_failures: 0,
        }
    }

    /// Starts the process when it is due (first start or after back-off).
    pub fn start_if_due(&mut self, pod: &str) {
        let Ok(launch) = &self.launch else {
            return;
        };
        if self.child.is_some() || self.done || self.restart_at.is_none_or(|at| Instant::now() < at)
        {
            return;
        }
        self.restart_at = None;
        if self.restarts > 0
            && let Err(e) = std::fs::rename(&self.log, &self.previous_log)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(pod, container = %self.name, error = %e, "cannot keep the previous log");
        }
        match spawn(launch, &self.log) {
            Ok(child) => {
                self.pid = child.id();
                tracing::info!(pod, container = %self.name, pid = ?self.pid, program = %launch.program.display(), "container started");
                self.child = Some(child);
                self.state = State::Running {
                    started_at: object::now_rfc3339(),
                };
                let delay = self.spec["readinessProbe"]["initialDelaySeconds"]
                    .as_u64()
                    .unwrap_or(0);
                self.next_probe = Instant::now() + Duration::from_secs(delay);
                let delay = self.spec["livenessProbe"]["initialDelaySeconds"]
                    .as_u64()
                    .unwrap_or(0);
                self.next_liveness = Instant::now() + Duration::from_secs(delay);
                self.liveness_failures = 0;
                let startup = &self.spec["startupProbe"];
                let delay = startup["initialDelaySeconds"].as_u64().unwrap_or(0);
                self.next_startup = Instant::now() + Duration::from_secs(delay);
                self.startup_passed = !startup.is_object();
                self.startup_failures = 0;
            }
            Err(e) => {
                tracing::warn!(pod, container = %self.name, error = %e, "container cannot start");
                self.state = State::waiting("RunContainerError", e.to_string());
                self.restart_at = Some(Instant::now() + self.backoff());
            }
        }
    }

    fn backoff(&self) -> Duration {
        let steps = self.restarts.min(5);
        (Duration::from_millis(500) * 2u32.pow(steps)).min(Duration::from_secs(10))
    }

    /// Notices an exit; returns true when the container changed state. `policy` is the
    /// Pod's restartPolicy; `terminating` suppresses restarts.
    pub fn poll_exit(&mut self, policy: &str, terminating: bool) -> bool {
        let Some(child) = &mut self.child else {
            return false;
        };
        let exited = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(container = %self.name, error = %e, "cannot check container");
                return false;
            }
        };
        self.child = None;
        use std::os::unix::process::ExitStatusExt;
        let code = exited
            .code()
            .unwrap_or_else(|| 128 + exited.signal().unwrap_or(0));
        let started_at = match &self.state {
            State::Running { started_at } => started_at.clone(),
            _ => object::now_rfc3339(),
        };
        let terminated = State::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started_at,
            finished_at: object::now_rfc3339(),
        };
        tracing::info!(container = %self.name, code, "container exited");
        self.ready = false;
        let restart = !terminating && (policy == "Always" || (policy == "OnFailure" && code != 0));
        if restart {
            self.restarts += 1;
            self.last = Some(terminated);
            self.state = State::waiting(
                "CrashLoopBackOff",
                format!("back-off restarting container {}", self.name),
            );
            self.restart_at = Some(Instant::now() + self.backoff());
        } else {
            self.state = terminated;
            self.done = true;
        }
        true
    }

    pub fn is_alive(&self) -> bool {
        self.child.is_some()
    }

    pub fn signal(&self, signal: &str) {
        if let (Some(pid), true) = (self.pid, self.child.is_some()) {
            signal_group(pid, signal);
        }
    }

    /// Waits up to `limit` for the process to be reaped after a kill.
    pub async fn reap(&mut self, limit: Duration) {
        if let Some(child) = &mut self.child {
            let _ = tokio::time::timeout(limit, child.wait()).await;
        }
    }
}

impl Drop for ContainerRun {
    fn drop(&mut self) {
        // Whatever path drops the kubelet's state (stop, abort, panic), the process group
        // goes with it; kill_on_drop alone would miss the group's other members.
        if let Some(child) = &mut self.child
            && matches!(child.try_wait(), Ok(None))
            && let Some(pid) = self.pid
        {
            signal_group(pid, "KILL");
        }
    }
}
