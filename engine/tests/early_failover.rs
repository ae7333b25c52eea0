//! The early path (`engine/src/failover.rs`, `early_force`): a master whose process is known
//! to be gone has its best replica forced at once; a master that is merely silent never has.
#![allow(clippy::unwrap_used)]

mod fixture;

use fixture::*;
use redis_operator_engine::*;

fn desired(m: u32, r: u32) -> Desired {
    Desired::new(m, r)
}

fn forced(d: &Decision) -> Vec<Ordinal> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Failover {
                on,
                mode: FailoverMode::Force,
            } => Some(*on),
            _ => None,
        })
        .collect()
}

fn failovers(d: &Decision) -> Vec<FailoverMode> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Failover { mode, .. } => Some(*mode),
            _ => None,
        })
        .collect()
}

/// 300 ms after the master's last pong, when nobody flags it even `fail?` yet.
const JUST_DIED_MS: u64 = 1_300;

/// A master whose process is known gone (SIGKILL, a container that terminated) is dead for
/// sure: its replica is forced at once, long before Redis would flag the master failed
/// (a node timeout) and elect by itself.
#[test]
fn a_master_whose_process_is_gone_has_its_replica_forced_at_once() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    // 300 ms since the master's last pong: nobody flags it even PFAIL yet.
    let obs = observe(&nodes, false, 1_300);
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert_effects(
        &d,
        &[Effect::Failover {
            on: 3,
            mode: FailoverMode::Force,
        }],
    );
}

/// A master that does not answer while its process runs (SIGSTOP, a partition) may come
/// back as it was: Redis decides after the node timeout, and the engine forces nothing for
/// twice that, however long it has been silent below it.
#[test]
fn a_paused_master_whose_process_runs_is_left_to_redis() {
    let nodes = healthy(3, 1);
    for down_ms in [300, 4_000, 9_000] {
        let mut obs = observe(&nodes, false, 1_000 + down_ms);
        obs.members.get_mut(&0).unwrap().redis = None;
        let d = decide(&desired(3, 1), Phase::Ready, &obs);
        assert!(
            !d.effects
                .iter()
                .any(|e| matches!(e, Effect::Failover { .. })),
            "silent for {down_ms} ms: {:?} {}",
            d.effects,
            d.summary
        );
    }
}

/// A master with several replicas: the best is forced at once; should it still not be master
/// once the early window is over (half a node timeout), the siblings' own elections go on
/// (a lost forced election holds back only the replica that ran it), and the late windows
/// apply: forced in the first node timeout of every three from 2 node timeouts on, when
/// every voter is free to vote again.
#[test]
fn with_siblings_a_replica_not_promoted_in_the_early_window_is_left_to_the_late_windows() {
    let mut nodes = healthy(3, 2);
    nodes[0].running = false;
    let timeout = desired(3, 2).node_timeout_ms;
    for (down_ms, failover) in [
        (300, Some(FailoverMode::Force)),
        (timeout / 2 + 100, None),
        (timeout + 100, None),
        (2 * timeout + 100, Some(FailoverMode::Force)),
        (3 * timeout + 100, None),
        (4 * timeout + 100, None),
        (5 * timeout + 100, Some(FailoverMode::Force)),
    ] {
        let obs = observe(&nodes, false, 1_000 + down_ms);
        let d = decide(&desired(3, 2), Phase::Recovering, &obs);
        assert_eq!(
            failovers(&d),
            failover.into_iter().collect::<Vec<_>>(),
            "down {down_ms} ms: {}",
            d.summary
        );
    }
}

/// The only replica of a dead master that is still not master half a node timeout after the
/// death (its forced election lost, or its voters never got ready) takes over without a
/// vote: no sibling can be elected meanwhile, the dead process serves nothing, and Redis
/// alone would not even have flagged the master failed yet. Waiting instead would leave the
/// slots down for 4 node timeouts: the retry time of a replica whose election lost.
#[test]
fn a_sole_replica_still_not_master_half_a_node_timeout_after_the_death_takes_over() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    let timeout = desired(3, 1).node_timeout_ms;
    let d = decide(
        &desired(3, 1),
        Phase::Recovering,
        &observe(&nodes, false, 1_000 + timeout / 2 - 100),
    );
    assert_eq!(failovers(&d), vec![FailoverMode::Force], "{}", d.summary);
    let d = decide(
        &desired(3, 1),
        Phase::Recovering,
        &observe(&nodes, false, 1_000 + timeout / 2 + 100),
    );
    assert_eq!(failovers(&d), vec![FailoverMode::Takeover], "{}", d.summary);
    assert!(d.requeue_ms.is_some_and(|ms| ms < timeout), "{d:?}");
}

/// Redis' voters refuse a request whose epoch is below theirs, or that they may already have
/// voted in: a replica that has not heard of a voter's current epoch yet is not forced (a
/// lost election would hold it back for 4 node timeouts); the engine looks again soon.
#[test]
fn a_replica_behind_a_voters_current_epoch_is_not_forced_until_it_catches_up() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    let mut obs = observe(&nodes, false, JUST_DIED_MS);
    state(&mut obs, 1).current_epoch = 11;
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert!(failovers(&d).is_empty(), "{:?} {}", d.effects, d.summary);
    assert!(d.requeue_ms.is_some_and(|ms| ms < 1_000), "{d:?}");
    state(&mut obs, 3).current_epoch = 11;
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert_eq!(forced(&d), vec![3]);
}

/// A vote travels on the voter's own bus link to the candidate (a vote granted over no link
/// is spent and never arrives), the request on the candidate's: both must be up, and the
/// voter must know the candidate as a replica of the dead master.
#[test]
fn a_replica_a_voter_has_no_link_to_is_not_forced() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    let mut obs = observe(&nodes, false, JUST_DIED_MS);
    for e in state(&mut obs, 2).nodes.entries_mut().iter_mut() {
        if e.id == id(3) {
            e.link = model::LinkState::Disconnected;
        }
    }
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert!(failovers(&d).is_empty(), "{:?} {}", d.effects, d.summary);
}

/// Seen on a real cluster (bench/failover.py): a replica's view gave its master an older
/// config epoch than the voters' (the master bumped its epoch and died before pinging its
/// replica again). Every voter refuses its election, Redis' own as well, for as long as the
/// master is dead: only the master's own messages carry its epoch. So it takes over without
/// a vote, under an epoch above every view's.
#[test]
fn a_replica_whose_view_of_its_dead_master_is_older_than_a_voters_takes_over_at_once() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    let mut obs = observe(&nodes, false, JUST_DIED_MS);
    set_epoch(&mut obs, 0, 7);
    for e in state(&mut obs, 3).nodes.entries_mut().iter_mut() {
        if e.id == id(0) {
            e.config_epoch = 1;
        }
    }
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert_eq!(failovers(&d), vec![FailoverMode::Takeover], "{}", d.summary);

    // The replica's current epoch is below the epoch a voter gives the master: its takeover
    // epoch would lose there, so it waits until gossip brings its epoch up.
    state(&mut obs, 3).current_epoch = 5;
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert!(failovers(&d).is_empty(), "{:?} {}", d.effects, d.summary);
}

/// Forced at once, the replica wins within a cron tick or two: the engine looks again soon,
/// not a node timeout later, so the dead member's restart and re-attach follow at once. A
/// FORCE after Redis failed to elect by itself keeps the node timeout between attempts.
#[test]
fn an_early_force_is_looked_at_again_soon_and_a_late_one_after_a_node_timeout() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    let timeout = desired(3, 1).node_timeout_ms;
    let early = decide(
        &desired(3, 1),
        Phase::Ready,
        &observe(&nodes, false, JUST_DIED_MS),
    );
    assert_eq!(forced(&early), vec![3]);
    assert!(early.requeue_ms.is_some_and(|ms| ms < timeout), "{early:?}");
    // The same master, flagged failed and silent for long, but with persistence: the late path.
    nodes[0].fail = true;
    let mut spec = desired(3, 1);
    spec.persistent = true;
    let late = decide(
        &spec,
        Phase::Recovering,
        &observe(&nodes, false, 1_000 + 2 * timeout + 100),
    );
    assert_eq!(forced(&late), vec![3]);
    assert_eq!(late.requeue_ms, Some(timeout));
}

/// With persistence a dead master comes back with its data (newer than its replica's by the
/// replication lag): Redis gets its node timeout to elect, the engine forces only after two.
#[test]
fn with_persistence_a_dead_masters_replica_is_not_forced_at_once() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    let mut spec = desired(3, 1);
    spec.persistent = true;
    let d = decide(&spec, Phase::Ready, &observe(&nodes, false, JUST_DIED_MS));
    assert!(forced(&d).is_empty(), "{:?} {}", d.effects, d.summary);
}

/// Of a dead master's replicas, the one with the highest replication offset is forced, and
/// only when every one of them that runs answers: a replica that is silent while its process
/// runs could hold a later offset, so the early path waits and Redis ranks them itself.
#[test]
fn only_the_most_up_to_date_replica_of_a_dead_master_is_forced_at_once() {
    let mut nodes = healthy(3, 2);
    nodes[0].running = false;
    // Replicas of #0 are #3 and #6.
    let mut obs = observe(&nodes, false, JUST_DIED_MS);
    state(&mut obs, 3).repl_offset = 90;
    let d = decide(&desired(3, 2), Phase::Ready, &obs);
    assert_eq!(forced(&d), vec![6]);

    // #6, the best, runs but does not answer: nothing is forced early.
    obs.members.get_mut(&6).unwrap().redis = None;
    let d = decide(&desired(3, 2), Phase::Ready, &obs);
    assert!(forced(&d).is_empty(), "{:?} {}", d.effects, d.summary);

    // #6 answers again, behind #3: #3 is the one.
    let again = observe(&nodes, false, JUST_DIED_MS);
    obs.members.insert(6, again.members[&6].clone());
    state(&mut obs, 6).repl_offset = 80;
    let d = decide(&desired(3, 2), Phase::Ready, &obs);
    assert_eq!(forced(&d), vec![3]);
}

/// A replica whose link never came up since it last was a master (a demoted master that
/// restarted, say) may hold an older copy: it is never forced early.
#[test]
fn a_replica_that_never_linked_to_the_dead_master_is_not_forced_at_once() {
    let mut nodes = healthy(3, 1);
    nodes[0].running = false;
    let mut obs = observe(&nodes, false, JUST_DIED_MS);
    state(&mut obs, 3).ever_linked = false;
    let d = decide(&desired(3, 1), Phase::Ready, &obs);
    assert!(forced(&d).is_empty(), "{:?} {}", d.effects, d.summary);
}

/// Simulator seed 377: master #0 died, its replica #3 was forced at once and won, then died
/// too, while #0's other replica #6 was cut off with an older copy of their keys. Restarted
/// empty, #3 would keep the slots and #6, on hearing of them, would follow it and resync
/// empty. #3 stays down until #6 follows it and can be promoted.
#[test]
fn a_promoted_master_that_died_waits_while_a_cut_off_replica_of_its_predecessor_holds_keys() {
    let mut nodes = healthy(3, 2);
    let slots = nodes[0].slots.clone();
    // #0 replaced by #3, then #3 dead too: the consensus gives #3 the slots.
    nodes[0].running = false;
    nodes[0].fail = true;
    nodes[0].slots.clear();
    nodes[3].running = false;
    nodes[3].fail = true;
    nodes[3].master = None;
    nodes[3].slots = slots.clone();
    let mut obs = observe(&nodes, false, 60_000);
    // #6 was cut off: it still follows #0 and sees #0 owning the slots, #3 its replica.
    let cut_off = state(&mut obs, 6);
    cut_off.master_link_up = false;
    for e in cut_off.nodes.entries_mut().iter_mut() {
        if e.id == id(0) {
            e.slots = slots.clone();
            e.flags.fail = false;
        } else if e.id == id(3) {
            e.slots.clear();
            e.master_id = Some(id(0));
            e.flags.master = false;
            e.flags.replica = true;
            e.flags.fail = false;
        }
    }
    let d = decide(&desired(3, 2), Phase::Recovering, &obs);
    assert!(
        !d.effects.contains(&Effect::CreateNode { ordinal: 3 }),
        "{:?} {}",
        d.effects,
        d.summary
    );
    // Nothing left on #6: #3 is started again (the slots have no copy anywhere).
    state(&mut obs, 6).keys = 0;
    let d = decide(&desired(3, 2), Phase::Recovering, &obs);
    assert!(
        d.effects.contains(&Effect::CreateNode { ordinal: 3 }),
        "{:?} {}",
        d.effects,
        d.summary
    );
}
