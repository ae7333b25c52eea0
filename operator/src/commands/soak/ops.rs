//! The soak's operations: which one comes next (seeded), how each is done, and how long the
//! cluster takes to take writes again and to be healthy after it.

use super::CmdError;
use super::HEAL_LIMIT;
use super::client::{Endpoints, SlotTags, writable};
use super::cluster::{NODE_TIMEOUT_MS, Node, SoakCluster, healthy, in_progress, signal};
use super::report::{Episode, KilledDuring, Kind};
use engine::SlotRange;
use sim::rng::Rng;
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
    Live,
    KillMaster,
    KillReplica,
    Stop,
    KillOperator,
}

pub(super) struct Soak {
    pub c: SoakCluster,
    pub rng: Rng,
    pub endpoints: Endpoints,
    pub tags: SlotTags,
    /// Time zero of every `*_ms` in the report.
    pub epoch: Instant,
}

impl Soak {
    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

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
        let total: u64 = weights.iter().filter(|w| w.1).map(|w| w.0).sum();
        let mut draw = self.rng.below(total);
        let mut pick = 0;
        for (i, (w, allowed)) in weights.iter().enumerate() {
            if !allowed {
                continue;
            }
            if draw < *w {
                pick = i;
                break;
            }
            draw -= w;
        }
        let kill_operator = self.rng.chance(500);
        match pick {
            0 => {
                let now = (self.c.settings.masters, self.c.settings.replicas);
                let mut next = now;
                for _ in 0..20 {
                    next = (self.rng.range(3, 6) as u32, self.rng.range(0, 2) as u32);
                    if next != now {
                        break;
                    }
                }
                Op::Scale {
                    masters: next.0,
                    replicas: next.1,
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
                let moves_slots = masters != from.0;
                self.change(Kind::Scale, detail, kill_operator, moves_slots, |c| {
                    c.scale(masters, replicas)
                })
                .await
            }
            Op::Rolling { kill_operator } => {
                let next = if self.c.settings.listpack_entries == 128 {
                    256
                } else {
                    128
                };
                let detail = format!("hash-max-listpack-entries {next}");
                self.change(Kind::RollingConfig, detail, kill_operator, false, |c| {
                    c.settings.listpack_entries = next;
                    c.write_manifest()
                })
                .await
            }
            Op::Live => {
                let next = if self.c.settings.max_memory_mb == 256 {
                    200
                } else {
                    256
                };
                let detail = format!("maxMemory {next}mb");
                self.change(Kind::LiveConfig, detail, false, false, |c| {
                    c.settings.max_memory_mb = next;
                    c.write_manifest()
                })
                .await
            }
            Op::KillMaster | Op::KillReplica | Op::Stop => self.node_fault(op).await,
            Op::KillOperator => {
                let probe = self.probe_slots(&self.c.nodes().await?);
                let ready_lines = self.c.ready_lines();
                let start = Instant::now();
                self.c.kill_operator();
                let restart = start + Duration::from_millis(self.rng.range(200, 3_000));
                let (writable_ms, healthy_ms) = self
                    .measure(
                        start,
                        &probe,
                        Later::StartOperator(restart),
                        Some(ready_lines),
                    )
                    .await?;
                Ok(Episode {
                    kind: Kind::KillOperator,
                    detail: "restarted".into(),
                    start_ms: self.ms(start),
                    writable_ms,
                    healthy_ms,
                    operator_killed: None,
                    victim_slots: Vec::new(),
                })
            }
        }
    }

    /// An operator-initiated change: `apply` it, optionally SIGKILL the operator once it is
    /// in its risky part (and start it again), and wait until the cluster is healthy.
    async fn change(
        &mut self,
        kind: Kind,
        detail: String,
        kill_operator: bool,
        moves_slots: bool,
        apply: impl FnOnce(&mut SoakCluster) -> Result<(), CmdError>,
    ) -> Result<Episode, CmdError> {
        let start = Instant::now();
        apply(&mut self.c)?;
        let mut killed = None;
        let mut ready_lines = None;
        if kill_operator {
            let during = if moves_slots || kind == Kind::RollingConfig {
                self.wait_risky(kind).await?
            } else {
                // Replicas only: nothing risky to aim at; somewhere in the change.
                self.sleep_between(300, 3_000).await;
                KilledDuring::Otherwise
            };
            self.sleep_between(0, 300).await;
            ready_lines = Some(self.c.ready_lines());
            self.c.kill_operator();
            self.sleep_between(200, 3_000).await;
            self.c.start_operator()?;
            killed = Some(during);
        }
        let healthy_ms = self
            .wait_healthy(start, HEAL_LIMIT, ready_lines)
            .await?
            .map(|at| self.ms(at));
        Ok(Episode {
            kind,
            detail,
            start_ms: self.ms(start),
            writable_ms: None,
            healthy_ms,
            operator_killed: killed,
            victim_slots: Vec::new(),
        })
    }

    /// Waits (up to 30 s) until the change is in its risky part: an open slot for a
    /// migration, a half-renewed cluster for a rolling replacement.
    async fn wait_risky(&mut self, kind: Kind) -> Result<KilledDuring, CmdError> {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let j = self.c.judge().await?;
            let (migrating, rolling) = in_progress(&j);
            if migrating {
                return Ok(KilledDuring::Migration);
            }
            if rolling && kind == Kind::RollingConfig {
                return Ok(KilledDuring::Rolling);
            }
            if healthy(&j) {
                return Ok(KilledDuring::Otherwise);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(KilledDuring::Otherwise)
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
        let probe = self.probe_slots(&nodes);
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
            Later::Continue {
                pid: victim.pid,
                port: self.c.base_port + victim.ordinal as u16,
                at: start + Duration::from_millis(frozen),
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

    /// One slot of every range each master serves: writable when each takes a write.
    fn probe_slots(&self, nodes: &[Node]) -> Vec<u16> {
        let mut slots: Vec<u16> = nodes
            .iter()
            .filter(|n| n.master)
            .flat_map(|n| n.slots.iter().take(64).map(|r: &SlotRange| r.start))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// After a fault at `start`: when every probed slot took a write again, and when the
    /// cluster was healthy (and, after an operator restart, the new operator said it is
    /// ready), as ms since the epoch. `later` is done at its time meanwhile.
    async fn measure(
        &mut self,
        start: Instant,
        probe: &[u16],
        mut later: Later,
        ready_lines: Option<usize>,
    ) -> Result<(Option<u64>, Option<u64>), CmdError> {
        let limit = start + HEAL_LIMIT;
        let mut writable_at = None;
        while Instant::now() < limit {
            later = self.do_when_due(later)?;
            if writable_at.is_none() {
                let endpoints = match later {
                    Later::Continue { port, .. } => self.endpoints.without(port),
                    _ => self.endpoints.clone(),
                };
                let mut tags = std::mem::take(&mut self.tags);
                let slots = probe.to_vec();
                let (ok, tags) = tokio::task::spawn_blocking(move || {
                    let ok = writable(&endpoints, &slots, &mut tags);
                    (ok, tags)
                })
                .await
                .map_err(|e| format!("probe: {e}"))?;
                self.tags = tags;
                if ok {
                    writable_at = Some(Instant::now());
                }
            } else if later == Later::Nothing {
                // Not while a node is frozen: observing it only waits for timeouts.
                let j = self.c.judge().await?;
                if healthy(&j) && self.operator_ready(ready_lines) {
                    return Ok((
                        writable_at.map(|w| self.ms(w)),
                        Some(self.ms(Instant::now())),
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.do_when_due(later.now())?;
        Ok((writable_at.map(|w| self.ms(w)), None))
    }

    /// Does `later` if its time has come; what is left to do.
    fn do_when_due(&mut self, later: Later) -> Result<Later, CmdError> {
        match later {
            Later::Continue { pid, at, .. } if Instant::now() >= at => {
                signal(pid, "CONT")?;
                self.c.stopped = None;
                Ok(Later::Nothing)
            }
            Later::StartOperator(at) if Instant::now() >= at => {
                self.c.start_operator()?;
                Ok(Later::Nothing)
            }
            other => Ok(other),
        }
    }

    /// Waits until the cluster is healthy (and a restarted operator said it is ready), at
    /// most `limit` from `start`; the moment it was, or `None`.
    pub(super) async fn wait_healthy(
        &mut self,
        start: Instant,
        limit: Duration,
        ready_lines: Option<usize>,
    ) -> Result<Option<Instant>, CmdError> {
        while start.elapsed() < limit {
            if let Ok(j) = self.c.judge().await
                && healthy(&j)
                && self.operator_ready(ready_lines)
            {
                return Ok(Some(Instant::now()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(None)
    }

    /// A restarted operator has printed "is ready" once more than before it was killed.
    fn operator_ready(&self, before: Option<usize>) -> bool {
        before.is_none_or(|n| self.c.ready_lines() > n)
    }

    async fn sleep_between(&mut self, lo_ms: u64, hi_ms: u64) {
        let ms = self.rng.range(lo_ms, hi_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// What a fault still has to do at a given time while its effects are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Later {
    Nothing,
    /// SIGCONT a frozen node (listening on `port`).
    Continue {
        pid: u32,
        port: u16,
        at: Instant,
    },
    /// Start the operator again.
    StartOperator(Instant),
}

impl Later {
    /// The same, due at once.
    fn now(self) -> Self {
        let now = Instant::now();
        match self {
            Later::Continue { pid, port, .. } => Later::Continue { pid, port, at: now },
            Later::StartOperator(_) => Later::StartOperator(now),
            Later::Nothing => Later::Nothing,
        }
    }
}

/// One line for the log of the run.
pub(super) fn describe(e: &Episode) -> String {
    let secs = |at: Option<u64>| {
        at.map(|t| format!("{:.1} s", (t - e.start_ms) as f64 / 1000.0))
            .unwrap_or_else(|| "NEVER".into())
    };
    let mut line = format!("{:?} {}", e.kind, e.detail);
    if let Some(k) = e.operator_killed {
        line.push_str(&format!(", operator SIGKILLed ({k:?})"));
    }
    if e.writable_ms.is_some() || !e.kind.operator_initiated() {
        line.push_str(&format!(", writable after {}", secs(e.writable_ms)));
    }
    line.push_str(&format!(", healthy after {}", secs(e.healthy_ms)));
    line
}
