//! What the soak did and what it cost, kept as plain data: the operations run, whom a lost
//! write is blamed on, the percentiles, and the table printed at the end. No I/O here, so the
//! accounting is unit-tested.

use engine::SlotRange;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A write acknowledged this long before a master was killed or frozen may not have reached
/// its replica yet: Redis replicates asynchronously, and on this machine a replica is at most
/// milliseconds behind, so a second is generous.
pub(super) const ASYNC_WINDOW_MS: u64 = 1_000;

/// One kind of operation the soak runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Scale,
    RollingConfig,
    LiveConfig,
    KillMaster,
    KillReplica,
    StopMaster,
    /// A master with no replica: nothing fails over, its slots wait for it.
    StopLoneMaster,
    StopReplica,
    /// Kubernetes: `kubectl delete pod` of a master (with a replica) or of a replica.
    DeleteMasterPod,
    DeleteReplicaPod,
    /// Kubernetes: an emulated node hosting a master loses power, then starts again.
    KillNode,
    /// Kubernetes: the API server answers 503 to everything for a few seconds.
    CutApi,
    KillOperator,
    /// A scale whose migration lost its source: the master sending a slot SIGKILLed in the
    /// middle of the move (its replica takes over).
    ScaleSourceKilled,
    /// The same with the source SIGSTOPped past the node timeout: replaced while frozen, it
    /// wakes up still believing it is a master moving a slot.
    ScaleSourceStopped,
    /// Kubernetes: a scale whose migration lost its source, its pod deleted mid-move.
    ScaleSourcePodDeleted,
}

impl Kind {
    /// Operations the operator makes (the user asks, the operator changes the cluster): any
    /// acknowledged write lost in one is the operator's fault.
    pub(super) fn operator_initiated(self) -> bool {
        matches!(self, Kind::Scale | Kind::RollingConfig | Kind::LiveConfig)
    }

    /// Faults that take away a master with writes its replica may not have yet.
    fn loses_a_master(self) -> bool {
        matches!(
            self,
            Kind::KillMaster
                | Kind::StopMaster
                | Kind::DeleteMasterPod
                | Kind::KillNode
                | Kind::ScaleSourceKilled
                | Kind::ScaleSourceStopped
                | Kind::ScaleSourcePodDeleted
        )
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Scale => "scale (masters 3-6, replicas 0-2)",
            Kind::RollingConfig => "config change, rolling replacement",
            Kind::LiveConfig => "config change, live (CONFIG SET)",
            Kind::KillMaster => "SIGKILL a master",
            Kind::KillReplica => "SIGKILL a replica",
            Kind::StopMaster => "SIGSTOP a master past the node timeout",
            Kind::StopLoneMaster => "SIGSTOP a master without replica past the node timeout",
            Kind::StopReplica => "SIGSTOP a replica past the node timeout",
            Kind::DeleteMasterPod => "delete a master's pod",
            Kind::DeleteReplicaPod => "delete a replica's pod",
            Kind::KillNode => "kill a node hosting a master (power loss), start it again",
            Kind::CutApi => "API server cut off (503) for 2-6 s",
            Kind::KillOperator => "SIGKILL the operator (idle), restart",
            Kind::ScaleSourceKilled => "scale, the source of a move SIGKILLed mid-move",
            Kind::ScaleSourceStopped => {
                "scale, the source of a move SIGSTOPped past the node timeout mid-move"
            }
            Kind::ScaleSourcePodDeleted => "scale, the pod of a move's source deleted mid-move",
        }
    }
}

/// Where a SIGKILL of the operator during a change landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum KilledDuring {
    /// Some node showed an open slot (`MIGRATING`/`IMPORTING`).
    Migration,
    /// Some but not all nodes ran the new configuration.
    Rolling,
    /// Neither was seen in time: the change had not started its risky part, or had finished.
    Otherwise,
}

/// One operation, from its start until the cluster was healthy again.
#[derive(Debug, Clone)]
pub(super) struct Episode {
    pub kind: Kind,
    /// What exactly, for the log: `3x1 -> 5x2`, `node #4 (5461 slots)`.
    pub detail: String,
    /// Milliseconds since the soak started.
    pub start_ms: u64,
    /// A fault struck after the start, in the middle of the change (the source of a move
    /// killed): the lost master's window and the time to writable count from here.
    pub fault_ms: Option<u64>,
    /// When every slot took writes again (faults only).
    pub writable_ms: Option<u64>,
    /// When the cluster was healthy again; `None`: it never was within the time allowed.
    pub healthy_ms: Option<u64>,
    /// The operator was SIGKILLed (and restarted) during this change.
    pub operator_killed: Option<KilledDuring>,
    /// A master fault: the slots the lost master served (or was moving) when it went.
    pub victim_slots: Vec<SlotRange>,
}

impl Episode {
    /// A change (from `start_ms`) during which a master was lost at `fault_ms`, with
    /// `victim_slots`; `measured`: when it was writable and healthy again.
    pub(super) fn change_with_fault(
        kind: Kind,
        detail: String,
        (start_ms, fault_ms): (u64, u64),
        (writable_ms, healthy_ms): (Option<u64>, Option<u64>),
        victim_slots: Vec<SlotRange>,
    ) -> Self {
        Self {
            kind,
            detail,
            start_ms,
            fault_ms: Some(fault_ms),
            writable_ms,
            healthy_ms,
            operator_killed: None,
            victim_slots,
        }
    }

    /// When the fault (if any) struck: the start, unless it came in the middle of a change.
    pub(super) fn fault_start_ms(&self) -> u64 {
        self.fault_ms.unwrap_or(self.start_ms)
    }

    /// The end of the window that writes acknowledged meanwhile belong to.
    fn end_ms(&self) -> u64 {
        self.healthy_ms.unwrap_or(u64::MAX)
    }

    fn row(&self) -> (Kind, bool) {
        (self.kind, self.operator_killed.is_some())
    }
}

/// An acknowledged write that did not read back (or a read-back during the run that did not
/// return the acknowledged value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Miss {
    pub key: u64,
    pub acked_ms: u64,
    pub slot: u16,
    /// When a read-back during the run answered wrongly (`None`: the check at the end).
    pub read_ms: Option<u64>,
}

impl Miss {
    /// When the miss was seen to happen: the wrong read, else the write.
    fn seen_ms(&self) -> u64 {
        self.read_ms.unwrap_or(self.acked_ms)
    }
}

/// Whom a miss is blamed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Blame {
    /// Written to a master within [`ASYNC_WINDOW_MS`] before it was killed, frozen or
    /// deleted (alone or with its node), or while it was going away: Redis' asynchronous
    /// replication (episode index).
    KilledMaster(usize),
    /// Anything else: written during this episode (index), or between episodes (`None`).
    Operator(Option<usize>),
}

/// Blames each miss on the fault window it was written in (see [`Blame`]).
pub(super) fn attribute(misses: &[Miss], episodes: &[Episode]) -> Vec<Blame> {
    misses
        .iter()
        .map(|m| {
            let lost_master = episodes.iter().position(|e| {
                e.kind.loses_a_master()
                    && e.fault_start_ms().saturating_sub(ASYNC_WINDOW_MS) <= m.acked_ms
                    && m.acked_ms <= e.end_ms()
                    && e.victim_slots
                        .iter()
                        .any(|r| r.start <= m.slot && m.slot <= r.end)
            });
            match lost_master {
                Some(i) => Blame::KilledMaster(i),
                // The operation running when it was seen: a wrong read belongs to the
                // operation during which it was read, not to the one its key was written in.
                None => Blame::Operator(
                    episodes
                        .iter()
                        .position(|e| e.start_ms <= m.seen_ms() && m.seen_ms() <= e.end_ms()),
                ),
            }
        })
        .collect()
}

/// The nearest-rank percentile `p` (0-100) of `values`; `None` when there are none.
pub(super) fn percentile(values: &[u64], p: u32) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let rank = (u64::from(p) * n as u64).div_ceil(100).max(1) as usize;
    v.get(rank.min(n) - 1).copied()
}

/// Everything the final table is made of.
#[derive(Debug, Clone, Default)]
pub(super) struct Totals {
    pub acked_writes: u64,
    pub write_attempts: u64,
    pub read_checks: u64,
    /// Acknowledged writes that did not read back at the end.
    pub lost: Vec<Miss>,
    /// Read-backs during the run that did not return the acknowledged value.
    pub wrong_reads: Vec<Miss>,
    /// `redis-cli --cluster check` at the end: `Ok` when clean, else its output.
    pub check: Option<Result<(), String>>,
}

/// The verdict: what failed, one reason per line; empty when the soak passed.
pub(super) fn failures(episodes: &[Episode], totals: &Totals) -> Vec<String> {
    let mut out = Vec::new();
    let blamed = |misses: &[Miss]| {
        attribute(misses, episodes)
            .into_iter()
            .filter(|b| matches!(b, Blame::Operator(_)))
            .count()
    };
    let lost = blamed(&totals.lost);
    if lost > 0 {
        out.push(format!(
            "{lost} acknowledged writes lost outside the window of a killed master"
        ));
    }
    let wrong = blamed(&totals.wrong_reads);
    if wrong > 0 {
        out.push(format!(
            "{wrong} read-backs returned something else than the acknowledged write, outside \
             the window of a killed master"
        ));
    }
    for e in episodes.iter().filter(|e| e.healthy_ms.is_none()) {
        out.push(format!(
            "the cluster did not become healthy after {} ({})",
            e.kind.label(),
            e.detail
        ));
    }
    match &totals.check {
        Some(Ok(())) => {}
        Some(Err(text)) => out.push(format!(
            "redis-cli --cluster check is not clean: {}",
            text.lines()
                .filter(|l| l.contains("[ERR]") || l.contains("[WARNING]"))
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        )),
        None => out.push("redis-cli --cluster check did not run".into()),
    }
    out
}

fn secs(ms: Option<u64>) -> String {
    ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn spread(values: &[u64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    format!(
        "{} / {} / {}",
        secs(percentile(values, 50)),
        secs(percentile(values, 99)),
        secs(values.iter().max().copied())
    )
}

/// The summary and the table (Markdown, so it can go into `docs/reliability.md` as printed).
pub(super) fn render(episodes: &[Episode], totals: &Totals, acked_at: &[u64]) -> String {
    let mut out = String::new();
    let kills_during: BTreeMap<KilledDuring, usize> = episodes
        .iter()
        .filter_map(|e| e.operator_killed)
        .fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k).or_default() += 1;
            m
        });
    let lost_blame = attribute(&totals.lost, episodes);
    let lost_master = lost_blame
        .iter()
        .filter(|b| matches!(b, Blame::KilledMaster(_)))
        .count();
    let lost_operator = lost_blame.len() - lost_master;
    let wrong_blame = attribute(&totals.wrong_reads, episodes);
    let wrong_master = wrong_blame
        .iter()
        .filter(|b| matches!(b, Blame::KilledMaster(_)))
        .count();
    let _ = writeln!(
        out,
        "operations: {} ({} with the operator SIGKILLed during the change: {} mid-migration, \
         {} mid-rolling-replacement, {} elsewhere)",
        episodes.len(),
        kills_during.values().sum::<usize>(),
        kills_during.get(&KilledDuring::Migration).unwrap_or(&0),
        kills_during.get(&KilledDuring::Rolling).unwrap_or(&0),
        kills_during.get(&KilledDuring::Otherwise).unwrap_or(&0),
    );
    let _ = writeln!(
        out,
        "acknowledged writes: {} of {} attempted; read back during the run: {} ({} wrong: {} \
         in a killed master's window, {} elsewhere)",
        totals.acked_writes,
        totals.write_attempts,
        totals.read_checks,
        totals.wrong_reads.len(),
        wrong_master,
        totals.wrong_reads.len() - wrong_master
    );
    let _ = writeln!(
        out,
        "acknowledged writes lost: {lost_operator} outside a killed master's window (operator-initiated \
         changes and everything else); {lost_master} with killed or frozen masters (asynchronous \
         replication: acknowledged by the master within {} ms before it went, or while it \
         was going, in its slots)",
        ASYNC_WINDOW_MS
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| operation | count | acked writes meanwhile | lost | time to writable p50 / p99 / max | time to healthy p50 / p99 / max |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let mut rows: BTreeMap<(Kind, bool), Vec<usize>> = BTreeMap::new();
    for (i, e) in episodes.iter().enumerate() {
        rows.entry(e.row()).or_default().push(i);
    }
    for ((kind, killed), members) in rows {
        let label = if killed {
            format!("{}, operator SIGKILLed during it", kind.label())
        } else {
            kind.label().to_string()
        };
        let writable: Vec<u64> = members
            .iter()
            .filter_map(|&i| {
                let e = &episodes[i];
                e.writable_ms.map(|w| w.saturating_sub(e.fault_start_ms()))
            })
            .collect();
        let healthy: Vec<u64> = members
            .iter()
            .filter_map(|&i| episodes[i].healthy_ms.map(|h| h - episodes[i].start_ms))
            .collect();
        let acked: usize = members
            .iter()
            .map(|&i| {
                let e = &episodes[i];
                let from = acked_at.partition_point(|&t| t < e.start_ms);
                let to = acked_at.partition_point(|&t| t <= e.end_ms());
                to - from
            })
            .sum();
        let lost = lost_blame
            .iter()
            .filter(|b| match b {
                Blame::KilledMaster(i) | Blame::Operator(Some(i)) => members.contains(i),
                Blame::Operator(None) => false,
            })
            .count();
        let stuck = members.len() - healthy.len();
        let healthy_text = if stuck > 0 {
            format!("{} ({stuck} never healthy)", spread(&healthy))
        } else {
            spread(&healthy)
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {acked} | {lost} | {} | {healthy_text} |",
            members.len(),
            spread(&writable),
        );
    }
    let between = lost_blame
        .iter()
        .filter(|b| matches!(b, Blame::Operator(None)))
        .count();
    if between > 0 {
        let _ = writeln!(out, "| between operations | - | - | {between} | - | - |");
    }
    // Each lost write and each wrong read with the window it fell in: the evidence for the
    // blame.
    list_misses(
        &mut out,
        "lost acknowledged writes",
        &totals.lost,
        &lost_blame,
        episodes,
    );
    list_misses(
        &mut out,
        "read-backs that answered wrongly during the run",
        &totals.wrong_reads,
        &wrong_blame,
        episodes,
    );
    out
}

/// At most 20 misses, oldest first, each with the operation it fell in.
fn list_misses(
    out: &mut String,
    title: &str,
    misses: &[Miss],
    blame: &[Blame],
    episodes: &[Episode],
) {
    let mut listed: Vec<(&Miss, &Blame)> = misses.iter().zip(blame).collect();
    listed.sort_by_key(|(m, _)| m.seen_ms());
    if listed.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{title} (at most 20 shown):");
    for (m, b) in listed.iter().take(20) {
        let what = if m.read_ms.is_some() {
            "read"
        } else {
            "written"
        };
        let window = match b {
            Blame::KilledMaster(i) | Blame::Operator(Some(i)) => {
                let e = &episodes[*i];
                format!(
                    "{} ({}) at {:.3} s: {what} {:+.3} s from its start",
                    e.kind.label(),
                    e.detail,
                    e.start_ms as f64 / 1000.0,
                    (m.seen_ms() as f64 - e.start_ms as f64) / 1000.0
                )
            }
            Blame::Operator(None) => "between operations".into(),
        };
        let whose = if matches!(b, Blame::KilledMaster(_)) {
            "asynchronous replication"
        } else {
            "NOT EXPLAINED"
        };
        let read = m
            .read_ms
            .map(|r| format!(", read back wrongly at {:.3} s", r as f64 / 1000.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  soak:{} (slot {}), acknowledged at {:.3} s{read}; {window}; {whose}",
            m.key,
            m.slot,
            m.acked_ms as f64 / 1000.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode(kind: Kind, start_ms: u64, healthy_ms: u64, slots: &[(u16, u16)]) -> Episode {
        Episode {
            kind,
            detail: String::new(),
            start_ms,
            fault_ms: None,
            writable_ms: Some(start_ms + 100),
            healthy_ms: Some(healthy_ms),
            operator_killed: None,
            victim_slots: slots.iter().map(|&(a, b)| SlotRange::new(a, b)).collect(),
        }
    }

    fn miss(acked_ms: u64, slot: u16) -> Miss {
        Miss {
            key: 0,
            acked_ms,
            slot,
            read_ms: None,
        }
    }

    #[test]
    fn a_write_to_a_killed_masters_slots_just_before_the_kill_is_blamed_on_the_kill() {
        let episodes = [
            episode(Kind::Scale, 0, 5_000, &[]),
            episode(Kind::KillMaster, 10_000, 20_000, &[(0, 5460)]),
        ];
        let blame = attribute(&[miss(9_500, 100), miss(12_000, 5460)], &episodes);
        assert_eq!(blame, vec![Blame::KilledMaster(1), Blame::KilledMaster(1)]);
    }

    #[test]
    fn a_write_lost_in_another_masters_slots_or_too_early_is_the_operators() {
        let episodes = [
            episode(Kind::Scale, 0, 5_000, &[]),
            episode(Kind::KillMaster, 10_000, 20_000, &[(0, 5460)]),
        ];
        let blame = attribute(
            &[miss(12_000, 5461), miss(8_000, 100), miss(4_000, 100)],
            &episodes,
        );
        assert_eq!(
            blame,
            vec![
                Blame::Operator(Some(1)),
                Blame::Operator(None),
                Blame::Operator(Some(0))
            ]
        );
    }

    #[test]
    fn a_scale_that_loses_its_source_explains_only_writes_to_the_sources_slots_from_the_fault_on() {
        let mut scale = episode(Kind::ScaleSourceKilled, 10_000, 40_000, &[(0, 5460)]);
        scale.fault_ms = Some(20_000);
        scale.writable_ms = Some(23_000);
        let blame = attribute(
            &[
                miss(19_500, 100),  // just before the fault, the source's slots
                miss(12_000, 100),  // in the scale, long before the fault
                miss(25_000, 5461), // after the fault, another master's slots
            ],
            std::slice::from_ref(&scale),
        );
        assert_eq!(
            blame,
            vec![
                Blame::KilledMaster(0),
                Blame::Operator(Some(0)),
                Blame::Operator(Some(0))
            ]
        );
        // Writable counts from the fault, healthy from the scale.
        let table = render(&[scale], &Totals::default(), &[]);
        assert!(table.contains("| 3.0 s / 3.0 s / 3.0 s | 30.0 s / 30.0 s / 30.0 s |"));
    }

    #[test]
    fn a_wrong_read_belongs_to_the_operation_it_was_read_in_not_the_one_its_key_was_written_in() {
        let episodes = [
            episode(Kind::Scale, 0, 5_000, &[]),
            episode(Kind::RollingConfig, 10_000, 20_000, &[]),
        ];
        let read = Miss {
            read_ms: Some(15_000),
            ..miss(1_000, 100)
        };
        assert_eq!(
            attribute(&[read, miss(1_000, 100)], &episodes),
            vec![Blame::Operator(Some(1)), Blame::Operator(Some(0))]
        );
    }

    #[test]
    fn a_killed_replica_explains_no_lost_write() {
        let episodes = [episode(Kind::KillReplica, 10_000, 20_000, &[(0, 16383)])];
        assert_eq!(
            attribute(&[miss(10_500, 7)], &episodes),
            vec![Blame::Operator(Some(0))]
        );
    }

    #[test]
    fn a_write_lost_with_a_deleted_master_pod_or_a_killed_node_is_blamed_on_it_and_an_api_cut_explains_none()
     {
        let episodes = [
            episode(Kind::DeleteMasterPod, 10_000, 20_000, &[(0, 5460)]),
            episode(
                Kind::KillNode,
                30_000,
                40_000,
                &[(5461, 6000), (9000, 9100)],
            ),
            episode(Kind::CutApi, 50_000, 55_000, &[]),
            episode(Kind::DeleteReplicaPod, 60_000, 65_000, &[]),
        ];
        let blame = attribute(
            &[
                miss(9_500, 10),
                miss(31_000, 9050),
                miss(31_000, 7000),
                miss(51_000, 10),
                miss(61_000, 10),
            ],
            &episodes,
        );
        assert_eq!(
            blame,
            vec![
                Blame::KilledMaster(0),
                Blame::KilledMaster(1),
                Blame::Operator(Some(1)),
                Blame::Operator(Some(2)),
                Blame::Operator(Some(3)),
            ]
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7, 3], 50), Some(3));
        assert_eq!(percentile(&[7, 3], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn a_lost_write_outside_a_masters_window_or_an_unclean_check_fails_the_soak() {
        let episodes = [episode(Kind::KillMaster, 10_000, 20_000, &[(0, 100)])];
        let clean = Totals {
            lost: vec![miss(9_900, 50)],
            check: Some(Ok(())),
            ..Totals::default()
        };
        assert_eq!(failures(&episodes, &clean), Vec::<String>::new());
        let lost = Totals {
            lost: vec![miss(9_900, 500)],
            ..clean.clone()
        };
        assert_eq!(failures(&episodes, &lost).len(), 1);
        let unclean = Totals {
            check: Some(Err("[ERR] Nodes don't agree about configuration!".into())),
            ..clean
        };
        assert!(failures(&episodes, &unclean)[0].contains("don't agree"));
    }

    #[test]
    fn a_cluster_that_never_heals_fails_the_soak() {
        let mut e = episode(Kind::Scale, 0, 0, &[]);
        e.healthy_ms = None;
        let totals = Totals {
            check: Some(Ok(())),
            ..Totals::default()
        };
        assert_eq!(failures(&[e], &totals).len(), 1);
    }
}
