//! Runs one seed with the sweep's settings and prints its result:
//! `cargo run --release -p redis-operator-sim --example one -- SEED` (`NOFAULTS=1`,
//! `NOCHANGES=1` as `sweep`; `FAULT_STEPS=60` for the CI test's fault window).
use redis_operator_sim::{SimConfig, run_seed};

fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let cfg = SimConfig::from_env();
    match run_seed(seed, &cfg) {
        Ok(r) if r.ended_degraded => println!(
            "seed {seed}: ended Degraded (slots lost for good with their master) after {} steps",
            r.steps
        ),
        Ok(r) => println!("seed {seed}: converged in {} steps", r.steps),
        Err(f) => println!("{f}"),
    }
}
