//! The emulated kubelet: runs each container of each Pod bound to an emulated node as a
//! local process on the Pod's own loopback address, materializes its volumes, runs
//! readiness probes, restarts per `restartPolicy`, performs graceful deletion (SIGTERM,
//! then SIGKILL after the grace period) and reports Pod status.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::controllers::Ctl;
use crate::object;
use crate::workload_faults::WorkloadFaults;

mod container;
mod env;
pub mod probes;
pub mod process;
pub mod status;
pub mod volumes;

use container::ContainerRun;
use status::ContainerView;

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("volume: {0}")]
    Volume(String),
    #[error("every pod address of this sandbox is taken")]
    NoAddress,
}

/// Where a container's output goes. With `previous`, the output of its last terminated
/// run: a restart moves the current file there (one generation, as a kubelet keeps), for
/// `kubectl logs --previous`.
pub fn log_path(pod_dir: &Path, container: &str, previous: bool) -> PathBuf {
    let suffix = if previous { ".previous.log" } else { ".log" };
    pod_dir.join(format!("{container}{suffix}"))
}

/// What the kubelet needs from the sandbox around it.
pub struct KubeletConfig {
    pub root: PathBuf,
    /// Node name → its address.
    pub nodes: HashMap<String, Ipv4Addr>,
    pub tokens: Arc<crate::auth::Tokens>,
    /// The kubeconfig (admin token) that pods of the operator image get, with their own
    /// service-account token put in its place.
    pub kubeconfig: String,
    pub api_url: String,
    pub faults: Arc<WorkloadFaults>,
}

struct PodRun {
    ns: String,
    name: String,
    node: String,
    ip: String,
    host_ip: String,
    owned_ip: Option<Ipv4Addr>,
    started: String,
    /// Init containers first (`init` of them), then the app containers.
    containers: Vec<ContainerRun>,
    init: usize,
    kill_at: Option<Instant>,
    frozen: bool,
}

pub struct Kubelet {
    ctl: Ctl,
    cfg: KubeletConfig,
    pods: HashMap<String, PodRun>,
    /// Pods whose setup failed (e.g. a missing configMap), warned about once; setup is
    /// retried on every pass until it works.
    setup_failed: HashSet<String>,
}

impl Kubelet {
    pub fn new(ctl: Ctl, cfg: KubeletConfig) -> Kubelet {
        Kubelet {
            ctl,
            cfg,
            pods: HashMap::new(),
            setup_failed: HashSet::new(),
        }
    }

    /// One pass: faults, starts, exits, restarts, probes, deletions and status.
    pub async fn tick(&mut self) {
        let stopped = self.cfg.faults.stopped_nodes();
        for (ns, pod, container) in self.cfg.faults.take_kills() {
            let run = self.pods.values().find(|r| r.ns == ns && r.name == pod);
            // Without a container name, the first app container (not an init one).
            let target = run.and_then(|r| {
                r.containers.iter().enumerate().find_map(|(i, c)| {
                    let wanted = match container.as_deref() {
                        Some(want) => c.name == want,
                        None => i >= r.init,
                    };
                    wanted.then_some(c)
                })
            });
            match target {
                Some(c) => c.signal("KILL"),
                None => tracing::warn!(%ns, %pod, "kill fault: no such running container"),
            }
        }
        // A killed node's processes die now; their exits are noticed (and the containers
        // restarted per restartPolicy) only once the node is started again, since the
        // kubelet skips the pods of a node that is down.
        for node in self.cfg.faults.take_node_kills() {
            tracing::info!(%node, "node killed");
            for run in self.pods.values().filter(|r| r.node == node) {
                run.containers.iter().for_each(|c| c.signal("KILL"));
            }
        }
        let pods = self.ctl.list("", "pods");
        let present: HashSet<&str> = pods.iter().map(object::uid).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !present.contains(u.as_str()))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(run) = self.pods.remove(&uid) {
                self.finish(run).await;
            }
        }
        for pod in &pods {
            let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
            if !self.cfg.nodes.contains_key(node) {
                continue;
            }
            let uid = object::uid(pod).to_string();
            let node_stopped = stopped.contains_key(node);
            if let Some(run) = self.pods.get_mut(&uid)
                && node_stopped != run.frozen
            {
                let signal = if node_stopped { "STOP" } else { "CONT" };
                run.containers.iter().for_each(|c| c.signal(signal));
                run.frozen = node_stopped;
            }
            if node_stopped {
                continue;
            }
            if !self.pods.contains_key(&uid) {
                let terminal = matches!(
                    pod["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                );
                if object::is_deleting(pod) {
                    self.remove_pod(pod);
                    continue;
                }
                if terminal {
                    continue;
                }
                match self.start_pod(pod) {
                    Ok(run) => {
                        self.setup_failed.remove(&uid);
                        self.pods.insert(uid.clone(), run);
                    }
                    Err(e) => {
                        if self.setup_failed.insert(uid.clone()) {
                            tracing::warn!(pod = object::name(pod), error = %e, "cannot set up pod; retrying");
                        }
                        continue;
                    }
                }
            }
            self.sync_pod(pod, &uid).await;
        }
    }

    fn start_pod(&self, pod: &Value) -> Result<PodRun, KubeletError> {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        let host_ip = self
            .cfg
            .nodes
            .get(&node)
            .copied()
            .unwrap_or(Ipv4Addr::LOCALHOST);
        let ns = object::namespace(pod);
        let sa = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        let token = self.cfg.tokens.issue(ns, sa);
        let dirs = volumes::materialize(&self.ctl, &token, &self.cfg.root, pod)?;
        let (ip, owned_ip) = if pod["spec"]["hostNetwork"] == true {
            (host_ip, None)
        } else {
            let ip = self
                .ctl
                .addrs
                .allocate_pod_ip()
                .ok_or(KubeletError::NoAddress)?;
            (ip, Some(ip))
        };
        let pod_dir = volumes::pod_dir(&self.cfg.root, pod);
        let kubeconfig = self.cfg.kubeconfig.replace(
            &format!("token: {}", crate::auth::ADMIN_TOKEN),
            &format!("token: {token}"),
        );
        let kubeconfig_path = pod_dir.join("kubeconfig");
        // A pod whose only volume is a claim (and no token mounted) has no directory yet.
        std::fs::create_dir_all(&pod_dir).map_err(|source| KubeletError::Io {
            path: pod_dir.display().to_string(),
            source,
        })?;
        std::fs::write(&kubeconfig_path, kubeconfig).map_err(|source| KubeletError::Io {
            path: kubeconfig_path.display().to_string(),
            source,
        })?;
        let mut with_ip = pod.clone();
        object::set_path(
            &mut with_ip,
            &["status", "podIP"],
            Value::String(ip.to_string()),
        );
        object::set_path(
            &mut with_ip,
            &["status", "hostIP"],
            Value::String(host_ip.to_string()),
        );
        let mut containers = Vec::new();
        let init_specs = pod["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let app_specs = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for spec in init_specs.iter().chain(&app_specs) {
            let mounts = volumes::mounts(pod, spec, &dirs);
            let ctx = env::Context {
                ctl: &self.ctl,
                pod: &with_ip,
                pod_dir: &pod_dir,
                mounts: &mounts,
                api_url: &self.cfg.api_url,
                kubeconfig: &kubeconfig_path,
            };
            let launch = env::launch(&ctx, spec);
            let name = spec["name"].as_str().unwrap_or("container");
            let logs = (
                log_path(&pod_dir, name, false),
                log_path(&pod_dir, name, true),
            );
            containers.push(ContainerRun::new(spec.clone(), launch, mounts, logs));
        }
        Ok(PodRun {
            ns: ns.to_string(),
            name: object::name(pod).to_string(),
            node,
            ip: ip.to_string(),
            host_ip: host_ip.to_string(),
            owned_ip,
            started: object::now_rfc3339(),
            containers,
            init: init_specs.len(),
            kill_at: None,
            frozen: false,
        })
    }

    async fn sync_pod(&mut self, pod: &Value, uid: &str) {
        let policy = pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();
        let deleting = object::is_deleting(pod);
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        // Init containers run again on failure unless the pod never restarts.
        let init_policy = if policy == "Never" {
            "Never"
        } else {
            "OnFailure"
        };
        for (i, c) in run.containers.iter_mut().enumerate() {
            c.poll_exit(if i < run.init { init_policy } else { &policy }, deleting);
        }
        if deleting {
            let grace = pod["metadata"]["deletionGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(0);
            if run.kill_at.is_none() {
                tracing::info!(pod = %run.name, grace, "stopping pod");
                run.containers.iter().for_each(|c| c.signal("TERM"));
                run.kill_at = Some(Instant::now() + Duration::from_secs(grace));
            }
            let all_exited = run.containers.iter().all(|c| !c.is_alive());
            if all_exited || run.kill_at.is_some_and(|at| Instant::now() >= at) {
                if let Some(run) = self.pods.remove(uid) {
                    self.finish(run).await;
                }
                self.remove_pod(pod);
            }
            return;
        }
        // Init containers one at a time, in order; the app containers once all succeeded.
        let pending_init = run.containers[..run.init].iter().position(|c| !c.done);
        match pending_init {
            Some(i) => run.containers[i].start_if_due(&run.name),
            None => {
                for c in &mut run.containers[run.init..] {
                    c.start_if_due(&run.name);
                }
            }
        }
        let init = run.init;
        for c in &mut run.containers[init..] {
            probes::check(c, &run.name, &run.ip).await;
        }
        let views: Vec<ContainerView<'_>> = run
            .containers
            .iter()
            .map(|c| ContainerView {
                name: &c.name,
                image: c.spec["image"].as_str().unwrap_or(""),
                pid: c.pid,
                state: &c.state,
                last: c.last.as_ref(),
                restarts: c.restarts,
                ready: c.ready,
                started: c.state.is_running() && c.startup_passed,
                done: c.done,
            })
            .collect();
        let (init_views, app_views) = views.split_at(run.init);
        let next = status::pod_status(
            &pod["status"],
            &run.ip,
            &run.host_ip,
            &run.started,
            init_views,
            app_views,
        );
        if next != pod["status"]
            && let Some(rt) = self.ctl.rt("", "pods")
        {
            self.ctl.write_status(&rt, &run.ns, &run.name, next);
        }
    }

    /// Kills what is left of a pod's processes and gives back its address.
    async fn finish(&self, mut run: PodRun) {
        for c in &mut run.containers {
            if c.is_alive() {
                if run.frozen {
                    c.signal("CONT");
                }
                c.signal("KILL");
                c.reap(Duration::from_secs(2)).await;
            }
        }
        if let Some(ip) = run.owned_ip {
            self.ctl.addrs.release_pod_ip(ip);
        }
    }

    fn remove_pod(&self, pod: &Value) {
        if let Some(rt) = self.ctl.rt("", "pods") {
            self.ctl
                .delete(&rt, object::namespace(pod), object::name(pod), Some(0));
        }
        // Pod-scoped volumes go with the pod; PVC directories live elsewhere and stay.
        let dir = volumes::pod_dir(&self.cfg.root, pod);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot remove pod directory");
        }
    }

    /// Stops every process this kubelet started.
    pub async fn shutdown(&mut self) {
        let runs: Vec<PodRun> = self.pods.drain().map(|(_, r)| r).collect();
        for run in runs {
            self.finish(run).await;
        }
    }

    /// Process ids of every running container, for tests that check nothing is left.
    pub fn pids(&self) -> Vec<u32> {
        self.pods
            .values()
            .flat_map(|r| {
                r.containers
                    .iter()
                    .filter(|c| c.is_alive())
                    .filter_map(|c| c.pid)
            })
            .collect()
    }
}
