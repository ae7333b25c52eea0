//! Seeded faults: what goes wrong around the operator, and what goes wrong with it.

use crate::apply::{MidSlotKill, StepBudget, Victim};
use crate::client::Client;
use crate::cluster::Cluster;
use crate::rng::Rng;
use engine::{Effect, Ordinal};
use std::collections::BTreeMap;

/// Per-step probabilities in per mille, while the fault window is open.
#[derive(Debug, Clone)]
pub struct FaultRates {
    pub crash: u32,
    pub replica_restart: u32,
    pub ip_change: u32,
    pub lose_nodes_conf: u32,
    pub partition: u32,
    /// Operator dies after some of a decision's effects.
    pub operator_crash: u32,
    /// Per effect.
    pub drop_effect: u32,
    pub duplicate_effect: u32,
    /// Per multi-step effect: the operator dies in the middle of it.
    pub interrupt_migration: u32,
    /// Per multi-step effect (`MigrateSlots`, `MoveStrayKeys`): the node sending the keys is
    /// killed (SIGKILL) in the middle of a slot, right after a `MIGRATE` batch.
    pub kill_migration_source: u32,
    /// Per multi-step effect (exclusive with the source's): the node receiving the keys is
    /// killed in the middle of a slot.
    pub kill_migration_target: u32,
    /// Per multi-step effect (exclusive with the kills): the source stalls past the node
    /// timeout mid-slot, its replica is elected and claims its slots, and the source hears it
    /// (see `Victim::StalledSource`).
    pub stall_migration_source: u32,
    /// Per multi-step effect (exclusive with the kills and the stall): at the first hand-over
    /// of a slot the source's epoch rises through a collision and the node to be told second
    /// does not answer (see `Victim::CollidingSource`).
    pub collide_at_handover: u32,
    /// Per multi-step effect (exclusive with the others above): at the first hand-over of a
    /// slot the target is killed right after the source was told (see
    /// `Victim::TargetAtHandover`).
    pub kill_target_at_handover: u32,
    /// SIGSTOP of a running member for 1-15 steps, then SIGCONT (its own random stream, so
    /// with it at 0 every other fault of a seed happens where it did before it existed).
    pub pause: u32,
    /// A master's process dies and its supervisor (a kubelet) starts it again at once, at the
    /// same address, before anyone failed it over: as a new node (the pod script removes a
    /// non-persistent node's `nodes.conf`) or, half the time, with its old identity.
    pub master_restart: u32,
}

impl FaultRates {
    /// No fault at all (build on it with struct update syntax).
    pub fn none() -> Self {
        Self {
            crash: 0,
            replica_restart: 0,
            ip_change: 0,
            lose_nodes_conf: 0,
            partition: 0,
            operator_crash: 0,
            drop_effect: 0,
            duplicate_effect: 0,
            interrupt_migration: 0,
            kill_migration_source: 0,
            kill_migration_target: 0,
            stall_migration_source: 0,
            collide_at_handover: 0,
            kill_target_at_handover: 0,
            pause: 0,
            master_restart: 0,
        }
    }
}

impl Default for FaultRates {
    fn default() -> Self {
        Self {
            crash: 20,
            replica_restart: 10,
            ip_change: 15,
            lose_nodes_conf: 3,
            partition: 10,
            operator_crash: 60,
            drop_effect: 30,
            duplicate_effect: 30,
            interrupt_migration: 80,
            kill_migration_source: 10,
            kill_migration_target: 10,
            // Off by default so the seeds of the default sweeps keep their meaning; swept on
            // its own (`seeds.rs`).
            stall_migration_source: 0,
            collide_at_handover: 0,
            kill_target_at_handover: 0,
            pause: 0,
            // Off by default: it needs `SimConfig::replicate_by_address` to mean anything.
            master_restart: 0,
        }
    }
}

/// How many faults of each kind were injected.
pub type FaultCounts = BTreeMap<&'static str, u64>;

fn count(c: &mut FaultCounts, kind: &'static str) {
    *c.entry(kind).or_default() += 1;
}

/// A partition in progress: who is cut off, until which step.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    pub until_step: Option<u32>,
}

/// Environment faults for one step: crashes, restarts, IP changes, partitions.
pub fn inject_environment(
    cluster: &mut Cluster,
    client: &mut Client,
    rng: &mut Rng,
    rates: &FaultRates,
    partition: &mut Partition,
    step: u32,
    counts: &mut FaultCounts,
) {
    let running: Vec<Ordinal> = cluster
        .members
        .values()
        .filter(|m| m.running)
        .map(|m| m.ordinal)
        .collect();
    let stopped: Vec<Ordinal> = cluster
        .members
        .values()
        .filter(|m| !m.running && m.paused.is_none())
        .map(|m| m.ordinal)
        .collect();
    if rng.chance(rates.crash)
        && let Some(o) = rng.pick(&running).copied()
        && let Some(m) = cluster.members.get_mut(&o)
    {
        m.running = false;
        count(counts, "crash");
        client.account_losses(cluster);
    }
    // A replica's process dies and is restarted at once (kubelet): it loses its memory and
    // resyncs. Sometimes it comes back on a new IP.
    let replicas: Vec<Ordinal> = running
        .iter()
        .copied()
        .filter(|o| {
            cluster
                .members
                .get(o)
                .is_some_and(|m| m.running && !m.node.is_master())
        })
        .collect();
    if rng.chance(rates.replica_restart)
        && let Some(o) = rng.pick(&replicas).copied()
    {
        if let Some(m) = cluster.members.get_mut(&o) {
            m.running = false;
            if rng.chance(500) {
                m.address_generation += 1;
                count(counts, "ip_change");
            }
        }
        cluster.restart(o);
        count(counts, "replica_restart");
        client.account_losses(cluster);
    }
    // A stopped member will come back on another IP (rescheduled elsewhere).
    if rng.chance(rates.ip_change)
        && let Some(o) = rng.pick(&stopped).copied()
        && let Some(m) = cluster.members.get_mut(&o)
    {
        m.address_generation += 1;
        count(counts, "ip_change");
    }
    if rng.chance(rates.lose_nodes_conf)
        && let Some(o) = rng.pick(&stopped).copied()
        && let Some(m) = cluster.members.get_mut(&o)
    {
        m.has_nodes_conf = false;
        count(counts, "lose_nodes_conf");
        // With persistence the dataset was on that volume too.
        client.account_losses(cluster);
    }
    match partition.until_step {
        Some(until) if step >= until => {
            cluster.heal();
            partition.until_step = None;
        }
        Some(_) => {}
        None => {
            let all = cluster.ordinals();
            if all.len() >= 3 && rng.chance(rates.partition) {
                let size = rng.range(1, ((all.len() - 1) / 2) as u64) as usize;
                let mut pool = all;
                let mut cut = std::collections::BTreeSet::new();
                for _ in 0..size {
                    let i = rng.below(pool.len() as u64) as usize;
                    cut.insert(pool.remove(i));
                }
                cluster.partition(cut);
                partition.until_step = Some(step + rng.range(3, 25) as u32);
                count(counts, "partition");
            }
        }
    }
}

/// SIGCONT of the members whose pause is over, then, by chance, a SIGSTOP of a running one
/// (a master half of the time, when there is one): it answers nobody until `until_step`.
pub fn inject_pause(
    cluster: &mut Cluster,
    rng: &mut Rng,
    rates: &FaultRates,
    step: u32,
    counts: &mut FaultCounts,
) {
    // A member resumed now has not run yet: pausing it again would only stretch its pause.
    let resumed = cluster.resume(Some(step));
    if !rng.chance(rates.pause) {
        return;
    }
    let running: Vec<(Ordinal, bool)> = cluster
        .members
        .values()
        .filter(|m| m.running && !resumed.contains(&m.ordinal))
        .map(|m| (m.ordinal, m.node.is_master()))
        .collect();
    let masters: Vec<Ordinal> = running.iter().filter(|r| r.1).map(|r| r.0).collect();
    let all: Vec<Ordinal> = running.iter().map(|r| r.0).collect();
    let pool = if rng.chance(500) && !masters.is_empty() {
        masters
    } else {
        all
    };
    if let Some(o) = rng.pick(&pool).copied() {
        let master = cluster.members.get(&o).is_some_and(|m| m.node.is_master());
        cluster.pause(o, step + rng.range(1, 15) as u32);
        count(counts, if master { "pause_master" } else { "pause" });
    }
}

/// [`FaultRates::master_restart`], drawn from `rng`, a stream of its own so that every
/// other fault of a seed stays where it was.
pub fn restart_a_master(
    cluster: &mut Cluster,
    client: &mut Client,
    rng: &mut Rng,
    rates: &FaultRates,
    counts: &mut FaultCounts,
) {
    if !rng.chance(rates.master_restart) {
        return;
    }
    let masters: Vec<Ordinal> = cluster
        .members
        .values()
        .filter(|m| m.running && m.node.is_master())
        .map(|m| m.ordinal)
        .collect();
    let new_identity = rng.chance(500);
    let Some(o) = rng.pick(&masters).copied() else {
        return;
    };
    cluster.kill(o);
    // What only the dead process held is lost with it (Redis' asynchronous window).
    client.account_losses(cluster);
    if new_identity && let Some(m) = cluster.members.get_mut(&o) {
        m.has_nodes_conf = false;
    }
    cluster.restart(o);
    count(
        counts,
        if new_identity {
            "master_restart_new_id"
        } else {
            "master_restart"
        },
    );
}

/// What the faulty operator actually executes of a decision: a prefix (it may die), with
/// effects dropped or doubled, and a step budget that may interrupt a migration midway or
/// kill one of its ends mid-slot. Kills are drawn from `kill_rng`, their own stream, so that
/// enabling them leaves every other fault of a seed where it was.
pub fn mangle_effects(
    effects: &[Effect],
    rng: &mut Rng,
    kill_rng: &mut Rng,
    rates: &FaultRates,
    counts: &mut FaultCounts,
) -> Vec<(Effect, StepBudget)> {
    let mut out = Vec::new();
    let cut = if !effects.is_empty() && rng.chance(rates.operator_crash) {
        count(counts, "operator_crash");
        rng.below(effects.len() as u64) as usize
    } else {
        effects.len()
    };
    for e in effects.iter().take(cut) {
        if rng.chance(rates.drop_effect) {
            count(counts, "drop_effect");
            continue;
        }
        let multi = matches!(
            e,
            Effect::MigrateSlots { .. } | Effect::MoveStrayKeys { .. }
        );
        let mut budget = if multi && rng.chance(rates.interrupt_migration) {
            count(counts, "interrupt_migration");
            StepBudget::interrupt_after(rng.below(40) as u32)
        } else {
            StepBudget::unlimited()
        };
        if multi {
            budget.kill = plan_kill(kill_rng, rates);
        }
        let interrupted = budget.left.is_some();
        out.push((e.clone(), budget));
        if interrupted {
            break; // the operator died inside this effect
        }
        if rng.chance(rates.duplicate_effect) {
            count(counts, "duplicate_effect");
            out.push((e.clone(), StepBudget::unlimited()));
        }
    }
    out
}

/// Whether a migration effect gets a mid-slot kill, of which end, and after how many mid-slot
/// points (0-2: early in the effect, while the first slots that hold keys are moving). The
/// kill is counted when it happens: an effect refused before any batch never reaches one.
fn plan_kill(rng: &mut Rng, rates: &FaultRates) -> Option<MidSlotKill> {
    let draw = rng.below(1000);
    // Consecutive ranges of the one draw, in this order, so a rate at 0 moves no other.
    let ranges = [
        (rates.kill_migration_source, Victim::Source),
        (rates.kill_migration_target, Victim::Target),
        (rates.stall_migration_source, Victim::StalledSource),
        (rates.collide_at_handover, Victim::CollidingSource),
        (rates.kill_target_at_handover, Victim::TargetAtHandover),
    ];
    let mut end = 0u64;
    let victim = ranges.into_iter().find_map(|(rate, victim)| {
        end += u64::from(rate);
        (draw < end).then_some(victim)
    })?;
    Some(MidSlotKill {
        after: rng.below(3) as u32,
        victim,
    })
}
