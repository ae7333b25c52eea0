//! Seeded simulation sweeps: the real engine drives the simulated cluster.
//!
//! Debug builds run the engine at about 1-2 ms per decision, so a seed costs 0.1-0.5 s and
//! the default counts are sized to keep each test well under a minute on 2 cores. Set
//! `SIM_SEEDS=N` for a bigger sweep (release: `cargo nextest run --release -p
//! redis-operator-sim --run-ignored all`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use redis_operator_sim::faults::FaultRates;
use redis_operator_sim::{SimConfig, Summary, run_many};
use std::ops::Range;
use std::path::PathBuf;

fn failure_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/sim-failures")
}

fn seeds(default: u64, offset: u64) -> Range<u64> {
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    offset..offset + n
}

fn sweep(seeds: Range<u64>, cfg: SimConfig) -> Summary {
    let summary = run_many(seeds, &cfg);
    println!("{summary}");
    let failures: Vec<String> = summary.failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} of {} seed(s) failed:\n{}",
        failures.len(),
        summary.seeds_run,
        failures.join("\n")
    );
    summary
}

#[test]
fn every_initial_shape_bootstraps_to_ready_without_faults() {
    let cfg = SimConfig {
        fault_steps: 15,
        settle_steps: 100,
        faults: false,
        max_spec_changes: 0,
        failure_dir: failure_dir(),
        ..SimConfig::default()
    };
    sweep(seeds(2000, 0), cfg);
}

/// Scale masters and replicas up and down with a client writing, without faults: every seed
/// must converge to Ready and keep every acknowledged write.
#[test]
fn scaling_masters_and_replicas_without_faults_never_loses_a_key() {
    let cfg = SimConfig {
        fault_steps: 40,
        faults: false,
        failure_dir: failure_dir(),
        ..SimConfig::default()
    };
    sweep(seeds(200, 1000), cfg);
}

/// Crashes, restarts with and without nodes.conf, IP changes, operator crashes between
/// effects, dropped and duplicated effects, partitions, interrupted migrations, and spec
/// changes on top. Every decision is safe, no acknowledged write is lost except with a process
/// that held its last copy, and once the faults stop every seed converges: to Ready, or to
/// Degraded when a master without a synced replica died with its data and its identity (its
/// slots are reported, never re-assigned empty).
#[test]
fn random_faults_and_spec_changes_never_cause_an_unsafe_decision_or_a_lost_write() {
    let cfg = SimConfig {
        fault_steps: 60,
        failure_dir: failure_dir(),
        ..SimConfig::default()
    };
    let summary = sweep(seeds(400, 10_000), cfg);
    // The faults must actually have bitten: a sweep where nothing went wrong proves nothing.
    assert!(
        summary.keys_lost_to_faults > 0,
        "no fault ever destroyed data"
    );
    assert!(summary.faults.values().sum::<u64>() > 1000);
}

/// Members SIGSTOPped for 1-15 s among every other fault (a master in half of the pauses):
/// the process runs, its memory intact, but nobody hears it, the operator included. The
/// runner fails a seed at once if a failover is decided for a replica of a paused master
/// before Redis itself could have replaced it (2 node timeouts of silence): the early
/// failover is for dead processes only. Paused masters come back, as masters or as replicas
/// of the replica Redis elected, and no acknowledged write is lost.
#[test]
fn a_paused_master_is_never_failed_over_early_and_every_write_survives_its_return() {
    let cfg = SimConfig {
        fault_steps: 60,
        failure_dir: failure_dir(),
        rates: redis_operator_sim::faults::FaultRates {
            pause: 40,
            ..Default::default()
        },
        ..SimConfig::default()
    };
    let summary = sweep(seeds(100, 40_000), cfg);
    // The pauses must have bitten: masters paused in most seeds.
    assert!(
        summary
            .seeds_with_fault
            .get("pause_master")
            .copied()
            .unwrap_or(0)
            * 2
            > summary.seeds_run,
        "{:?}",
        summary.seeds_with_fault
    );
}

/// Seeds that wider release sweeps (beyond the ranges above) found losing keys, each fixed in
/// the engine; run here so that they stay fixed. Default fault window: 92 (a leaving replica
/// removed while its master's replica that stays had not synced; the master then died), 818
/// (a chained replica on a demoted master's replication stream was forced over the dead
/// master's real replica; 10690 in window 60 is the same), 1530 (a leaving replica,
/// the only one of a master that stays, was down during a scale-in; keys were moved to that
/// master with no copy), 1982 (a master cut off while its slots moved on was given a newer
/// epoch to settle a crashed master's claim, which would have handed it those slots back).
/// Fault window 60: 10946 (a target no node could replicate yet got
/// slots while a protected target was available); 10848 and 11317 (a key lost, a scale-in
/// stuck) failed on the engine before this session's changes and pass since, not analysed.
/// Found 2026-11-30 (fifth session), default window: 20284 (a replica pointed at a new
/// master that died before its first sync still carried another shard's stream and the
/// highest offset, and was forced over the real replica), 30251 (a master being drained,
/// with no replica, died mid-drain and its address changed: nobody restarted it and the
/// cluster waited for it for ever). Mid-slot kills: 50101 (a scale-in moved keys onto a
/// target with no replica while a leaving empty master could have been lent as one), 50090
/// (the first fix of 20284 took a chained replica of a dead master for another shard's and
/// ruled out every replica of it).
#[test]
fn seeds_found_by_wider_sweeps_keep_every_key_and_converge() {
    let default = SimConfig {
        failure_dir: failure_dir(),
        ..SimConfig::default()
    };
    let window_60 = SimConfig {
        fault_steps: 60,
        failure_dir: failure_dir(),
        ..SimConfig::default()
    };
    let midslot = SimConfig {
        failure_dir: failure_dir(),
        ..SimConfig::midslot_kills()
    };
    let mut failures = Vec::new();
    for (seed, cfg) in [
        (92, &default),
        (818, &default),
        (1530, &default),
        (1982, &default),
        (10_946, &window_60),
        (10_690, &window_60),
        (10_848, &window_60),
        (11_317, &window_60),
        (20_284, &default),
        (30_251, &default),
        (50_090, &midslot),
        (50_101, &midslot),
    ] {
        failures.extend(
            run_many(seed..seed + 1, cfg)
                .failures
                .iter()
                .map(ToString::to_string),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Scale-outs and scale-ins (one or two replicas per master, a busy writer, 2-key MIGRATE
/// batches) in which the node sending a slot's keys or the node receiving them is SIGKILLed in
/// the middle of the slot, between MIGRATE batches, in almost every seed; no other fault.
/// Redis then leaves the importing node listing the dead source as owner (and refusing
/// MIGRATE with CLUSTERDOWN), or the moved keys on the dead target's replica only, with no
/// marker and no automatic failover. Every decision is safe, no key the operator moved onto a
/// master without a synced replica dies with it, no acknowledged key is lost, and every seed
/// converges once the faults stop.
#[test]
fn killing_the_source_or_the_target_of_a_migration_mid_slot_loses_no_key() {
    let cfg = SimConfig {
        failure_dir: failure_dir(),
        ..SimConfig::midslot_kills()
    };
    let summary = run_many(seeds(100, 20_000), &cfg);
    println!("{summary}");
    // The fault must actually have bitten: most seeds see a migration's end die mid-slot.
    assert!(
        summary.seeds_with_midslot_kill * 4 >= summary.seeds_run * 3,
        "only {} of {} seed(s) had a migration's source or target killed mid-slot",
        summary.seeds_with_midslot_kill,
        summary.seeds_run
    );
    let failures: Vec<String> = summary.failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} of {} seed(s) failed:\n{}",
        failures.len(),
        summary.seeds_run,
        failures.join("\n")
    );
    // Found by the 400-seed sweep, outside the range above:
    // - 20366: the target of a drain move killed mid-slot, its promoted replica holding the
    //   moved keys, every spare in-range node planned for a master that a leaving replica
    //   still protects, then the holder killed too. The holder now gets that node first.
    // - 20331: the promoted replica of a dead target holds a key of a slot still open on the
    //   source, and the plan drained it while that repair waited: with its last slot gone,
    //   Redis made it a replica and its first sync dropped the key. Moves now wait for open
    //   slots to be repaired.
    for seed in [20_331, 20_366] {
        let regression = run_many(seed..seed + 1, &cfg);
        assert!(
            regression.failures.is_empty(),
            "seed {seed}: {}",
            regression
                .failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The same scale-outs and scale-ins, in which the source of a migration stalls past the node
/// timeout in the middle of a slot (on 3 in 4 migration effects): Redis elects its replica,
/// which claims the slots it knew the source to own, and the source, awake again, hears the
/// claim and drops the keys it still held of them (or turns replica). The move then finds no
/// key left on the source; handing the slot to the target would outbid the new owner, whose
/// copies Redis would delete too (the chaos soak's loss, seed 7). No acknowledged key is lost
/// and every seed converges.
#[test]
fn a_migration_source_replaced_by_its_replica_while_stalled_loses_no_key() {
    let cfg = SimConfig {
        failure_dir: failure_dir(),
        rates: FaultRates {
            stall_migration_source: 750,
            ..FaultRates::none()
        },
        ..SimConfig::midslot_kills()
    };
    let summary = sweep(seeds(60, 40_000), cfg);
    let stalled = summary
        .seeds_with_fault
        .get("stall_migration_source")
        .copied()
        .unwrap_or(0);
    assert!(
        stalled * 2 >= summary.seeds_run,
        "only {stalled} of {} seed(s) had a migration source replaced while stalled",
        summary.seeds_run
    );
}

/// The same scale-outs and scale-ins, in which a slot's hand-over stops half-way (on 3 in 4
/// migration effects): the node to be told second does not answer, and the source's config
/// epoch rises above every other through a collision meanwhile. With the target told first
/// the source's claim won the slot back and the target dropped its keys (1,853 lost at 100
/// masters, `docs/reliability.md`); told first, the source gives up a slot it has no key of,
/// and the repair has the importing target claim it. No acknowledged key is lost and every
/// seed converges.
#[test]
fn a_hand_over_stopped_half_way_while_the_source_outbids_the_target_loses_no_key() {
    let cfg = SimConfig {
        failure_dir: failure_dir(),
        rates: FaultRates {
            collide_at_handover: 750,
            ..FaultRates::none()
        },
        ..SimConfig::midslot_kills()
    };
    let summary = sweep(seeds(60, 45_000), cfg);
    let collided = summary
        .seeds_with_fault
        .get("collide_at_handover")
        .copied()
        .unwrap_or(0);
    assert!(
        collided * 2 >= summary.seeds_run,
        "only {collided} of {} seed(s) had a hand-over stopped half-way",
        summary.seeds_run
    );
}

/// The same scale-outs and scale-ins, in which the target of a migration is killed at a
/// slot's hand-over (on 3 in 4 migration effects), right after the source was told the new
/// owner: no master claims the slot, and the target's replica holds its keys with no marker.
/// No acknowledged key is lost and every seed converges.
#[test]
fn a_target_killed_between_the_two_halves_of_a_hand_over_loses_no_key() {
    // Both orders: the source told first (Valkey 8), and the target first, so that it dies
    // having claimed the slot while its source still claims it too (Redis 7.0).
    for (server, offset) in [
        (redis_operator_sim::ServerModel::Valkey8, 50_000),
        (redis_operator_sim::ServerModel::Redis70, 51_000),
    ] {
        let cfg = SimConfig {
            failure_dir: failure_dir(),
            rates: FaultRates {
                kill_target_at_handover: 750,
                ..FaultRates::none()
            },
            server,
            ..SimConfig::midslot_kills()
        };
        let summary = sweep(seeds(60, offset), cfg);
        let killed = summary
            .seeds_with_fault
            .get("kill_target_at_handover")
            .copied()
            .unwrap_or(0);
        assert!(
            killed * 2 >= summary.seeds_run,
            "{server:?}: only {killed} of {} seed(s) had a target killed at a hand-over",
            summary.seeds_run
        );
    }
}

/// A configuration change that needs a restart (a new desired fingerprint) lands at a random
/// step of the fault window, in every seed (twice in some), with persistence in some seeds:
/// members are replaced one at a time among crashes, partitions, dropped effects and spec
/// changes. Every decision is safe, no acknowledged write is lost, and every seed converges
/// with every member on the new configuration, except shards without replica and persistence,
/// which keep the old one (a restart would empty them).
#[test]
fn a_configuration_change_needing_a_restart_during_faults_replaces_every_member_without_losing_a_write()
 {
    let cfg = SimConfig {
        fault_steps: 60,
        fingerprint_change_per_mille: 1000,
        persistent_per_mille: 250,
        failure_dir: failure_dir(),
        ..SimConfig::default()
    };
    let summary = sweep(seeds(40, 30_000), cfg);
    assert!(summary.replacements > 0, "no member was ever replaced");
}

/// The same faults and spec changes with the nodes following Redis 7.0's rules
/// (`ServerModel::Redis70`): a node keeps the mark of a slot whose owner stopped claiming it
/// through `SETSLOT NODE`, so the executor tells the target of a move first, behind the epoch
/// gate. Every decision is safe and no acknowledged write is lost there either.
#[test]
fn on_redis_7_0_rules_random_faults_and_spec_changes_never_lose_a_write() {
    let cfg = SimConfig {
        fault_steps: 60,
        server: redis_operator_sim::ServerModel::Redis70,
        failure_dir: failure_dir(),
        ..SimConfig::default()
    };
    let summary = sweep(seeds(100, 40_000), cfg);
    assert!(
        summary.seeds_with_fault.len() > 3,
        "{:?}",
        summary.seeds_with_fault
    );
}
