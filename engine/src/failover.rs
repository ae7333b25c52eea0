//! Masters that own slots but are down: wait for Redis' own failover, force it when Redis
//! does not, take over when no election can happen, or report the slots lost.

use crate::effect::{Effect, FailoverMode};
use crate::election::{Vote, forced_vote, takeover_wins};
use crate::slots::to_ranges;
use crate::work::{Kind, Work};
use crate::world::World;

/// Masters that own slots but are down. With a live replica, Redis fails over by itself; if it
/// has not after twice the node timeout, the operator forces it. A master whose process is
/// known to be gone, without persistence, has its best replica forced at once (`early_force`). Without a replica the slots
/// are lost until the node returns, and `Degraded` says which.
pub(crate) fn failed_masters(w: &World, degraded: &mut Vec<String>) -> Option<Work> {
    let mut effects = Vec::new();
    let mut waiting = Vec::new();
    // Every effect decided is a FORCE on the early path (see the requeue below).
    let mut all_early = true;
    // Some dead master waits on the early path (for its voters, or for the fallback time).
    let mut early_waiting = false;
    let by_owner = w.slots_by_owner();
    for (id, slots) in by_owner {
        let Some(n) = w.nodes.get(id) else { continue };
        if n.reachable {
            continue;
        }
        let who = n
            .ordinal
            .map(|o| format!("#{o}"))
            .unwrap_or_else(|| id.get(..8).unwrap_or(id).to_string());
        let candidates = w.takeover_candidates(id);
        let Some(best) = candidates.first() else {
            let ranges = crate::slots::format_ranges(&to_ranges(slots.iter().copied()));
            // No member runs that id any more (its member came back as a new node, its
            // nodes.conf lost) and every member is accounted for: it will never return.
            let gone = n.ordinal.is_none()
                && w.obs
                    .members
                    .keys()
                    .all(|o| w.reachable.contains_key(o) || w.id_of.contains_key(o));
            degraded.push(if gone {
                format!(
                    "master {who} is gone for good (no member runs it any more) and no replica \
                     could take over: the data of slots {ranges} is lost; they stay \
                     unserved until an administrator assigns them again (`redis-cli --cluster \
                     fix` assigns them empty)"
                )
            } else {
                format!(
                    "master {who} is down with no replica able to take over: slots {ranges} \
                     are unavailable until it returns"
                )
            });
            continue;
        };
        // The replica holding the copy may be a leaving member the masters already forgot
        // (its master died between FORGET and its deletion). Masters ignore the pings of a
        // node they do not know: they would never vote for it, nor accept the slots it takes
        // over. So it is introduced again first, from every slot owner that lacks it.
        if let Some(meets) = reintroductions(w, *best, by_owner.keys().copied()) {
            if meets.is_empty() {
                waiting.push(who);
            }
            effects.extend(meets);
            continue;
        }
        let down_for = w.obs.now_ms.saturating_sub(n.last_pong_ms);
        let timeout = w.desired.node_timeout_ms;
        // An election needs a majority of the masters that own slots. Without it, FORCE can
        // never win; TAKEOVER needs no vote but could split the brain if the master were only
        // cut off, so it is used only when the master's process is known to be gone.
        let masters_up = by_owner
            .keys()
            .filter(|m| w.nodes.get(*m).is_some_and(|x| x.reachable))
            .count();
        let majority = masters_up * 2 > by_owner.len();
        let process_gone = n
            .ordinal
            .and_then(|o| w.obs.members.get(&o))
            .is_none_or(|m| !m.running);
        // Redis never elects a replica whose own view gives its master no slot (a target
        // that died right after `SETSLOT NODE`, before it pinged its replica): FORCE would be
        // accepted and ignored for ever, so such a replica takes over, once the master's
        // process is known to be gone.
        let replica_sees_no_slot = w.view(*best, id).is_some_and(|e| e.slots.is_empty());
        let no_election = process_gone && replica_sees_no_slot && n.failed;
        // A master whose process is known gone may never be flagged failed: when its member
        // came back at once as a new node at the same address (a kubelet restarts a container
        // without asking), the others mark the old id `noaddr` and stop pinging it, so it
        // never reaches PFAIL, and Redis never elects its replica. FORCE needs no FAIL flag
        // (the voters accept a forced request), so a gone process is reason enough.
        let early = process_gone && majority && early_force(w, id, *best);
        let early_step = if early {
            early_step(w, id, *best, down_for, replica_sees_no_slot)
        } else {
            EarlyStep::NotEarly
        };
        match early_step {
            EarlyStep::Force => {
                effects.push(Effect::Failover {
                    on: *best,
                    mode: FailoverMode::Force,
                });
                continue;
            }
            EarlyStep::Takeover => {
                effects.push(Effect::Failover {
                    on: *best,
                    mode: FailoverMode::Takeover,
                });
                effects.extend(claims_after_takeover(w, id, *best, slots));
                continue;
            }
            EarlyStep::Wait => {
                early_waiting = true;
                waiting.push(who);
                continue;
            }
            EarlyStep::NotEarly => {}
        }
        if no_election || (!majority && process_gone && down_for > 4 * timeout) {
            effects.push(Effect::Failover {
                on: *best,
                mode: FailoverMode::Takeover,
            });
            all_early = false;
            effects.extend(claims_after_takeover(w, id, *best, slots));
        } else if majority && (n.failed || process_gone) && down_for > 2 * timeout {
            // A master grants one vote per failed master every 2 node timeouts. Attempts
            // closer together than that can be refused in turn by different voters for ever,
            // so forced elections happen only in the first node timeout of every third one:
            // each attempt after a failed one finds every voter free again.
            let since = down_for - 2 * timeout;
            let period = 3 * timeout.max(1000);
            let into = since % period;
            if into < timeout.max(1000) {
                effects.push(Effect::Failover {
                    on: *best,
                    mode: FailoverMode::Force,
                });
                all_early = false;
            } else {
                waiting.push(who);
            }
        } else {
            waiting.push(who);
        }
    }
    if !effects.is_empty() {
        // Every effect is a failover on the early path (see the requeue below).
        let only_early = all_early
            && effects
                .iter()
                .all(|e| matches!(e, Effect::Failover { .. } | Effect::SetSlotOwner { .. }));
        let summary = if effects.iter().all(|e| matches!(e, Effect::Meet { .. })) {
            "introducing again a forgotten replica that holds a failed master's data"
        } else if only_early {
            "failing over masters whose process is gone"
        } else {
            "forcing failover of masters Redis did not replace in time"
        };
        let mut work = Work::new(Kind::Recover, effects, summary);
        // An election takes time; asking again restarts Redis' manual failover, so look again
        // only after a node timeout. The early path is the exception: the voters answer a
        // forced request at once (and a takeover needs none), so the replica is master within
        // a cluster cron tick or two, and the member's restart and re-attach wait for the next
        // look. Asking again inside the window starts no second election: a replica starts
        // none within its retry time of the last one (`clusterHandleSlaveFailover`).
        work.requeue_ms = Some(if only_early || early_waiting {
            EARLY_RECHECK_MS
        } else {
            w.desired.node_timeout_ms
        });
        return Some(work);
    }
    if !waiting.is_empty() {
        let mut work = Work::wait(format!(
            "waiting for Redis to promote a replica of {}",
            waiting.join(", ")
        ));
        work.kind = Kind::Recover;
        if early_waiting {
            // The early path looks again soon: its voters get ready within gossip rounds, and
            // its fallback must not wait for the idle pace.
            work.requeue_ms = Some(EARLY_RECHECK_MS);
        }
        return Some(work);
    }
    if degraded.is_empty() {
        None
    } else {
        // Slots are unavailable: changing the topology now could only make it worse.
        let mut work = Work::wait("cluster is degraded; waiting for the lost masters to return");
        work.kind = Kind::Recover;
        Some(work)
    }
}

/// How soon to look again after forcing a dead master's replica on the early path.
const EARLY_RECHECK_MS: u64 = 200;

/// What the early path does for a dead master this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EarlyStep {
    /// The master is not on the early path: Redis' own failover and the late windows.
    NotEarly,
    Force,
    Takeover,
    /// Nothing yet: the voters are not ready, or a forced election is under way.
    Wait,
}

/// The early path, once [`early_force`] holds (the process is gone, no persistence, `best` is
/// the best replica, a majority of the slot owners answers):
/// - while no election can ever be granted (`best`'s view of its master is older than a
///   voter's, or gives it no slot), `TAKEOVER`, which needs no vote;
/// - within the first half node timeout of the death, `FORCE` only when every voter would
///   grant it ([`forced_vote`]): a forced election that loses keeps the replica from any
///   other election, Redis' own included, for 4 node timeouts;
/// - after that, should the replica still not be master (a forced election lost after all,
///   or voters that never got ready), `TAKEOVER`, when `best` is the only replica of the
///   master that runs: no sibling can win an election of its own at the same time. Redis
///   alone flags the master failed a node timeout after the death, then elects: the early
///   path never takes longer than that. With siblings, Redis' own election of one of them
///   goes on (a lost forced election only holds back the replica that ran it).
///
/// A takeover also waits until its new epoch beats every view's ([`takeover_wins`]).
fn early_step(
    w: &World,
    master_id: &str,
    best: crate::model::Ordinal,
    down_for: u64,
    replica_sees_no_slot: bool,
) -> EarlyStep {
    let takeover = || {
        if takeover_wins(w, master_id, best) {
            EarlyStep::Takeover
        } else {
            EarlyStep::Wait
        }
    };
    let vote = forced_vote(w, master_id, best);
    if replica_sees_no_slot || vote == Vote::Never {
        return takeover();
    }
    let fallback_after = (w.desired.node_timeout_ms / 2).max(1000);
    if down_for < fallback_after {
        return if vote == Vote::Granted {
            EarlyStep::Force
        } else {
            EarlyStep::Wait
        };
    }
    let siblings_running = w.replicas_of(master_id).into_iter().any(|(_, r)| {
        r.ordinal.is_some_and(|o| o != best)
            && r.ordinal
                .and_then(|o| w.obs.members.get(&o))
                .is_none_or(|m| m.running)
    });
    if siblings_running {
        EarlyStep::NotEarly
    } else {
        takeover()
    }
}

/// After `TAKEOVER`, the slots the cluster gives the dead master `master_id` that `best`'s own
/// view does not: `best` claims them right after, at the epoch the takeover gave it.
fn claims_after_takeover(
    w: &World,
    master_id: &str,
    best: crate::model::Ordinal,
    slots: &[u16],
) -> Vec<Effect> {
    // A replica takes over exactly the slots its own view gives its master. When that view
    // is behind (it gives none, say), the slots the cluster gives the dead master would stay
    // with it, and its member, restarted empty without persistence, would serve them empty
    // while their keys sit on the promoted replica. TAKEOVER is done when the command returns
    // and bumps the replica's epoch, so it claims them right after, at an epoch every view
    // accepts.
    let claimed: std::collections::BTreeSet<u16> = w
        .view(best, master_id)
        .map(|e| crate::slots::expand(&e.slots).collect())
        .unwrap_or_default();
    let Some(best_id) = w.id_of.get(&best) else {
        return Vec::new();
    };
    slots
        .iter()
        .filter(|s| !claimed.contains(s))
        .map(|s| Effect::SetSlotOwner {
            on: best,
            slot: *s,
            owner_id: (*best_id).to_string(),
        })
        .collect()
}

/// The early path: `best`, replica of master `master_id` whose process is known to be gone
/// (exited, killed, its pod deleted: never a mere silence), is forced at once, before Redis
/// would even flag the master failed, when nothing better can come of waiting:
/// - no persistence: the master comes back empty, so its replicas hold the only copy (with
///   persistence it comes back with its data, newer than a replica's by the replication lag,
///   and gets the node timeout Redis gives it);
/// - `best` linked to this master since it last was a master itself, and its replication
///   offset is the highest of the master's replicas: every replica of it that runs answers
///   (a paused or unreachable one could hold a later offset), and none reports more.
///
/// A master that is merely unreachable (paused, cut off) never takes this path: its process
/// runs. Nor does a replica's own silence: `takeover_candidates` only offers reachable ones.
fn early_force(w: &World, master_id: &str, best: crate::model::Ordinal) -> bool {
    if w.desired.persistent {
        return false;
    }
    let Some(state) = w.state(best) else {
        return false;
    };
    if !state.ever_linked || state.repl_offset == 0 {
        return false;
    }
    w.replicas_of(master_id).into_iter().all(|(_, r)| {
        let running = r
            .ordinal
            .and_then(|o| w.obs.members.get(&o))
            .is_some_and(|m| m.running);
        if !running {
            return true;
        }
        r.ordinal
            .and_then(|o| w.state(o))
            .is_some_and(|s| r.reachable && s.repl_offset <= state.repl_offset)
    })
}

/// When some reachable slot owner does not know replica `best`: the `CLUSTER MEET` effects
/// that introduce it to them (empty while the handshakes already under way finish).
fn reintroductions<'a>(
    w: &World<'a>,
    best: crate::model::Ordinal,
    owners: impl Iterator<Item = &'a str>,
) -> Option<Vec<Effect>> {
    let best_id = w.id_of.get(&best)?;
    let (_, best_addr, _) = w.reachable.get(&best)?;
    let lacking: Vec<_> = owners
        .filter_map(|owner| w.nodes.get(owner).filter(|o| o.reachable)?.ordinal)
        .filter(|&voter| voter != best && w.view(voter, best_id).is_none())
        .collect();
    if lacking.is_empty() {
        return None;
    }
    Some(
        lacking
            .into_iter()
            .filter(|&voter| {
                let voter_addr = w.reachable.get(&voter).map(|(_, a, _)| *a);
                !w.handshaking(voter, best_addr)
                    && !voter_addr.is_some_and(|a| w.handshaking(best, a))
            })
            .map(|voter| Effect::Meet {
                on: voter,
                ip: best_addr.ip.clone(),
                port: best_addr.port,
            })
            .collect(),
    )
}
