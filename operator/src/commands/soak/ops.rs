//! The local soak's operations: which one comes next (seeded) and how each is done; the
//! driver ([`super::driver`]) measures what it cost.

use super::CmdError;
use super::cluster::{NODE_TIMEOUT_MS, Node, SoakCluster, signal};
use super::driver::{Later, Operations, Soak, Undo, probe_slots, source_of_a_move};
use super::report::{Episode, Kind};
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
    /// A scale that moves slots, with the source of a move SIGKILLed (or, `stop`, SIGSTOPped
    /// past the node timeout) as soon as one is seen moving a slot.
    ScaleLosingSource {
        masters: u32,
        replicas: u32,
        stop: bool,
    },
    Live,
    KillMaster,
    KillReplica,
    Stop,
    KillOperator,
}

impl Operations for Soak<SoakCluster> {
    async fn next_episode(&mut self) -> Result<Episode, CmdError> {
        let op = self.choose();
        self.run(op).await
    }
}

impl Soak<SoakCluster> {
    /// Draws the next operation. A master is only killed while it has a replica (without one
    /// its keys are simply gone: that is the DataLost case, tested on its own), and a rolling
    /// replacement only runs with replicas (without, the change waits for a person).
    pub(super) fn choose(&mut self) -> Op {
        let with_replicas = self.c.settings.replicas > 0;
        let weights: [(u64, bool); 7] = [
            (4, true),          // scale
            (2, with_replicas), // rolling
            (1, true),          // live
            (3, with_replicas), // kill master
            (2, with_replicas), // kill replica
            (2, true),          // stop
            (1, true),          // kill operator
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
                    return Op::ScaleLosingSource {
                        masters,
                        replicas,
                        stop: self.rng.chance(500),
                    };
                }
                Op::Scale {
                    masters,
                    replicas,
                    kill_operator,
                }
            }
            1 => Op::Rolling { kill_operator },
            2 => Op::Live,
            3 => Op::KillMaster,
            4 => Op::KillReplica,
            5 => Op::Stop,
            _ => Op::KillOperator,
        }
    }

    pub(super) async fn run(&mut self, op: Op) -> Result<Episode, CmdError> {
        match op {
            Op::Scale {
                masters,
                replicas,
                kill_operator,
            } => {
                let from = (self.c.settings.masters, self.c.settings.replicas);
                let detail = format!("{}x{} -> {masters}x{replicas}", from.0, from.1);
                let start = Instant::now();
                self.c.scale(masters, replicas)?;
                self.change(start, Kind::Scale, detail, kill_operator, masters != from.0)
                    .await
            }
            Op::Rolling { kill_operator } => {
                let next = self.c.settings.next_listpack_entries();
                let start = Instant::now();
                self.c.settings.listpack_entries = next;
                self.c.write_manifest()?;
                let detail = format!("hash-max-listpack-entries {next}");
                self.change(start, Kind::RollingConfig, detail, kill_operator, false)
                    .await
            }
            Op::ScaleLosingSource {
                masters,
                replicas,
                stop,
            } => self.scale_losing_source(masters, replicas, stop).await,
            Op::Live => {
                let next = self.c.settings.next_max_memory_mb();
                let start = Instant::now();
                self.c.settings.max_memory_mb = next;
                self.c.write_manifest()?;
                let detail = format!("maxMemory {next}mb");
                self.change(start, Kind::LiveConfig, detail, false, false)
                    .await
            }
            Op::KillMaster | Op::KillReplica | Op::Stop => self.node_fault(op).await,
            Op::KillOperator => {
                let masters = master_slots(&self.c.nodes().await?);
                self.kill_operator_idle(&masters).await
            }
        }
    }

    /// SIGKILL a master (one with a replica) or a replica, or SIGSTOP any node past the node
    /// timeout and SIGCONT it.
    async fn node_fault(&mut self, op: Op) -> Result<Episode, CmdError> {
        let nodes = self.c.nodes().await?;
        let candidates: Vec<&Node> = nodes
            .iter()
            .filter(|n| match op {
                Op::KillMaster => n.master && !n.slots.is_empty(),
                Op::KillReplica => !n.master,
                _ => true,
            })
            .collect();
        let Some(&victim) = self.rng.pick(&candidates) else {
            return Err(format!("no node to fault for {op:?}").into());
        };
        let victim = victim.clone();
        let probe = probe_slots(&master_slots(&nodes));
        let kind = match (op, victim.master) {
            (Op::KillMaster, _) => Kind::KillMaster,
            (Op::KillReplica, _) => Kind::KillReplica,
            (_, true) if self.c.settings.replicas == 0 => Kind::StopLoneMaster,
            (_, true) => Kind::StopMaster,
            (_, false) => Kind::StopReplica,
        };
        let start = Instant::now();
        let later = if op == Op::Stop {
            signal(victim.pid, "STOP")?;
            self.c.stopped = Some(victim.pid);
            let frozen = NODE_TIMEOUT_MS + self.rng.range(1_000, 3_000);
            Later::Due {
                at: start + Duration::from_millis(frozen),
                undo: Undo::Continue {
                    pid: victim.pid,
                    addr: format!("127.0.0.1:{}", self.c.base_port + victim.ordinal as u16),
                },
            }
        } else {
            signal(victim.pid, "KILL")?;
            Later::Nothing
        };
        let (writable_ms, healthy_ms) = self.measure(start, &probe, later, None).await?;
        Ok(Episode {
            kind,
            detail: format!(
                "node #{} ({} slots)",
                victim.ordinal,
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
}

impl Soak<SoakCluster> {
    /// A scale during which the first master seen moving a slot away, one with a synced
    /// replica, is SIGKILLed or frozen past the node timeout (and continued): the migration
    /// loses its source and the replica takes over. Time to writable counts from the fault,
    /// time to healthy from the scale; writes to the source's slots from just before the
    /// fault are Redis' asynchronous replication. A scale that shows no such move in time
    /// is reported as a plain scale.
    async fn scale_losing_source(
        &mut self,
        masters: u32,
        replicas: u32,
        stop: bool,
    ) -> Result<Episode, CmdError> {
        let from = (self.c.settings.masters, self.c.settings.replicas);
        let mut detail = format!("{}x{} -> {masters}x{replicas}", from.0, from.1);
        let start = Instant::now();
        self.c.scale(masters, replicas)?;
        let Some((victim, nodes)) = self.moving_source(Duration::from_secs(60)).await else {
            detail.push_str(", no move seen to fault");
            return self.change(start, Kind::Scale, detail, false, true).await;
        };
        let probe = probe_slots(&master_slots(&nodes));
        let fault = Instant::now();
        let (kind, later) = if stop {
            signal(victim.pid, "STOP")?;
            self.c.stopped = Some(victim.pid);
            let frozen = NODE_TIMEOUT_MS + self.rng.range(1_000, 3_000);
            let later = Later::Due {
                at: fault + Duration::from_millis(frozen),
                undo: Undo::Continue {
                    pid: victim.pid,
                    addr: format!("127.0.0.1:{}", self.c.base_port + victim.ordinal as u16),
                },
            };
            (Kind::ScaleSourceStopped, later)
        } else {
            signal(victim.pid, "KILL")?;
            (Kind::ScaleSourceKilled, Later::Nothing)
        };
        let measured = self.measure(fault, &probe, later, None).await?;
        detail.push_str(&format!(
            ", node #{} ({} slots)",
            victim.ordinal,
            engine::slots::count(&victim.slots)
        ));
        let when = (self.ms(start), self.ms(fault));
        Ok(Episode::change_with_fault(
            kind,
            detail,
            when,
            measured,
            victim.slots,
        ))
    }

    /// Waits (at most `limit`) for a master that is moving a slot away and has a synced
    /// replica; it and every node as seen then.
    async fn moving_source(&mut self, limit: Duration) -> Option<(Node, Vec<Node>)> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(nodes) = self.c.nodes().await
                && let Some(source) = source_of_a_move(&nodes).cloned()
            {
                return Some((source, nodes));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// The slot ranges of each master.
fn master_slots(nodes: &[Node]) -> Vec<Vec<engine::SlotRange>> {
    nodes
        .iter()
        .filter(|n| n.master)
        .map(|n| n.slots.clone())
        .collect()
}

/// The index of an allowed entry of `weights` (weight, allowed), drawn in proportion to its
/// weight; 0 when none is allowed.
pub(super) fn weighted(rng: &mut sim::rng::Rng, weights: &[(u64, bool)]) -> usize {
    let total: u64 = weights.iter().filter(|w| w.1).map(|w| w.0).sum();
    if total == 0 {
        return 0;
    }
    let mut draw = rng.below(total);
    for (i, (w, allowed)) in weights.iter().enumerate() {
        if !allowed {
            continue;
        }
        if draw < *w {
            return i;
        }
        draw -= w;
    }
    0
}
