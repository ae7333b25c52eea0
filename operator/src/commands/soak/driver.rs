//! What every soak does around its operations, whatever runs the cluster (local processes or
//! pods): a change waited on (with the operator SIGKILLed in its risky part when asked), a
//! fault measured (time to writable, time to healthy, with what must be undone meanwhile),
//! and the loop of operations until the deadline. A [`Target`] says how to reach the
//! cluster and its operator.

use super::client::{Endpoints, SlotTags, Writer, writable};
use super::health::{healthy, in_progress};
use super::local::ChaosArgs;
use super::report::{Episode, KilledDuring, Kind};
use super::{CmdError, HEAL_LIMIT, LAST_START, say};
use crate::commands::local::Judgement;
use engine::SlotRange;
use sim::rng::Rng;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Past this, the time to writable is slow enough for the soak to say what held it up.
const SLOW_WRITABLE: Duration = Duration::from_secs(5);

/// The cluster under soak and its operator, as the shared driver needs them.
pub(super) trait Target {
    /// What the cluster looks like now and what the engine would decide (nothing executed).
    async fn judge(&mut self) -> Result<Judgement, CmdError>;
    /// SIGKILL the operator (its Redis nodes keep running).
    fn kill_operator(&mut self);
    fn start_operator(&mut self) -> Result<(), CmdError>;
    /// The operator exited on its own (it should never).
    fn operator_exited(&mut self) -> Option<ExitStatus>;
    /// A mark taken before the operator is killed; see [`Target::operator_settled`].
    fn ready_mark(&self) -> usize;
    /// Whatever the operator itself must show, beyond the cluster being healthy, for the
    /// soak to call an operation over; `restarted_since`: the operator was killed and
    /// started again after [`Target::ready_mark`] said this.
    async fn operator_settled(&mut self, restarted_since: Option<usize>) -> bool;
    /// Does what a fault left to be undone.
    async fn undo(&mut self, undo: &Undo) -> Result<(), CmdError>;
    /// Points `endpoints` at where the nodes are now (they do not move locally).
    async fn refresh(&mut self, _endpoints: &Endpoints) {}
}

/// The soak's state: the cluster, the seeded choices, the client's addresses.
pub(super) struct Soak<T> {
    pub c: T,
    pub rng: Rng,
    pub endpoints: Endpoints,
    pub tags: SlotTags,
    /// Time zero of every `*_ms` in the report.
    pub epoch: Instant,
}

/// What a fault still has to undo (at its time) while its effects are measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Undo {
    /// SIGCONT a frozen node (listening on `addr`).
    Continue { pid: u32, addr: String },
    /// Start the operator again.
    StartOperator,
    /// Start a killed Kubernetes node (emulated kubelet) again.
    StartNode(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Later {
    Nothing,
    Due { at: Instant, undo: Undo },
}

impl Later {
    /// The same, due at once.
    fn now(self) -> Self {
        match self {
            Later::Due { undo, .. } => Later::Due {
                at: Instant::now(),
                undo,
            },
            Later::Nothing => Later::Nothing,
        }
    }
}

impl<T: Target> Soak<T> {
    pub(super) fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// An operator-initiated change, applied at `start`: optionally SIGKILL the operator once
    /// it is in its risky part (and start it again), and wait until the cluster is healthy.
    pub(super) async fn change(
        &mut self,
        start: Instant,
        kind: Kind,
        detail: String,
        kill_operator: bool,
        moves_slots: bool,
    ) -> Result<Episode, CmdError> {
        let mut killed = None;
        let mut ready_mark = None;
        if kill_operator {
            let during = if moves_slots || kind == Kind::RollingConfig {
                self.wait_risky(kind).await?
            } else {
                // Replicas only: nothing risky to aim at; somewhere in the change.
                self.sleep_between(300, 3_000).await;
                KilledDuring::Otherwise
            };
            self.sleep_between(0, 300).await;
            ready_mark = Some(self.c.ready_mark());
            self.c.kill_operator();
            self.sleep_between(200, 3_000).await;
            self.c.start_operator()?;
            killed = Some(during);
        }
        let healthy_ms = self
            .wait_healthy(start, HEAL_LIMIT, ready_mark)
            .await?
            .map(|at| self.ms(at));
        Ok(Episode {
            kind,
            detail,
            start_ms: self.ms(start),
            fault_ms: None,
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
            if let Ok(j) = self.c.judge().await {
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
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(KilledDuring::Otherwise)
    }

    /// The operator SIGKILLed while idle and started again 0.2-3 s later.
    pub(super) async fn kill_operator_idle(
        &mut self,
        masters: &[Vec<SlotRange>],
    ) -> Result<Episode, CmdError> {
        let probe = probe_slots(masters);
        let ready_mark = self.c.ready_mark();
        let start = Instant::now();
        self.c.kill_operator();
        let at = start + Duration::from_millis(self.rng.range(200, 3_000));
        let later = Later::Due {
            at,
            undo: Undo::StartOperator,
        };
        let (writable_ms, healthy_ms) =
            self.measure(start, &probe, later, Some(ready_mark)).await?;
        Ok(Episode {
            kind: Kind::KillOperator,
            detail: "restarted".into(),
            start_ms: self.ms(start),
            fault_ms: None,
            writable_ms,
            healthy_ms,
            operator_killed: None,
            victim_slots: Vec::new(),
        })
    }

    /// After a fault at `start`: when every probed slot took a write again, and when the
    /// cluster was healthy (and, after an operator restart, the new operator settled), as ms
    /// since the epoch. `later` is done at its time meanwhile.
    pub(super) async fn measure(
        &mut self,
        start: Instant,
        probe: &[u16],
        mut later: Later,
        ready_mark: Option<usize>,
    ) -> Result<(Option<u64>, Option<u64>), CmdError> {
        let limit = start + HEAL_LIMIT;
        let mut writable_at = None;
        let mut last_failure: Option<String> = None;
        while Instant::now() < limit {
            later = self.do_when_due(later).await?;
            if writable_at.is_none() {
                let endpoints = match &later {
                    Later::Due {
                        undo: Undo::Continue { addr, .. },
                        ..
                    } => self.endpoints.without(addr),
                    _ => self.endpoints.clone(),
                };
                let mut tags = std::mem::take(&mut self.tags);
                let slots = probe.to_vec();
                let (outcome, tags) = tokio::task::spawn_blocking(move || {
                    let outcome = writable(&endpoints, &slots, &mut tags);
                    (outcome, tags)
                })
                .await
                .map_err(|e| format!("probe: {e}"))?;
                self.tags = tags;
                match outcome {
                    Ok(()) => {
                        writable_at = Some(Instant::now());
                        // A slow return to writable says what held it up, for the log.
                        if let Some(e) = last_failure.take()
                            && start.elapsed() > SLOW_WRITABLE
                        {
                            say(&format!(
                                "  writable again after {:.1} s; the probe's last failure: {e}",
                                start.elapsed().as_secs_f64()
                            ));
                        }
                    }
                    Err(e) => last_failure = Some(e),
                }
            } else if later == Later::Nothing {
                // Not while a node is frozen or down: observing it only waits for timeouts.
                if let Ok(j) = self.c.judge().await
                    && healthy(&j)
                    && self.c.operator_settled(ready_mark).await
                {
                    self.c.refresh(&self.endpoints).await;
                    return Ok((
                        writable_at.map(|w| self.ms(w)),
                        Some(self.ms(Instant::now())),
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.do_when_due(later.now()).await?;
        Ok((writable_at.map(|w| self.ms(w)), None))
    }

    /// Does `later` if its time has come; what is left to do.
    async fn do_when_due(&mut self, later: Later) -> Result<Later, CmdError> {
        match later {
            Later::Due { at, undo } if Instant::now() >= at => {
                self.c.undo(&undo).await?;
                Ok(Later::Nothing)
            }
            other => Ok(other),
        }
    }

    /// Waits until the cluster is healthy (and a restarted operator settled), at most
    /// `limit` from `start`; the moment it was, or `None`.
    pub(super) async fn wait_healthy(
        &mut self,
        start: Instant,
        limit: Duration,
        ready_mark: Option<usize>,
    ) -> Result<Option<Instant>, CmdError> {
        while start.elapsed() < limit {
            if let Ok(j) = self.c.judge().await
                && healthy(&j)
                && self.c.operator_settled(ready_mark).await
            {
                self.c.refresh(&self.endpoints).await;
                return Ok(Some(Instant::now()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(None)
    }

    pub(super) async fn sleep_between(&mut self, lo_ms: u64, hi_ms: u64) {
        let ms = self.rng.range(lo_ms, hi_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The next operation of a soak, drawn and run by the soak of each kind of cluster.
pub(super) trait Operations {
    async fn next_episode(&mut self) -> Result<Episode, CmdError>;
}

/// Operations, one after the other, until the deadline; stops at the first one the cluster
/// does not heal from. `acked` says how many writes the client has had acknowledged so far.
pub(super) async fn chaos<T: Target>(
    soak: &mut Soak<T>,
    acked: impl Fn() -> u64,
    deadline: Instant,
    episodes: &mut Vec<Episode>,
) -> Result<(), CmdError>
where
    Soak<T>: Operations,
{
    while Instant::now() + LAST_START < deadline {
        if let Some(status) = soak.c.operator_exited() {
            return Err(
                format!("the operator exited on its own ({status}); see operator.log").into(),
            );
        }
        let e = soak.next_episode().await?;
        say(&format!(
            "[{:>7.1} s] {} | acked writes so far: {}",
            e.start_ms as f64 / 1000.0,
            describe(&e),
            acked()
        ));
        let stuck = e.healthy_ms.is_none();
        episodes.push(e);
        if stuck {
            return Err("the cluster did not heal from the last operation".into());
        }
        let pause = soak.rng.range(500, 3_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Ok(())
}

/// What a soak's chaos leaves for its conclusion.
pub(super) struct Run {
    /// The verifying client, still writing: the conclusion stops it and reads back.
    pub writer: Writer,
    pub episodes: Vec<Episode>,
    /// How the operations ended: an error is a cluster that never healed or an operator that
    /// exited on its own.
    pub outcome: Result<(), CmdError>,
    /// The cluster was healthy after the last operation.
    pub settled: bool,
}

/// Starts the verifying client, runs operations for `args.minutes`, then waits for the
/// cluster to heal from the last one, whatever happened: the same for every kind of cluster.
pub(super) async fn run_chaos<T: Target>(
    soak: &mut Soak<T>,
    args: &ChaosArgs,
) -> Result<Run, CmdError>
where
    Soak<T>: Operations,
{
    let writer = Writer::start(
        soak.endpoints.clone(),
        soak.epoch,
        args.write_rate,
        soak.rng.next_u64(),
    );
    let deadline = soak.epoch + Duration::from_secs(args.minutes * 60);
    let mut episodes: Vec<Episode> = Vec::new();
    let outcome = chaos(soak, || writer.acked(), deadline, &mut episodes).await;
    let end = Instant::now();
    let settled = soak.wait_healthy(end, HEAL_LIMIT, None).await?;
    say(&format!(
        "end: {}",
        match settled {
            Some(_) => format!(
                "healthy {:.1} s after the last operation",
                end.elapsed().as_secs_f64()
            ),
            None => "NOT healthy".into(),
        }
    ));
    Ok(Run {
        writer,
        episodes,
        outcome,
        settled: settled.is_some(),
    })
}

/// What the soaks need to know of a node to pick the source of a move to fault.
pub(super) trait MovingNode {
    fn is_master(&self) -> bool;
    fn id(&self) -> &str;
    fn master_id(&self) -> Option<&str>;
    /// A replica whose link to its master is up.
    fn synced(&self) -> bool;
    /// A master sending a slot's keys to another (`MIGRATING`).
    fn migrating(&self) -> bool;
}

/// A master moving a slot away that has a synced replica (which will take its place).
pub(super) fn source_of_a_move<N: MovingNode>(nodes: &[N]) -> Option<&N> {
    nodes.iter().find(|n| {
        n.is_master()
            && n.migrating()
            && nodes
                .iter()
                .any(|r| r.synced() && r.master_id() == Some(n.id()))
    })
}

/// One slot of every range each master serves: writable when each takes a write.
pub(super) fn probe_slots(masters: &[Vec<SlotRange>]) -> Vec<u16> {
    let mut slots: Vec<u16> = masters
        .iter()
        .flat_map(|ranges| ranges.iter().take(64).map(|r: &SlotRange| r.start))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// One line for the log of the run.
pub(super) fn describe(e: &Episode) -> String {
    let secs = |at: Option<u64>, from: u64| {
        at.map(|t| format!("{:.1} s", t.saturating_sub(from) as f64 / 1000.0))
            .unwrap_or_else(|| "NEVER".into())
    };
    let mut line = format!("{:?} {}", e.kind, e.detail);
    if let Some(k) = e.operator_killed {
        line.push_str(&format!(", operator SIGKILLed ({k:?})"));
    }
    if e.writable_ms.is_some() || !e.kind.operator_initiated() {
        line.push_str(&format!(
            ", writable after {}",
            secs(e.writable_ms, e.fault_start_ms())
        ));
    }
    line.push_str(&format!(
        ", healthy after {}",
        secs(e.healthy_ms, e.start_ms)
    ));
    line
}
