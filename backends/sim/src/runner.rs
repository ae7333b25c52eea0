//! Seeded simulation runs: the engine drives the simulated cluster through spec changes and
//! faults, every decision is checked for safety, and after the faults stop the cluster must
//! converge to the desired shape without losing an acknowledged write.

use crate::apply::{ApplyError, StepBudget, Victim};
use crate::client::{Client, slot_of};
use crate::cluster::Cluster;
pub use crate::config::SimConfig;
use crate::faults::{self, FaultCounts, Partition};
use crate::node::NodeKey;
use crate::rng::Rng;
pub use crate::summary::Summary;
use engine::invariants::{check_converged, check_decision};
use engine::trace::TraceRecord;
use engine::{ConditionKind, Desired, Observation, Phase};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct SimReport {
    pub seed: u64,
    pub steps: u32,
    pub faults: FaultCounts,
    /// Effects Redis refused, by kind.
    pub refused_effects: BTreeMap<&'static str, u64>,
    pub keys_acked: u64,
    pub keys_lost_to_faults: u64,
    pub final_spec: Desired,
    /// Ended `Degraded` rather than `Ready`: a master with no replica able to take over lost
    /// its data and its identity to the faults, and the engine reports its slots as lost
    /// instead of re-assigning them empty on its own.
    pub ended_degraded: bool,
    /// Changes of the desired configuration fingerprint, and members replaced (`ReplaceNode`
    /// applied) for them.
    pub config_changes: u32,
    pub replacements: u64,
}

/// How a seed failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// `check_decision` found a violation.
    UnsafeDecision,
    /// Keys the operator had migrated to a node with no synced replica (the spec asking for
    /// replicas) died with that node.
    LostByOperator,
    /// At the end, acknowledged keys not lost to faults were missing from their owners.
    KeysMissing,
    /// No `Ready` (or accepted `Degraded`) end within the settle steps.
    NotConverged,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::UnsafeDecision => "unsafe decision",
            FailureKind::LostByOperator => "keys lost by the operator",
            FailureKind::KeysMissing => "keys missing at the end",
            FailureKind::NotConverged => "did not converge",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub step: u32,
    pub kind: FailureKind,
    pub message: String,
    pub trace_path: Option<PathBuf>,
    /// Faults injected before the failure.
    pub faults: FaultCounts,
    /// Effects Redis refused before the failure, by kind.
    pub refused_effects: BTreeMap<&'static str, u64>,
    /// Acknowledged keys lost by the operator (`FailureKind::LostByOperator`) or missing at
    /// the end (`FailureKind::KeysMissing`).
    pub keys_lost: u64,
}

/// Why `simulate` stopped early.
#[derive(Debug, Clone)]
struct Stop {
    step: u32,
    kind: FailureKind,
    message: String,
    faults: FaultCounts,
    refused: BTreeMap<&'static str, u64>,
    keys_lost: u64,
}

impl Stop {
    fn new(
        (faults, refused): (&FaultCounts, &BTreeMap<&'static str, u64>),
        step: u32,
        kind: FailureKind,
        message: String,
        keys_lost: u64,
    ) -> Self {
        Self {
            step,
            kind,
            message,
            faults: faults.clone(),
            refused: refused.clone(),
            keys_lost,
        }
    }
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed at step {}: {}",
            self.seed, self.step, self.message
        )?;
        match &self.trace_path {
            Some(p) => write!(f, " (trace: {})", p.display()),
            None => write!(f, " (trace not written)"),
        }
    }
}

impl std::error::Error for SimFailure {}

impl SimFailure {
    /// A safety violation (an unsafe decision, or an acknowledged write lost), as opposed to
    /// a liveness one (the cluster did not converge in time).
    pub fn is_safety(&self) -> bool {
        self.kind != FailureKind::NotConverged
    }
}

/// Runs one seed. On failure the seed is run again with recording on (runs are
/// deterministic) and its trace is written to `failure_dir/seed-<S>.jsonl`.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> Result<SimReport, SimFailure> {
    let mut sink = None;
    match simulate(seed, cfg, &mut sink) {
        Ok(r) => Ok(r),
        Err(stop) => {
            let mut recording = Some(Recording::default());
            let _ = simulate(seed, cfg, &mut recording);
            let records = recording.map(|r| r.records).unwrap_or_default();
            let trace_path = write_trace(cfg, seed, records);
            Err(SimFailure {
                seed,
                step: stop.step,
                kind: stop.kind,
                message: stop.message,
                trace_path,
                faults: stop.faults,
                refused_effects: stop.refused,
                keys_lost: stop.keys_lost,
            })
        }
    }
}

/// Runs one seed and returns its full trace, whatever the outcome.
pub fn record_seed(seed: u64, cfg: &SimConfig) -> (Result<SimReport, String>, Vec<TraceRecord>) {
    let (r, recording) = record_seed_with_faults(seed, cfg);
    (r, recording.records)
}

/// A seed's trace and the faults injected along it, which the trace format does not carry.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub records: Vec<TraceRecord>,
    /// `(index of the record, fault kind)`: injected at or right after that record's
    /// decision (while its effects ran, or before the next observation).
    pub faults: Vec<(usize, &'static str)>,
}

/// Like [`record_seed`], with the faults injected at each step (for the HTML timeline).
pub fn record_seed_with_faults(
    seed: u64,
    cfg: &SimConfig,
) -> (Result<SimReport, String>, Recording) {
    let mut recording = Some(Recording::default());
    let r =
        simulate(seed, cfg, &mut recording).map_err(|s| format!("step {}: {}", s.step, s.message));
    (r, recording.unwrap_or_default())
}

/// The faults counted in `after` and not in `before`, one entry per injection.
fn new_faults(before: &FaultCounts, after: &FaultCounts) -> Vec<&'static str> {
    after
        .iter()
        .flat_map(|(&kind, &n)| {
            let was = before.get(kind).copied().unwrap_or(0);
            std::iter::repeat_n(kind, n.saturating_sub(was) as usize)
        })
        .collect()
}

fn write_trace(cfg: &SimConfig, seed: u64, records: Vec<TraceRecord>) -> Option<PathBuf> {
    std::fs::create_dir_all(&cfg.failure_dir).ok()?;
    let path = cfg.failure_dir.join(format!("seed-{seed}.jsonl"));
    let mut text = String::new();
    for r in &records {
        text.push_str(&serde_json::to_string(r).ok()?);
        text.push('\n');
    }
    std::fs::write(&path, text).ok()?;
    Some(path)
}

pub fn run_many(seeds: Range<u64>, cfg: &SimConfig) -> Summary {
    let mut s = Summary::default();
    for seed in seeds {
        s.seeds_run += 1;
        match run_seed(seed, cfg) {
            Ok(r) => {
                s.steps += u64::from(r.steps);
                s.add_faults(&r.faults);
                for (k, v) in r.refused_effects {
                    *s.refused_effects.entry(k).or_default() += v;
                }
                s.keys_acked += r.keys_acked;
                s.keys_lost_to_faults += r.keys_lost_to_faults;
                s.ended_degraded += u64::from(r.ended_degraded);
                s.seeds_with_config_change += u64::from(r.config_changes > 0);
                s.replacements += r.replacements;
            }
            Err(f) => {
                s.steps += u64::from(f.step);
                s.add_faults(&f.faults);
                for (k, v) in &f.refused_effects {
                    *s.refused_effects.entry(k).or_default() += v;
                }
                match f.kind {
                    FailureKind::LostByOperator => s.keys_lost_to_operator += f.keys_lost,
                    FailureKind::KeysMissing => s.keys_missing += f.keys_lost,
                    _ => {}
                }
                s.failures.push(f);
            }
        }
    }
    s
}

/// The initial spec and its later changes, all drawn from the seed.
/// Live settings a spec change may ask for (nodes start with "default" for each).
fn pick_live_config(rng: &mut Rng) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    out.insert(
        "maxmemory".to_string(),
        ["104857600", "209715200"][rng.range(0, 1) as usize].to_string(),
    );
    if rng.chance(500) {
        out.insert("maxmemory-policy".to_string(), "allkeys-lru".to_string());
    }
    out
}

fn pick_spec(rng: &mut Rng, cfg: &SimConfig) -> Desired {
    let (lo, hi) = cfg.replicas;
    let mut d = Desired::new(
        rng.range(3, 6) as u32,
        rng.range(u64::from(lo), u64::from(hi)) as u32,
    );
    d.node_timeout_ms = cfg.node_timeout_ms;
    d
}

/// Every member runs the desired configuration, unless a restart would lose data: shards
/// without a replica and without persistence keep the old one (the engine refuses and says
/// so), and only then.
fn rolled_out(desired: &Desired, obs: &Observation) -> bool {
    if desired.replicas == 0 && !desired.persistent {
        return true;
    }
    obs.members
        .values()
        .all(|m| m.fingerprint.is_none() || m.fingerprint == desired.fingerprint)
}

/// A stream of its own for what later versions added (persistence, mid-slot kills), so that
/// a seed keeps every earlier draw, and its old runs reproduce, when those are off.
/// A failover decided for a replica whose master is only paused (its process runs; SIGSTOP),
/// before Redis itself could have replaced it: the early path is for masters whose process
/// is gone, never for a silence. Redis flags a silent master failed after the node timeout
/// and elects its replica; the engine may force that election only after twice the node
/// timeout (`engine::failover`), so anything sooner is a violation.
fn forced_over_a_paused_master(
    cluster: &Cluster,
    decision: &engine::Decision,
    node_timeout_ms: u64,
) -> Option<engine::invariants::Violation> {
    decision.effects.iter().find_map(|e| {
        let engine::Effect::Failover { on, mode } = e else {
            return None;
        };
        let master = cluster.members.get(on)?.node.master?;
        let paused = cluster
            .members
            .values()
            .find(|m| m.node.key == master)?
            .paused?;
        let silent = cluster.now_ms.saturating_sub(paused.since_ms);
        (silent < 2 * node_timeout_ms).then(|| engine::invariants::Violation {
            message: format!(
                "failover ({mode:?}) of #{on} while its master is only paused, silent for \
                     {silent} ms"
            ),
        })
    })
}

fn extra_rng(seed: u64) -> Rng {
    Rng::new(crate::rng::mix(seed ^ 0x6d69_6473_6c6f_7421))
}

type StepResult<T> = Result<T, Stop>;

/// Steps after the faults stop before a `Degraded` end is accepted: failovers and restarts
/// still under way must have had their chance.
const DEGRADED_GRACE_STEPS: u32 = 60;

/// Some slot is served by no live master, and every view that lists an owner for such a slot
/// lists an id that no member runs any more.
fn slots_lost_for_good(cluster: &Cluster, obs: &Observation) -> bool {
    let live: std::collections::BTreeSet<&str> = cluster
        .members
        .values()
        .map(|m| cluster.id(m.node.key))
        .collect();
    let mut served = vec![false; usize::from(engine::SLOT_COUNT)];
    for state in obs.members.values().filter_map(|m| m.redis.as_ref()) {
        if let Some(me) = state.myself().filter(|me| me.flags.master) {
            for s in engine::slots::expand(&me.slots) {
                served[usize::from(s)] = true;
            }
        }
    }
    if served.iter().all(|s| *s) {
        return false;
    }
    obs.members
        .values()
        .filter_map(|m| m.redis.as_ref())
        .flat_map(|state| state.nodes.iter())
        .filter(|e| engine::slots::expand(&e.slots).any(|s| !served[usize::from(s)]))
        .all(|e| !live.contains(e.id.as_str()))
}

fn simulate(seed: u64, cfg: &SimConfig, records: &mut Option<Recording>) -> StepResult<SimReport> {
    let mut rng = Rng::new(seed);
    let mut fault_rng = rng.fork();
    let mut kill_rng = extra_rng(seed);
    // Pauses (SIGSTOP) draw from a stream of their own, so seeds keep their other draws.
    let mut pause_rng = Rng::new(crate::rng::mix(seed ^ 0x7061_7573_6564_2121));
    // A stream of its own, so seeds keep their other draws.
    let mut config_rng = Rng::new(crate::rng::mix(seed ^ 0x636f_6e66_6967_2121));
    let mut cluster = Cluster::new(rng.next_u64(), cfg.node_timeout_ms);
    cluster.server = cfg.server;
    let mut client = Client::default();
    let mut desired = pick_spec(&mut rng, cfg);
    desired.persistent = kill_rng.chance(cfg.persistent_per_mille);
    cluster.persistent = desired.persistent;
    cluster.replicate_by_address = cfg.replicate_by_address;
    cluster.migrate_batch = cfg.migrate_batch;
    let changes = if cfg.max_spec_changes == 0 {
        0
    } else {
        rng.range(
            u64::from(cfg.min_spec_changes.min(cfg.max_spec_changes)),
            u64::from(cfg.max_spec_changes),
        )
    };
    let mut change_steps: Vec<u32> = (0..changes)
        .map(|_| rng.range(10, u64::from(cfg.fault_steps.max(11))) as u32)
        .collect();
    change_steps.sort_unstable();
    // Configuration changes that need a restart, on a stream of their own (seeds keep every
    // other draw). Every member starts with the first configuration.
    let mut roll_rng = Rng::new(crate::rng::mix(seed ^ 0x726f_6c6c_696e_6721));
    let mut restart_rng = Rng::new(crate::rng::mix(seed ^ 0x7265_7374_6172_7421));
    let mut generation = 1;
    desired.fingerprint = Some(format!("config-{generation}"));
    cluster.fingerprint = desired.fingerprint.clone();
    let mut roll_steps: Vec<u32> = Vec::new();
    if roll_rng.chance(cfg.fingerprint_change_per_mille) {
        let count = if roll_rng.chance(250) { 2 } else { 1 };
        roll_steps = (0..count)
            .map(|_| roll_rng.range(5, u64::from(cfg.fault_steps.max(6))) as u32)
            .collect();
        roll_steps.sort_unstable();
    }
    let mut config_changes = 0;
    let mut replacements = 0;
    let mut counts = FaultCounts::new();
    let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut partition = Partition::default();
    let mut phase = Phase::Pending;
    let total = cfg.fault_steps + cfg.settle_steps;
    // Debugging aid: `SIM_WATCH_KEY=<key id>` prints, every step, who holds that key.
    let watch: Option<u64> = std::env::var("SIM_WATCH_KEY")
        .ok()
        .and_then(|v| v.parse().ok());
    // `SIM_WATCH_SLOT=<slot>`: every step, each node's owner of that slot (and its epoch).
    let watch_slot: Option<u16> = std::env::var("SIM_WATCH_SLOT")
        .ok()
        .and_then(|v| v.parse().ok());
    for step in 0..total {
        let faulty = cfg.faults && step < cfg.fault_steps;
        if step == cfg.fault_steps {
            cluster.heal();
            let _ = cluster.resume(None);
            partition.until_step = None;
        }
        if change_steps.first() == Some(&step) {
            change_steps.remove(0);
            if config_rng.chance(cfg.config_change_per_mille) {
                desired.live_config = pick_live_config(&mut config_rng);
            }
            if rng.chance(cfg.masters_change_per_mille) {
                desired.masters = rng.range(3, 6) as u32;
            } else {
                let (lo, hi) = cfg.replicas;
                desired.replicas = rng.range(u64::from(lo), u64::from(hi)) as u32;
            }
        }
        while roll_steps.first() == Some(&step) {
            roll_steps.remove(0);
            config_changes += 1;
            generation += 1;
            desired.fingerprint = Some(format!("config-{generation}"));
            cluster.fingerprint = desired.fingerprint.clone();
        }
        let obs = cluster.observe();
        let decision = engine::decide(&desired, phase, &obs);
        let mut violations = check_decision(&desired, &obs, &decision);
        violations.extend(forced_over_a_paused_master(
            &cluster,
            &decision,
            cfg.node_timeout_ms,
        ));
        let converged = step >= cfg.fault_steps
            && decision.phase == Phase::Ready
            && decision.effects.is_empty()
            && check_converged(&desired, &obs).is_empty()
            && rolled_out(&desired, &obs);
        // The other acceptable end: `Degraded`, nothing left to do, and every slot no live
        // master serves is listed only under ids that no member runs any more: their master
        // died with its data, without a replica able to take over, and came back (if at all)
        // as a new node. The engine must say so and must not re-assign them empty by itself.
        let degraded_for_good = !converged
            && step >= cfg.fault_steps + DEGRADED_GRACE_STEPS
            && decision.effects.is_empty()
            && decision.is_true(ConditionKind::Degraded)
            && slots_lost_for_good(&cluster, &obs);
        let hint = phase;
        phase = decision.phase;
        let effects = decision.effects.clone();
        let counts_before = records.as_ref().map(|_| counts.clone());
        if let Some(r) = records.as_mut() {
            r.records.push(TraceRecord {
                time: obs.now_ms,
                spec: desired.clone(),
                phase_hint: hint,
                observation: obs,
                decision,
            });
        }
        if !violations.is_empty() {
            let m: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return Err(Stop::new(
                (&counts, &refused),
                step,
                FailureKind::UnsafeDecision,
                format!("unsafe decision: {}", m.join("; ")),
                0,
            ));
        }
        if converged || degraded_for_good {
            let missing = client.missing(&mut cluster);
            if !missing.is_empty() {
                let first: Vec<String> = missing
                    .iter()
                    .take(5)
                    .map(|(k, s)| format!("key {k} (slot {s})"))
                    .collect();
                return Err(Stop::new(
                    (&counts, &refused),
                    step,
                    FailureKind::KeysMissing,
                    format!(
                        "{} acknowledged key(s) lost, e.g. {}",
                        missing.len(),
                        first.join(", ")
                    ),
                    missing.len() as u64,
                ));
            }
            return Ok(SimReport {
                seed,
                steps: step + 1,
                faults: counts,
                refused_effects: refused,
                keys_acked: client.acked.len() as u64,
                keys_lost_to_faults: client.lost_to_faults.len() as u64,
                final_spec: desired,
                ended_degraded: degraded_for_good,
                config_changes,
                replacements,
            });
        }
        let plan = if faulty {
            faults::mangle_effects(
                &effects,
                &mut fault_rng,
                &mut kill_rng,
                &cfg.rates,
                &mut counts,
            )
        } else {
            effects
                .into_iter()
                .map(|e| (e, StepBudget::unlimited()))
                .collect()
        };
        cluster.exposure_wanted = desired.replicas >= 1;
        for (effect, mut budget) in plan {
            let applied = cluster.apply(&effect, &mut budget);
            let stalls = std::mem::take(&mut cluster.stalled_sources);
            if stalls > 0 {
                *counts
                    .entry(Victim::StalledSource.fault_kind())
                    .or_default() += stalls;
            }
            match applied {
                Ok(()) => {
                    if matches!(effect, engine::Effect::ReplaceNode { .. }) {
                        replacements += 1;
                    }
                }
                Err(ApplyError::Interrupted) => break,
                // The effect stopped at a node that did not answer: nothing is lost to the
                // fault itself, so nothing is excused.
                Err(ApplyError::NoAnswer { victim, .. }) => {
                    *counts.entry(victim.fault_kind()).or_default() += 1;
                    break;
                }
                Err(ApplyError::Killed { victim, .. }) => {
                    *counts.entry(victim.fault_kind()).or_default() += 1;
                    client.account_losses(&cluster);
                    // The executor's next command to the dead node fails: it stops here.
                    break;
                }
                Err(_) => {
                    *refused.entry(effect.kind()).or_default() += 1;
                    // The executor stops at the first failure and observes again.
                    break;
                }
            }
        }
        // Effects can lose data too (a reset, a resync from an empty master): account only
        // for fault-made losses below, so those still count against the engine.
        for _ in 0..cfg.writes_per_step {
            client.write(&mut cluster);
        }
        if faulty {
            client.note_dead(&cluster);
            faults::inject_environment(
                &mut cluster,
                &mut client,
                &mut fault_rng,
                &cfg.rates,
                &mut partition,
                step,
                &mut counts,
            );
            faults::inject_pause(&mut cluster, &mut pause_rng, &cfg.rates, step, &mut counts);
            faults::restart_a_master(
                &mut cluster,
                &mut client,
                &mut restart_rng,
                &cfg.rates,
                &mut counts,
            );
        }
        if let (Some(r), Some(before)) = (records.as_mut(), &counts_before) {
            let index = r.records.len().saturating_sub(1);
            r.faults
                .extend(new_faults(before, &counts).into_iter().map(|k| (index, k)));
        }
        cluster.tick(cfg.step_ms);
        client.account_promotion_gaps(&mut cluster);
        cluster.prune_exposure(slot_of);
        if !client.lost_to_operator.is_empty() {
            return Err(Stop::new(
                (&counts, &refused),
                step,
                FailureKind::LostByOperator,
                lost_by_operator(&cluster, &client, &desired),
                client.lost_to_operator.len() as u64,
            ));
        }
        if let Some(key) = watch {
            watch_key(&cluster, &client, key, step);
        }
        if let Some(slot) = watch_slot {
            self::watch_slot(&cluster, slot, step);
        }
    }
    let obs = cluster.observe();
    let d = engine::decide(&desired, phase, &obs);
    let why: Vec<String> = check_converged(&desired, &obs)
        .iter()
        .map(ToString::to_string)
        .collect();
    Err(Stop {
        step: total,
        kind: FailureKind::NotConverged,
        faults: counts,
        refused,
        keys_lost: 0,
        message: format!(
            "did not converge within {} steps after faults stopped: phase {}, {} effect(s) pending ({}), {}",
            cfg.settle_steps,
            d.phase,
            d.effects.len(),
            d.effects
                .iter()
                .take(3)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            if why.is_empty() {
                "shape ok".to_string()
            } else {
                why.join("; ")
            }
        ),
    })
}

/// The failure message for keys lost by the operator: which node held them, and why they
/// count against the operator.
fn lost_by_operator(cluster: &Cluster, client: &Client, desired: &Desired) -> String {
    let mut by_holder: BTreeMap<NodeKey, Vec<u64>> = BTreeMap::new();
    for (key, holder) in &client.lost_to_operator {
        by_holder.entry(*holder).or_default().push(*key);
    }
    let holders: Vec<String> = by_holder
        .iter()
        .map(|(h, keys)| {
            let who = cluster
                .ordinal_of(*h)
                .map_or_else(|| cluster.id(*h).to_string(), |o| format!("#{o}"));
            let first: Vec<String> = keys
                .iter()
                .take(3)
                .map(|k| format!("key {k} (slot {})", slot_of(*k)))
                .collect();
            format!("{} on {who}, e.g. {}", keys.len(), first.join(", "))
        })
        .collect();
    format!(
        "{} acknowledged key(s) lost by the operator: migrated to a master with no synced \
         replica (the spec asks for {} replica(s)), then lost with it: {}",
        client.lost_to_operator.len(),
        desired.replicas,
        holders.join("; ")
    )
}

fn watch_slot(cluster: &Cluster, slot: u16, step: u32) {
    let views: Vec<String> = cluster
        .members
        .values()
        .filter(|m| m.running)
        .map(|m| {
            let n = &m.node;
            let owner = n.owner(slot);
            let id = cluster.id(owner);
            let open = match (n.migrating.get(&slot), n.importing.get(&slot)) {
                (Some(_), _) => "M",
                (_, Some(_)) => "I",
                _ => "",
            };
            format!(
                "#{}{}:{}@{}{}",
                m.ordinal,
                if n.is_master() { "M" } else { "R" },
                id.get(..6).unwrap_or("-"),
                n.epoch_of(owner),
                open
            )
        })
        .collect();
    eprintln!("step {step}: slot {slot}: {}", views.join(" "));
}

fn watch_key(cluster: &Cluster, client: &Client, key: u64, step: u32) {
    let Some(slot) = client.acked.get(&key) else {
        return;
    };
    let holders: Vec<String> = cluster
        .members
        .values()
        .filter(|m| m.node.holds(*slot, key))
        .map(|m| {
            let role = if m.node.is_master() { "M" } else { "R" };
            format!(
                "#{}{}{}",
                m.ordinal,
                role,
                if m.running { "" } else { "(down)" }
            )
        })
        .collect();
    eprintln!(
        "step {step}: key {key} (slot {slot}) on {}",
        holders.join(" ")
    );
}
