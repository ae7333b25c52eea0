//! Small deterministic scenarios, stepped by hand, whose traces are committed under
//! `examples/traces/` and replayed in CI: a change in the engine's decisions shows up there
//! as a difference.

use crate::apply::StepBudget;
use crate::client::Client;
use crate::cluster::Cluster;
use engine::trace::TraceRecord;
use engine::{Decision, Desired, Effect, Phase};

/// An engine-driven cluster that records a trace as it goes.
pub struct Stepper {
    pub cluster: Cluster,
    pub client: Client,
    pub desired: Desired,
    pub phase: Phase,
    pub records: Vec<TraceRecord>,
    pub step_ms: u64,
}

impl Stepper {
    pub fn new(seed: u64, desired: Desired) -> Self {
        Self {
            cluster: Cluster::new(seed, desired.node_timeout_ms),
            client: Client::default(),
            desired,
            phase: Phase::Pending,
            records: Vec::new(),
            step_ms: 1000,
        }
    }

    /// Observe, decide, record, execute (through `execute`, which may cut the plan short),
    /// write a few keys, tick. Idle records repeating the previous one are not kept, to keep
    /// traces small.
    pub fn step_with(
        &mut self,
        execute: impl FnOnce(&[Effect]) -> Vec<(Effect, StepBudget)>,
    ) -> Decision {
        let obs = self.cluster.observe();
        let decision = engine::decide(&self.desired, self.phase, &obs);
        let idle_repeat = decision.effects.is_empty()
            && self.records.last().is_some_and(|r| {
                r.decision.effects.is_empty()
                    && r.decision.phase == decision.phase
                    && r.decision.summary == decision.summary
            });
        if !idle_repeat {
            self.records.push(TraceRecord {
                time: obs.now_ms,
                spec: self.desired.clone(),
                phase_hint: self.phase,
                observation: obs,
                decision: decision.clone(),
            });
        }
        self.phase = decision.phase;
        for (effect, mut budget) in execute(&decision.effects) {
            if self.cluster.apply(&effect, &mut budget).is_err() {
                break;
            }
        }
        for _ in 0..2 {
            self.client.write(&mut self.cluster);
        }
        self.cluster.tick(self.step_ms);
        decision
    }

    pub fn step(&mut self) -> Decision {
        self.step_with(|e| {
            e.iter()
                .cloned()
                .map(|e| (e, StepBudget::unlimited()))
                .collect()
        })
    }

    /// Steps until the engine is Ready with nothing to do; false if `max` steps did not do.
    pub fn until_ready(&mut self, max: u32) -> bool {
        for _ in 0..max {
            let d = self.step();
            if d.phase == Phase::Ready && d.effects.is_empty() {
                return true;
            }
        }
        false
    }
}

fn spec(masters: u32, replicas: u32) -> Desired {
    let mut d = Desired::new(masters, replicas);
    d.node_timeout_ms = 3000;
    d
}

/// Three masters with one replica each, from nothing to Ready.
pub fn bootstrap() -> Vec<TraceRecord> {
    let mut s = Stepper::new(1, spec(3, 1));
    s.until_ready(60);
    s.records
}

/// Three masters, then four: a new master is created, introduced and given its share.
pub fn scale_out() -> Vec<TraceRecord> {
    let mut s = Stepper::new(2, spec(3, 0));
    s.until_ready(60);
    s.records.clear();
    s.desired = spec(4, 0);
    s.until_ready(120);
    s.records
}

/// A master dies; its replica takes over; the dead pod comes back as a replica.
pub fn failover() -> Vec<TraceRecord> {
    let mut s = Stepper::new(3, spec(3, 1));
    s.until_ready(60);
    s.records.clear();
    if let Some(m) = s.cluster.members.get_mut(&0) {
        m.running = false;
    }
    s.until_ready(120);
    s.records
}

/// Scale out with the operator dying in the middle of the first migration, leaving a slot
/// half-moved (migrating/importing markers, keys on both sides); the next decisions repair it.
pub fn interrupted_migration() -> Vec<TraceRecord> {
    let mut s = Stepper::new(4, spec(3, 0));
    s.until_ready(60);
    // Plant keys in the slots at the start of master #0's upper range (the ones a scale-out
    // moves first), enough that each needs several MIGRATE batches.
    if let Some(m) = s.cluster.members.get_mut(&0) {
        for slot in 4090u16..4110 {
            for k in 0..25u64 {
                let key = 1_000_000 + u64::from(slot) * 100 + k;
                m.node.keys.entry(slot).or_default().insert(key);
                s.client.acked.insert(key, slot);
            }
        }
    }
    s.records.clear();
    s.desired = spec(4, 0);
    let mut interrupted = false;
    for _ in 0..120 {
        let d = s.step_with(|effects| {
            let first = effects
                .iter()
                .position(|e| matches!(e, Effect::MigrateSlots { .. }));
            match first {
                Some(i) if !interrupted => {
                    interrupted = true;
                    let mut plan: Vec<(Effect, StepBudget)> = effects[..i]
                        .iter()
                        .cloned()
                        .map(|e| (e, StepBudget::unlimited()))
                        .collect();
                    // importing, migrating, one MIGRATE batch: then the operator dies.
                    plan.push((effects[i].clone(), StepBudget::interrupt_after(3)));
                    plan
                }
                _ => effects
                    .iter()
                    .cloned()
                    .map(|e| (e, StepBudget::unlimited()))
                    .collect(),
            }
        });
        if interrupted && d.phase == Phase::Ready && d.effects.is_empty() {
            break;
        }
    }
    s.records
}

/// A scenario: runs and returns its trace.
pub type Scenario = fn() -> Vec<TraceRecord>;

/// Every committed scenario, by file stem.
pub fn all() -> Vec<(&'static str, Scenario)> {
    vec![
        ("bootstrap", bootstrap),
        ("scale-out", scale_out),
        ("failover", failover),
        ("interrupted-migration", interrupted_migration),
    ]
}

/// JSON Lines, one record per line.
pub fn to_jsonl(records: &[TraceRecord]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r)?);
        out.push('\n');
    }
    Ok(out)
}
