//! Emulated Node objects `node-0..N-1`: labels the scheduler matches on, an InternalIP of
//! their own, and a Ready condition that a stopped node (a fault) loses after a short grace.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::controllers::{Ctl, MANAGER};
use crate::object;

/// How long a stopped node keeps looking Ready, as a real node does until its heartbeats
/// are missed.
pub const NOT_READY_GRACE: Duration = Duration::from_millis(500);

pub fn node_name(index: usize) -> String {
    format!("node-{index}")
}

/// Makes sure every node exists and its Ready condition matches `stopped` (node name → when
/// it was stopped).
pub fn sync(ctl: &Ctl, count: usize, stopped: &HashMap<String, Instant>) {
    let Some(rt) = ctl.rt("", "nodes") else {
        return;
    };
    for i in 0..count {
        let name = node_name(i);
        let ip = ctl.addrs.node_ip(i).to_string();
        let ready = stopped
            .get(&name)
            .is_none_or(|since| since.elapsed() < NOT_READY_GRACE);
        let status = node_status(&ip, &name, ready);
        let existing = ctl.store.get(&rt, "", &name).ok();
        match existing {
            None => {
                let node = json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node.kubernetes.io/instance-type": "kube-sandbox",
                    }},
                    "spec": {},
                });
                if let Err(e) = ctl.store.create(&rt, "", node, MANAGER, false) {
                    tracing::warn!(node = %name, error = %e, "cannot register node");
                    continue;
                }
                ctl.write_status(&rt, "", &name, status);
            }
            Some(node) => {
                let was_ready = crate::controllers::condition_true(&node, "Ready");
                // A node reloaded from a state dir carries the last run's address.
                if was_ready != ready || node["status"]["addresses"] != status["addresses"] {
                    ctl.write_status(&rt, "", &name, status);
                }
            }
        }
    }
}

fn node_status(ip: &str, name: &str, ready: bool) -> Value {
    let now = object::now_rfc3339();
    let (status, reason, message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
    };
    let resources =
        json!({"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"});
    json!({
        "conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "addresses": [
            {"type": "InternalIP", "address": ip},
            {"type": "Hostname", "address": name},
        ],
        "capacity": resources,
        "allocatable": resources,
        "nodeInfo": {
            "kubeletVersion": "v1.33.0-sandbox", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
            "containerRuntimeVersion": "kube-sandbox://processes",
            "osImage": "kube-sandbox", "kernelVersion": "", "machineID": "", "systemUUID": "",
            "bootID": "",
        },
    })
}
