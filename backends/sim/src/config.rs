//! What a simulation run does: how long, which faults, which spec changes, drawn how often.

use crate::faults::FaultRates;
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
    /// At least this many (when `max_spec_changes` allows).
    pub min_spec_changes: u32,
    /// Chance, per mille, that a spec change is to the number of masters (a scale-out or
    /// scale-in, which moves slots) rather than to the number of replicas.
    pub masters_change_per_mille: u32,
    /// Replicas per master of the initial spec and of later changes: drawn in this range.
    pub replicas: (u32, u32),
    /// Chance, per mille, that the seed's spec asks for persistence.
    pub persistent_per_mille: u32,
    /// Chance, per mille, that a spec change also changes the live settings (`maxmemory`,
    /// `maxmemory-policy`), which the engine applies with `CONFIG SET`.
    pub config_change_per_mille: u32,
    /// Chance, per mille, that the seed changes the desired configuration fingerprint (a
    /// setting that needs a restart) during the fault window, once or (one time in four)
    /// twice: every member is then replaced with the new configuration, one at a time.
    pub fingerprint_change_per_mille: u32,
    /// Keys per `MIGRATE` batch.
    pub migrate_batch: usize,
    pub faults: bool,
    pub rates: FaultRates,
    /// Where a failing seed's trace goes (`seed-<S>.jsonl`).
    pub failure_dir: PathBuf,
    /// Replicas follow their dead master's address, as Redis does (see
    /// `Cluster::replicate_by_address`); off by default, see docs/simulator.md.
    pub replicate_by_address: bool,
    /// Whose rules the nodes follow where server versions differ (the mark of a slot whose
    /// owner stopped claiming it, and so the executor's hand-over order).
    pub server: crate::ServerModel,
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
            min_spec_changes: 0,
            masters_change_per_mille: 500,
            replicas: (0, 2),
            persistent_per_mille: 0,
            config_change_per_mille: 300,
            // Off by default so that seeds pinned by earlier sweeps keep their runs.
            fingerprint_change_per_mille: 0,
            migrate_batch: crate::apply::MIGRATE_BATCH,
            faults: true,
            rates: FaultRates::default(),
            replicate_by_address: false,
            server: crate::ServerModel::default(),
            failure_dir: PathBuf::from("target/sim-failures"),
        }
    }
}

impl SimConfig {
    /// The defaults, adjusted by the environment the sweep examples read: `NOFAULTS=1` (spec
    /// changes only), `NOCHANGES=1` (no spec changes), `FAULT_STEPS=N` (the fault window; CI's
    /// test uses 60), `NOKILLS=1` (no mid-slot kill of a migration's source or target),
    /// `MIDSLOT=1` (the mid-slot kill sweep's settings, see `SimConfig::midslot_kills`),
    /// `PAUSE=N` (a SIGSTOP of a member in N ‰ of the steps),
    /// `ROLLING=N` (a configuration change needing a restart in N per mille of the seeds),
    /// `PERSISTENT=N` (persistence in N per mille of the seeds), `MASTER_RESTARTS=N` (a
    /// master restarted at once by its supervisor, N per mille of the steps), `BY_ADDRESS=1`
    /// (replicas follow a dead master's address), `REDIS70=1` (Redis 7.0's rules, see
    /// `ServerModel::Redis70`).
    pub fn from_env() -> Self {
        let set = |name: &str| std::env::var(name).is_ok();
        let base = if set("MIDSLOT") {
            Self::midslot_kills()
        } else {
            Self::default()
        };
        let mut cfg = Self {
            faults: !set("NOFAULTS"),
            ..base
        };
        if set("NOCHANGES") {
            cfg.max_spec_changes = 0;
        }
        if set("NOKILLS") {
            cfg.rates.kill_migration_source = 0;
            cfg.rates.kill_migration_target = 0;
        }
        if let Some(n) = std::env::var("ROLLING").ok().and_then(|v| v.parse().ok()) {
            cfg.fingerprint_change_per_mille = n;
        }
        if let Some(n) = std::env::var("PERSISTENT")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            cfg.persistent_per_mille = n;
        }
        if let Some(n) = std::env::var("PAUSE").ok().and_then(|v| v.parse().ok()) {
            cfg.rates.pause = n;
        }
        if let Some(n) = std::env::var("MASTER_RESTARTS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            cfg.rates.master_restart = n;
        }
        if set("BY_ADDRESS") {
            cfg.replicate_by_address = true;
        }
        if set("REDIS70") {
            cfg.server = crate::ServerModel::Redis70;
        }
        if let Some(n) = std::env::var("FAULT_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            cfg.fault_steps = n;
        }
        cfg
    }

    /// The mid-slot kill sweep: scale-outs and scale-ins (1 to 3 changes of the number of
    /// masters) with one or two replicas per master, a writer busy enough that most moved
    /// slots hold keys, 2-key `MIGRATE` batches so a slot stays half-moved for several
    /// batches, no fault but killing a migration's source or target mid-slot (on 3 in 4
    /// migration effects), and persistence on 1 seed in 8.
    pub fn midslot_kills() -> Self {
        Self {
            fault_steps: 60,
            writes_per_step: 10,
            min_spec_changes: 1,
            max_spec_changes: 3,
            masters_change_per_mille: 1000,
            replicas: (1, 2),
            persistent_per_mille: 125,
            migrate_batch: 2,
            rates: FaultRates {
                kill_migration_source: 375,
                kill_migration_target: 375,
                ..FaultRates::none()
            },
            ..Self::default()
        }
    }
}
