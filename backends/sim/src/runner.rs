//! Seeded simulation runs: the engine drives the simulated cluster through spec changes and
//! faults, every decision is checked for safety, and after the faults stop the cluster must
//! converge to the desired shape without losing an acknowledged write.

use crate::apply::StepBudget;
use crate::client::Client;
use crate::cluster::Cluster;
use crate::faults::{self, FaultCounts, FaultRates, Partition};
use crate::rng::Rng;
use engine::invariants::{check_converged, check_decision};
use engine::trace::TraceRecord;
use engine::{ConditionKind, Desired, Observation, Phase};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Steps with faults and spec changes.
    pub fault_steps: u32,
    /// Steps allowed, once faults stop, to reach Ready with nothing to do.
    pub settle_steps: u32,
    /// Simulated time per step.
    pub step_ms: u64,
    pub node_timeout_ms: u64,
    pub writes_per_step: u32,
    /// At most this many spec changes during the fault window.
    pub max_spec_changes: u32,
    pub faults: bool,
    pub rates: FaultRates,
    /// Where a failing seed's trace goes (`seed-<S>.jsonl`).
    pub failure_dir: PathBuf,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            fault_steps: 120,
            settle_steps: 300,
            step_ms: 1000,
            node_timeout_ms: 3000,
            writes_per_step: 3,
            max_spec_changes: 3,
            faults: true,
            rates: FaultRates::default(),
            failure_dir: PathBuf::from("target/sim-failures"),
        }
    }
}

impl SimConfig {
    /// The defaults, adjusted by the environment the sweep examples read: `NOFAULTS=1` (spec
    /// changes only), `NOCHANGES=1` (no spec changes), `FAULT_STEPS=N` (the fault window; CI's
    /// test uses 60).
    pub fn from_env() -> Self {
        let set = |name: &str| std::env::var(name).is_ok();
        let mut cfg = Self {
            faults: !set("NOFAULTS"),
            ..Self::default()
        };
        if set("NOCHANGES") {
            cfg.max_spec_changes = 0;
        }
        if let Some(n) = std::env::var("FAULT_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            cfg.fault_steps = n;
        }
        cfg
    }
}

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
}

#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub step: u32,
    pub message: String,
    pub trace_path: Option<PathBuf>,
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
        self.message.starts_with("unsafe decision")
            || self.message.contains("acknowledged key(s) lost")
    }
}

/// Runs one seed. On failure the seed is run again with recording on (runs are
/// deterministic) and its trace is written to `failure_dir/seed-<S>.jsonl`.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> Result<SimReport, SimFailure> {
    let mut sink = None;
    match simulate(seed, cfg, &mut sink) {
        Ok(r) => Ok(r),
        Err((step, message)) => {
            let mut records = Some(Vec::new());
            let _ = simulate(seed, cfg, &mut records);
            let trace_path = write_trace(cfg, seed, records.unwrap_or_default());
            Err(SimFailure {
                seed,
                step,
                message,
                trace_path,
            })
        }
    }
}

/// Runs one seed and returns its full trace, whatever the outcome.
pub fn record_seed(seed: u64, cfg: &SimConfig) -> (Result<SimReport, String>, Vec<TraceRecord>) {
    let mut records = Some(Vec::new());
    let r = simulate(seed, cfg, &mut records).map_err(|(step, m)| format!("step {step}: {m}"));
    (r, records.unwrap_or_default())
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

/// What a batch of seeds did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub seeds_run: u64,
    pub steps: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub refused_effects: BTreeMap<&'static str, u64>,
    pub keys_acked: u64,
    pub keys_lost_to_faults: u64,
    /// Seeds that ended `Degraded` with slots lost for good (see `SimReport`).
    pub ended_degraded: u64,
    pub failures: Vec<SimFailure>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} seed(s), {} step(s), {} acknowledged key(s) ({} lost to faults), {} ended \
             Degraded with slots lost for good, {} violation(s)",
            self.seeds_run,
            self.steps,
            self.keys_acked,
            self.keys_lost_to_faults,
            self.ended_degraded,
            self.failures.len()
        )?;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(f, "faults: {}", faults.join(" "))?;
        let refused: Vec<String> = self
            .refused_effects
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "effects refused by Redis: {}", refused.join(" "))
    }
}

pub fn run_many(seeds: Range<u64>, cfg: &SimConfig) -> Summary {
    let mut s = Summary::default();
    for seed in seeds {
        s.seeds_run += 1;
        match run_seed(seed, cfg) {
            Ok(r) => {
                s.steps += u64::from(r.steps);
                for (k, v) in r.faults {
                    *s.faults.entry(k).or_default() += v;
                }
                for (k, v) in r.refused_effects {
                    *s.refused_effects.entry(k).or_default() += v;
                }
                s.keys_acked += r.keys_acked;
                s.keys_lost_to_faults += r.keys_lost_to_faults;
                s.ended_degraded += u64::from(r.ended_degraded);
            }
            Err(f) => {
                s.steps += u64::from(f.step);
                s.failures.push(f);
            }
        }
    }
    s
}

/// The initial spec and its later changes, all drawn from the seed.
fn pick_spec(rng: &mut Rng, node_timeout_ms: u64) -> Desired {
    let mut d = Desired::new(rng.range(3, 6) as u32, rng.range(0, 2) as u32);
    d.node_timeout_ms = node_timeout_ms;
    d
}

type StepResult<T> = Result<T, (u32, String)>;

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

fn simulate(
    seed: u64,
    cfg: &SimConfig,
    records: &mut Option<Vec<TraceRecord>>,
) -> StepResult<SimReport> {
    let mut rng = Rng::new(seed);
    let mut fault_rng = rng.fork();
    let mut cluster = Cluster::new(rng.next_u64(), cfg.node_timeout_ms);
    let mut client = Client::default();
    let mut desired = pick_spec(&mut rng, cfg.node_timeout_ms);
    let changes = if cfg.max_spec_changes == 0 {
        0
    } else {
        rng.range(0, u64::from(cfg.max_spec_changes))
    };
    let mut change_steps: Vec<u32> = (0..changes)
        .map(|_| rng.range(10, u64::from(cfg.fault_steps.max(11))) as u32)
        .collect();
    change_steps.sort_unstable();
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
            partition.until_step = None;
        }
        if change_steps.first() == Some(&step) {
            change_steps.remove(0);
            if rng.chance(500) {
                desired.masters = rng.range(3, 6) as u32;
            } else {
                desired.replicas = rng.range(0, 2) as u32;
            }
        }
        let obs = cluster.observe();
        let decision = engine::decide(&desired, phase, &obs);
        let violations = check_decision(&desired, &obs, &decision);
        let converged = step >= cfg.fault_steps
            && decision.phase == Phase::Ready
            && decision.effects.is_empty()
            && check_converged(&desired, &obs).is_empty();
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
        if let Some(r) = records.as_mut() {
            r.push(TraceRecord {
                time: obs.now_ms,
                spec: desired.clone(),
                phase_hint: hint,
                observation: obs,
                decision,
            });
        }
        if !violations.is_empty() {
            let m: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return Err((step, format!("unsafe decision: {}", m.join("; "))));
        }
        if converged || degraded_for_good {
            let missing = client.missing(&mut cluster);
            if !missing.is_empty() {
                let first: Vec<String> = missing
                    .iter()
                    .take(5)
                    .map(|(k, s)| format!("key {k} (slot {s})"))
                    .collect();
                return Err((
                    step,
                    format!(
                        "{} acknowledged key(s) lost, e.g. {}",
                        missing.len(),
                        first.join(", ")
                    ),
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
            });
        }
        let plan = if faulty {
            faults::mangle_effects(&effects, &mut fault_rng, &cfg.rates, &mut counts)
        } else {
            effects
                .into_iter()
                .map(|e| (e, StepBudget::unlimited()))
                .collect()
        };
        for (effect, mut budget) in plan {
            if let Err(e) = cluster.apply(&effect, &mut budget) {
                if !matches!(e, crate::apply::ApplyError::Interrupted) {
                    *refused.entry(effect.kind()).or_default() += 1;
                }
                // The executor stops at the first failure and observes again.
                break;
            }
        }
        // Effects can lose data too (a reset, a resync from an empty master): account only
        // for fault-made losses below, so those still count against the engine.
        for _ in 0..cfg.writes_per_step {
            client.write(&mut cluster);
        }
        if faulty {
            faults::inject_environment(
                &mut cluster,
                &mut client,
                &mut fault_rng,
                &cfg.rates,
                &mut partition,
                step,
                &mut counts,
            );
        }
        cluster.tick(cfg.step_ms);
        client.account_promotion_gaps(&mut cluster);
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
    Err((
        total,
        format!(
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
    ))
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
