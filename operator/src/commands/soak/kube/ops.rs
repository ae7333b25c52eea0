//! The Kubernetes soak's operations: which one comes next (seeded) and how each is done, as
//! a user or the cluster's own trouble would do it; the driver ([`super::super::driver`])
//! measures what it cost.

use super::super::CmdError;
use super::super::cluster::NODE_TIMEOUT_MS;
use super::super::driver::{Later, Operations, Soak, Undo, probe_slots, source_of_a_move};
use super::super::ops::weighted;
use super::super::report::{Episode, Kind};
use super::cluster::{KubeCluster, PodNode};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The next operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Scale {
        masters: u32,
        replicas: u32,
        kill_operator: bool,
    },
    Rolling {
        kill_operator: bool,
    },
    /// A scale that moves slots, with the pod of a move's source deleted as soon as one is
    /// seen moving a slot.
    ScaleDeletingSource {
        masters: u32,
        replicas: u32,
    },
    Live,
    DeleteMasterPod,
    DeleteReplicaPod,
    KillNode,
    CutApi,
    KillOperator,
}

impl Operations for Soak<KubeCluster> {
    async fn next_episode(&mut self) -> Result<Episode, CmdError> {
        let op = self.choose();
        self.run(op).await
    }
}

impl Soak<KubeCluster> {
    /// Draws the next operation. A master pod is only deleted, and a node only killed, while
    /// masters have replicas (without, the keys are simply gone: the DataLost case, tested
    /// on its own); a rolling replacement only runs with replicas (without, it waits for a
    /// person).
    fn choose(&mut self) -> Op {
        let with_replicas = self.c.settings.replicas > 0;
        let weights: [(u64, bool); 8] = [
            (4, true),          // scale
            (2, with_replicas), // rolling
            (1, true),          // live
            (3, with_replicas), // delete a master pod
            (2, with_replicas), // delete a replica pod
            (2, with_replicas), // kill a node
            (2, true),          // cut the API off
            (1, true),          // kill the operator
        ];
        let pick = weighted(&mut self.rng, &weights);
        let kill_operator = self.rng.chance(500);
        match pick {
            0 => {
                let (masters, replicas) = self.c.settings.other_shape(&mut self.rng);
                if self
                    .c
                    .settings
                    .scale_loses_source(masters, replicas, &mut self.rng)
                {
                    return Op::ScaleDeletingSource { masters, replicas };
                }
                Op::Scale {
                    masters,
                    replicas,
                    kill_operator,
                }
            }
            1 => Op::Rolling { kill_operator },
            2 => Op::Live,
            3 => Op::DeleteMasterPod,
            4 => Op::DeleteReplicaPod,
            5 => Op::KillNode,
            6 => Op::CutApi,
            _ => Op::KillOperator,
        }
    }

    async fn run(&mut self, op: Op) -> Result<Episode, CmdError> {
        match op {
            Op::Scale {
                masters,
                replicas,
                kill_operator,
            } => {
                let from = (self.c.settings.masters, self.c.settings.replicas);
                let detail = format!("{}x{} -> {masters}x{replicas}", from.0, from.1);
                let start = Instant::now();
                self.c.settings.masters = masters;
                self.c.settings.replicas = replicas;
                self.c.apply().await?;
                self.change(start, Kind::Scale, detail, kill_operator, masters != from.0)
                    .await
            }
            Op::Rolling { kill_operator } => {
                let next = self.c.settings.next_listpack_entries();
                let start = Instant::now();
                self.c.settings.listpack_entries = next;
                self.c.apply().await?;
                let detail = format!("hash-max-listpack-entries {next}");
                self.change(start, Kind::RollingConfig, detail, kill_operator, false)
                    .await
            }
            Op::ScaleDeletingSource { masters, replicas } => {
                self.scale_deleting_source(masters, replicas).await
            }
            Op::Live => {
                let next = self.c.settings.next_max_memory_mb();
                let start = Instant::now();
                self.c.settings.max_memory_mb = next;
                self.c.apply().await?;
                let detail = format!("maxMemory {next}mb");
                self.change(start, Kind::LiveConfig, detail, false, false)
                    .await
            }
            Op::DeleteMasterPod | Op::DeleteReplicaPod => self.delete_pod(op).await,
            Op::KillNode => self.kill_node().await,
            Op::CutApi => self.cut_api().await,
            Op::KillOperator => {
                let masters = master_slots(&self.c.nodes().await?);
                self.kill_operator_idle(&masters).await
            }
        }
    }

    /// Deletes a master's pod (one that serves slots and has a replica) or a replica's, as
    /// `kubectl delete pod` does; its StatefulSet makes a new one.
    async fn delete_pod(&mut self, op: Op) -> Result<Episode, CmdError> {
        let nodes = self.c.nodes().await?;
        let candidates: Vec<&PodNode> = nodes
            .iter()
            .filter(|n| {
                if op == Op::DeleteMasterPod {
                    n.master && !n.slots.is_empty()
                } else {
                    !n.master
                }
            })
            .collect();
        let Some(&victim) = self.rng.pick(&candidates) else {
            return Err(format!("no pod to delete for {op:?}").into());
        };
        let victim = victim.clone();
        let probe = probe_slots(&master_slots(&nodes));
        let start = Instant::now();
        self.c.delete_pod(&victim.pod).await?;
        let (writable_ms, healthy_ms) = self.measure(start, &probe, Later::Nothing, None).await?;
        Ok(Episode {
            kind: if victim.master {
                Kind::DeleteMasterPod
            } else {
                Kind::DeleteReplicaPod
            },
            detail: format!(
                "pod {} ({} slots)",
                victim.pod,
                engine::slots::count(&victim.slots)
            ),
            start_ms: self.ms(start),
            fault_ms: None,
            writable_ms,
            healthy_ms,
            operator_killed: None,
            victim_slots: if victim.master {
                victim.slots
            } else {
                Vec::new()
            },
        })
    }

    /// A scale during which the pod of the first master seen moving a slot away (one with a
    /// synced replica) is deleted, as `kubectl delete pod` does: the migration loses its
    /// source and the replica takes over. Time to writable counts from the delete, time to
    /// healthy from the scale. A scale that shows no such move in time is a plain scale.
    async fn scale_deleting_source(
        &mut self,
        masters: u32,
        replicas: u32,
    ) -> Result<Episode, CmdError> {
        let from = (self.c.settings.masters, self.c.settings.replicas);
        let mut detail = format!("{}x{} -> {masters}x{replicas}", from.0, from.1);
        let start = Instant::now();
        self.c.settings.masters = masters;
        self.c.settings.replicas = replicas;
        self.c.apply().await?;
        let until = Instant::now() + Duration::from_secs(120);
        let mut seen = None;
        while seen.is_none() && Instant::now() < until {
            if let Ok(nodes) = self.c.nodes().await {
                seen = source_of_a_move(&nodes)
                    .cloned()
                    .map(|source| (source, nodes.clone()));
            }
            if seen.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let Some((victim, nodes)) = seen else {
            detail.push_str(", no move seen to fault");
            return self.change(start, Kind::Scale, detail, false, true).await;
        };
        let probe = probe_slots(&master_slots(&nodes));
        let fault = Instant::now();
        self.c.delete_pod(&victim.pod).await?;
        let measured = self.measure(fault, &probe, Later::Nothing, None).await?;
        detail.push_str(&format!(
            ", pod {} ({} slots)",
            victim.pod,
            engine::slots::count(&victim.slots)
        ));
        let when = (self.ms(start), self.ms(fault));
        Ok(Episode::change_with_fault(
            Kind::ScaleSourcePodDeleted,
            detail,
            when,
            measured,
            victim.slots,
        ))
    }

    /// Kills an emulated node hosting a master (a power loss: every process of its pods
    /// SIGKILLed) and starts it again once the node timeout has passed. Only a node whose
    /// masters each have a replica elsewhere: otherwise the shard is gone with it.
    async fn kill_node(&mut self) -> Result<Episode, CmdError> {
        let nodes = self.c.nodes().await?;
        let survivable = survivable_hosts(&nodes);
        let Some(&host) = self.rng.pick(&survivable) else {
            // Every master shares its node with its only replicas: a pod instead.
            return self.delete_pod(Op::DeleteMasterPod).await;
        };
        let host = host.to_string();
        let on_host: Vec<&PodNode> = nodes
            .iter()
            .filter(|n| n.host.as_deref() == Some(host.as_str()))
            .collect();
        let victim_slots: Vec<engine::SlotRange> = on_host
            .iter()
            .filter(|n| n.master)
            .flat_map(|n| n.slots.iter().copied())
            .collect();
        let detail = format!(
            "{host} ({} pods, {} masters, {} slots)",
            on_host.len(),
            on_host.iter().filter(|n| n.master).count(),
            engine::slots::count(&victim_slots)
        );
        let probe = probe_slots(&master_slots(&nodes));
        let start = Instant::now();
        let victims: Vec<String> = on_host.iter().filter_map(|n| n.addr.clone()).collect();
        self.c
            .fault(serde_json::json!({ "killNode": host }))
            .await?;
        // Timed from the fault, but writable only once its servers are really gone.
        self.c.wait_unreachable(&victims).await;
        let down = NODE_TIMEOUT_MS + self.rng.range(1_000, 5_000);
        let later = Later::Due {
            at: start + Duration::from_millis(down),
            undo: Undo::StartNode(host),
        };
        let (writable_ms, healthy_ms) = self.measure(start, &probe, later, None).await?;
        Ok(Episode {
            kind: Kind::KillNode,
            detail,
            start_ms: self.ms(start),
            fault_ms: None,
            writable_ms,
            healthy_ms,
            operator_killed: None,
            victim_slots,
        })
    }

    /// The API server answers 503 to everything for 2-6 s (watches end).
    async fn cut_api(&mut self) -> Result<Episode, CmdError> {
        let nodes = self.c.nodes().await?;
        let probe = probe_slots(&master_slots(&nodes));
        let ms = self.rng.range(2_000, 6_000);
        let start = Instant::now();
        self.c.fault(serde_json::json!({ "downForMs": ms })).await?;
        let (writable_ms, healthy_ms) = self.measure(start, &probe, Later::Nothing, None).await?;
        Ok(Episode {
            kind: Kind::CutApi,
            detail: format!("for {:.1} s", ms as f64 / 1000.0),
            start_ms: self.ms(start),
            fault_ms: None,
            writable_ms,
            healthy_ms,
            operator_killed: None,
            victim_slots: Vec::new(),
        })
    }
}

/// The Kubernetes nodes that host a master serving slots and whose every master has a
/// replica on another node: killing one loses no shard.
fn survivable_hosts(nodes: &[PodNode]) -> Vec<&str> {
    let hosts: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.master && !n.slots.is_empty())
        .filter_map(|n| n.host.as_deref())
        .collect();
    hosts
        .into_iter()
        .filter(|h| {
            nodes
                .iter()
                .filter(|m| m.master && m.host.as_deref() == Some(*h))
                .all(|m| {
                    nodes.iter().any(|r| {
                        r.master_id.as_deref() == Some(m.id.as_str())
                            && r.host.is_some()
                            && r.host.as_deref() != Some(*h)
                    })
                })
        })
        .collect()
}

/// The slot ranges of each master.
fn master_slots(nodes: &[PodNode]) -> Vec<Vec<engine::SlotRange>> {
    nodes
        .iter()
        .filter(|n| n.master)
        .map(|n| n.slots.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::SlotRange;

    fn node(id: &str, host: &str, master_of: Option<&str>, slots: &[(u16, u16)]) -> PodNode {
        PodNode {
            pod: format!("pod-{id}"),
            host: Some(host.into()),
            addr: None,
            id: id.into(),
            master: master_of.is_none(),
            master_id: master_of.map(str::to_owned),
            slots: slots.iter().map(|&(a, b)| SlotRange::new(a, b)).collect(),
            synced: master_of.is_some(),
            migrating: false,
        }
    }

    #[test]
    fn only_a_node_whose_every_master_has_a_replica_elsewhere_is_killed() {
        let nodes = [
            // node-0: master a (replica on node-1) and master b (replica on node-0 only).
            node("a", "node-0", None, &[(0, 100)]),
            node("b", "node-0", None, &[(101, 200)]),
            node("a1", "node-1", Some("a"), &[]),
            node("b1", "node-0", Some("b"), &[]),
            // node-2: master c, replicas on node-1 and node-2.
            node("c", "node-2", None, &[(201, 16383)]),
            node("c1", "node-1", Some("c"), &[]),
            node("c2", "node-2", Some("c"), &[]),
            // node-3: an empty master (no slots) and no replica: not a target, no reason to
            // spare it either.
            node("d", "node-3", None, &[]),
        ];
        assert_eq!(survivable_hosts(&nodes), ["node-2"]);
    }
}
