//! Rolling replacement: running members whose configuration fingerprint differs from the
//! desired one are restarted with the new configuration (`ReplaceNode`), one member at a time,
//! so that every shard keeps a master throughout and, wherever it has a replica, a synced copy.
//!
//! Order: replicas first; then each master, after a coordinated `CLUSTER FAILOVER` (default
//! mode: the replica waits until it has every write of its master, so nothing is lost) hands
//! its slots to a synced replica, is replaced as the replica it has become. Each step waits
//! until the whole cluster is healthy again: every member answers, no node is flagged failing,
//! no slot is open, every node says `cluster_state:ok` and agrees on slots and roles, and every
//! replica is synced (the node replaced last is back and has its copy).
//!
//! A master without a synced replica is replaced in place only with persistence, wanted and
//! already on in the running node (it reloads its data; its slots are unserved while it
//! restarts). Otherwise a restart empties it: that is data loss, which the engine never
//! decides, so the change waits and says why.

use crate::effect::{Effect, FailoverMode};
use crate::model::Ordinal;
use crate::work::{Kind, Work};
use crate::world::World;

/// What the rule found.
pub(crate) enum Rolling {
    /// No running member has an outdated fingerprint (or none is desired).
    UpToDate,
    /// The next step, or the wait for the cluster to be whole again.
    Step(Work),
    /// Outdated members remain, but every one left would lose data if restarted: the
    /// cluster is otherwise converged, and this says what the user can do.
    Refused(String),
}

/// Members running an outdated configuration: in range, running, reporting a fingerprint
/// (a member whose backend cannot tell is never replaced) that differs from the desired one.
fn outdated(w: &World) -> Vec<Ordinal> {
    let Some(want) = w.desired.fingerprint.as_deref() else {
        return Vec::new();
    };
    w.obs
        .members
        .iter()
        .filter(|(o, m)| {
            w.in_range(**o) && m.running && m.fingerprint.as_deref().is_some_and(|f| f != want)
        })
        .map(|(o, _)| *o)
        .collect()
}

/// Why the cluster is not whole enough for the next replacement, if it is not. `settled` is
/// the convergence check's own reason to wait (`cluster_state`, slot map, roles, syncs).
fn not_whole(w: &World, settled: Option<String>) -> Option<String> {
    if let Some(reason) = settled {
        return Some(reason);
    }
    let missing: Vec<String> = w
        .obs
        .members
        .keys()
        .filter(|o| !w.reachable.contains_key(o) || !w.in_range(**o))
        .map(|o| format!("#{o}"))
        .collect();
    if !missing.is_empty() || !w.all_in_range_reachable() {
        return Some(format!(
            "waiting for every member to run and answer ({})",
            missing.join(", ")
        ));
    }
    if w.any_failure_flag() {
        return Some("waiting until no node is flagged failing".to_string());
    }
    if !w.open_slots().is_empty() {
        return Some("waiting until no slot is open".to_string());
    }
    // Every replica must be a copy now: link up and bytes of the stream received.
    let unsynced: Vec<String> = w
        .reachable
        .iter()
        .filter(|(o, _)| {
            w.me(**o).is_some_and(|me| me.master_id.is_some()) && w.synced_master_of(**o).is_none()
        })
        .map(|(o, _)| format!("#{o}"))
        .collect();
    if !unsynced.is_empty() {
        return Some(format!(
            "waiting for replicas {} to sync",
            unsynced.join(", ")
        ));
    }
    None
}

pub(crate) fn rolling(w: &World, settled: Option<String>) -> Rolling {
    let stale = outdated(w);
    if stale.is_empty() {
        return Rolling::UpToDate;
    }
    let left = stale.len();
    if let Some(reason) = not_whole(w, settled) {
        return Rolling::Step(Work::wait(format!(
            "{reason} before replacing the next member ({left} left on the old configuration)"
        )));
    }
    let master_of = |o: Ordinal| w.me(o).and_then(|me| me.master_id.as_deref());
    // Replicas first: restarting one leaves its master serving (and, without persistence,
    // it resyncs its copy from the master).
    if let Some(&replica) = stale.iter().find(|o| master_of(**o).is_some()) {
        return Rolling::Step(step(
            Effect::ReplaceNode { ordinal: replica },
            format!(
                "rolling replacement: restarting replica #{replica} with the new configuration \
                 ({left} member(s) left)"
            ),
        ));
    }
    let mut refused = Vec::new();
    let mut not_yet_persistent = Vec::new();
    for &master in &stale {
        let Some(id) = w.id_of.get(&master).copied() else {
            continue;
        };
        let holds = w.owns_slots(id) || w.state(master).is_some_and(|s| s.keys > 0);
        // Best copy first: the highest offset, then the lowest ordinal.
        let heir = w
            .synced_replicas(id)
            .filter(|r| w.in_range(*r))
            .max_by_key(|r| {
                (
                    w.state(*r).map_or(0, |s| s.repl_offset),
                    std::cmp::Reverse(*r),
                )
            });
        if let Some(on) = heir.filter(|_| holds) {
            let mut work = step(
                Effect::Failover {
                    on,
                    mode: FailoverMode::Default,
                },
                format!(
                    "rolling replacement: handing master #{master}'s slots to its replica #{on} \
                     (coordinated failover) before restarting it ({left} member(s) left)"
                ),
            );
            // An election under way must not be started again before it ends.
            work.requeue_ms = Some(FAILOVER_MS);
            return Rolling::Step(work);
        }
        if !holds || (w.desired.persistent && persists_now(w, master)) {
            let how = if holds {
                "in place: it reloads its data from disk, its slots are unserved meanwhile"
            } else {
                "it holds nothing"
            };
            return Rolling::Step(step(
                Effect::ReplaceNode { ordinal: master },
                format!(
                    "rolling replacement: restarting master #{master} with the new \
                     configuration {how} ({left} member(s) left)"
                ),
            ));
        }
        if w.desired.persistent {
            not_yet_persistent.push(format!("#{master}"));
        } else {
            refused.push(format!("#{master}"));
        }
    }
    if refused.is_empty() && not_yet_persistent.is_empty() {
        // Only masters whose id is unknown are left: the cluster is not whole after all.
        return Rolling::Step(Work::wait(format!(
            "waiting to recognise every member before replacing the next one ({left} left)"
        )));
    }
    // Shards are named by their master's member.
    let shards = |list: &[String]| {
        if list.len() == 1 {
            format!("shard {} has", list[0])
        } else {
            format!("shards {} have", list.join(", "))
        }
    };
    let mut why = Vec::new();
    if !refused.is_empty() {
        why.push(format!(
            "{} no replica and no persistence; add a replica or enable persistence",
            shards(&refused)
        ));
    }
    if !not_yet_persistent.is_empty() {
        why.push(format!(
            "{} no replica and a node not persisting yet (a restart to turn persistence on \
             would empty it); add a replica",
            shards(&not_yet_persistent)
        ));
    }
    Rolling::Refused(format!(
        "restart-requiring change waits: {} (see docs/engine.md, Rolling replacement)",
        why.join("; ")
    ))
}

/// The node of member `ordinal` says it persists its dataset now (`appendonly yes`), so a
/// restart reloads it. A node that did not say is taken not to.
fn persists_now(w: &World, ordinal: Ordinal) -> bool {
    w.state(ordinal).is_some_and(|s| {
        s.config
            .get(crate::desired::PERSISTENCE_SETTING)
            .is_some_and(|v| v == "yes")
    })
}

/// How long a coordinated failover is given before it is looked at again.
const FAILOVER_MS: u64 = 1_000;

fn step(effect: Effect, summary: String) -> Work {
    Work::new(Kind::Roll, vec![effect], summary)
}
