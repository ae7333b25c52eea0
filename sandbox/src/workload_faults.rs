//! Faults for running workloads: kill a container (SIGKILL; the kubelet restarts it per
//! policy), stop a node (SIGSTOP its pods' processes, the Node goes NotReady after a short
//! grace), kill a node (SIGKILL them, as a power loss; the node stays down) and start it
//! again (SIGCONT for a stopped node, restarts per policy for a killed one; Ready). The
//! kubelet applies them on its next pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

#[derive(Default)]
struct State {
    stopped: HashMap<String, Instant>,
    kills: Vec<(String, String, Option<String>)>,
    /// Nodes whose processes are to be killed on the kubelet's next pass.
    node_kills: Vec<String>,
    pids: BTreeSet<u32>,
}

#[derive(Default)]
pub struct WorkloadFaults {
    state: Mutex<State>,
}

impl WorkloadFaults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// SIGKILLs the process of `container` (the first one when None) of a Pod.
    pub fn kill_container(&self, namespace: &str, pod: &str, container: Option<&str>) {
        self.lock()
            .kills
            .push((namespace.into(), pod.into(), container.map(str::to_string)));
    }

    pub fn stop_node(&self, node: &str) {
        self.lock()
            .stopped
            .entry(node.into())
            .or_insert_with(Instant::now);
    }

    /// Kills every process of the node's pods (SIGKILL) and keeps the node down, as a
    /// node that lost power: NotReady after the same grace as a stopped one, nothing run
    /// there until [`WorkloadFaults::start_node`], which reboots it.
    pub fn kill_node(&self, node: &str) {
        let mut state = self.lock();
        state
            .stopped
            .entry(node.into())
            .or_insert_with(Instant::now);
        state.node_kills.push(node.into());
    }

    /// Brings a stopped or killed node back.
    pub fn start_node(&self, node: &str) {
        self.lock().stopped.remove(node);
    }

    pub fn stopped_nodes(&self) -> HashMap<String, Instant> {
        self.lock().stopped.clone()
    }

    pub fn take_kills(&self) -> Vec<(String, String, Option<String>)> {
        std::mem::take(&mut self.lock().kills)
    }

    pub fn take_node_kills(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().node_kills)
    }

    pub fn record_pids(&self, pids: impl IntoIterator<Item = u32>) {
        self.lock().pids.extend(pids);
    }

    /// Every process id the kubelet has started in this sandbox.
    pub fn started_pids(&self) -> Vec<u32> {
        self.lock().pids.iter().copied().collect()
    }
}
