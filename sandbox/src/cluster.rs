//! The emulated cluster around the API: node registry, workload controllers, scheduler,
//! kubelet and the Endpoints/EndpointSlice controller, run in one loop after every burst of changes (and on a short timer, for
//! process exits and probes).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::controllers::{Ctl, deployment, endpoints, replicaset, statefulset};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::workload_faults::WorkloadFaults;
use crate::{nodes, scheduler};

pub struct ClusterConfig {
    pub nodes: usize,
    pub root: PathBuf,
    /// Remove `root` when the cluster stops (it was a temporary directory).
    pub remove_root: bool,
    pub tokens: Arc<crate::auth::Tokens>,
    pub kubeconfig: String,
    pub api_url: String,
    pub faults: Arc<WorkloadFaults>,
}

const TICK: Duration = Duration::from_millis(200);
const SETTLE: Duration = Duration::from_millis(30);

/// Removes a temporary workload directory however the loop ends (stop, or the task
/// aborted when the handle is dropped). Declared before the kubelet, so it is dropped after
/// the kubelet has killed the processes.
struct RootGuard {
    root: PathBuf,
    remove: bool,
}

impl Drop for RootGuard {
    fn drop(&mut self) {
        if self.remove
            && let Err(e) = std::fs::remove_dir_all(&self.root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(root = %self.root.display(), error = %e, "cannot remove workload directory");
        }
    }
}

pub async fn run(ctl: Ctl, cfg: ClusterConfig, mut shutdown: watch::Receiver<bool>) {
    let _root = RootGuard {
        root: cfg.root.clone(),
        remove: cfg.remove_root,
    };
    ctl.store.set_graceful_pods(true);
    let node_ips: HashMap<String, Ipv4Addr> = (0..cfg.nodes)
        .map(|i| (nodes::node_name(i), ctl.addrs.node_ip(i)))
        .collect();
    let faults = cfg.faults.clone();
    let mut kubelet = Kubelet::new(
        ctl.clone(),
        KubeletConfig {
            root: cfg.root.clone(),
            nodes: node_ips,
            tokens: cfg.tokens.clone(),
            kubeconfig: cfg.kubeconfig.clone(),
            api_url: cfg.api_url.clone(),
            faults: faults.clone(),
        },
    );
    let mut changes = ctl.store.subscribe();
    loop {
        nodes::sync(&ctl, cfg.nodes, &faults.stopped_nodes());
        statefulset::reconcile(&ctl);
        deployment::reconcile(&ctl);
        replicaset::reconcile(&ctl);
        scheduler::schedule(&ctl);
        kubelet.tick().await;
        // After the kubelet, so pod addresses and readiness it just wrote are listed.
        endpoints::reconcile(&ctl);
        faults.record_pids(kubelet.pids());
        // Wake on the next change (a new Pod, a scale) or the timer (exits, probes,
        // grace periods), after a short pause that lets a burst of writes settle.
        tokio::select! {
            _ = tokio::time::sleep(SETTLE) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = changes.try_recv() {}
        tokio::select! {
            _ = changes.recv() => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    kubelet.shutdown().await;
    ctl.store.set_graceful_pods(false);
    tracing::info!("emulated cluster stopped");
}
