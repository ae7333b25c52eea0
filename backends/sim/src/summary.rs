//! What a batch of seeds did, added up and printed.

use crate::apply::Victim;
use crate::faults::FaultCounts;
use crate::runner::{FailureKind, SimFailure};
use std::collections::BTreeMap;
use std::fmt;

/// What a batch of seeds did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub seeds_run: u64,
    pub steps: u64,
    pub faults: BTreeMap<&'static str, u64>,
    /// Seeds in which each kind of fault happened at least once.
    pub seeds_with_fault: BTreeMap<&'static str, u64>,
    /// Seeds in which a migration's source or target was killed mid-slot.
    pub seeds_with_midslot_kill: u64,
    pub refused_effects: BTreeMap<&'static str, u64>,
    pub keys_acked: u64,
    pub keys_lost_to_faults: u64,
    /// Keys lost by the operator (exposed on a node without a synced replica, then lost with
    /// it), over the failing seeds.
    pub keys_lost_to_operator: u64,
    /// Keys missing at the end for no fault, over the failing seeds.
    pub keys_missing: u64,
    /// Seeds that ended `Degraded` with slots lost for good (see `SimReport`).
    pub ended_degraded: u64,
    /// Seeds that changed the configuration fingerprint, and members replaced over all seeds.
    pub seeds_with_config_change: u64,
    pub replacements: u64,
    pub failures: Vec<SimFailure>,
}

impl Summary {
    /// Failing seeds by kind.
    pub fn failures_by_kind(&self) -> BTreeMap<FailureKind, Vec<u64>> {
        let mut out: BTreeMap<FailureKind, Vec<u64>> = BTreeMap::new();
        for f in &self.failures {
            out.entry(f.kind).or_default().push(f.seed);
        }
        out
    }
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
        writeln!(
            f,
            "keys lost by the operator (migrated to a node with no synced replica): {}; keys \
             missing at the end: {}",
            self.keys_lost_to_operator, self.keys_missing
        )?;
        for (kind, seeds) in self.failures_by_kind() {
            let shown: Vec<String> = seeds.iter().take(10).map(ToString::to_string).collect();
            writeln!(
                f,
                "{}: {} seed(s), e.g. {}",
                kind.name(),
                seeds.len(),
                shown.join(" ")
            )?;
        }
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(f, "faults: {}", faults.join(" "))?;
        writeln!(
            f,
            "seeds with a migration's source or target killed mid-slot: {}",
            self.seeds_with_midslot_kill
        )?;
        writeln!(
            f,
            "seeds with a configuration change needing a restart: {} (converged ones: {} \
             member(s) replaced)",
            self.seeds_with_config_change, self.replacements
        )?;
        let refused: Vec<String> = self
            .refused_effects
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "effects refused by Redis: {}", refused.join(" "))
    }
}

impl Summary {
    pub(crate) fn add_faults(&mut self, faults: &FaultCounts) {
        for (k, v) in faults {
            *self.faults.entry(k).or_default() += v;
            *self.seeds_with_fault.entry(k).or_default() += 1;
        }
        let kills = [Victim::Source, Victim::Target];
        if kills.iter().any(|v| faults.contains_key(v.fault_kind())) {
            self.seeds_with_midslot_kill += 1;
        }
    }
}
