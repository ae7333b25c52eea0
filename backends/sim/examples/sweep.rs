//! A fast sweep in release without building the operator:
//! `cargo run --release -p redis-operator-sim --example sweep -- START COUNT`
//! (`NOFAULTS=1`: spec changes only; `NOCHANGES=1`: no spec changes; `FAULT_STEPS=60`: the
//! CI test's shorter fault window).
use redis_operator_sim::{SimConfig, run_many};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let start = args.first().copied().unwrap_or(0);
    let count = args.get(1).copied().unwrap_or(100);
    let cfg = SimConfig::from_env();
    let started = std::time::Instant::now();
    let summary = run_many(start..start + count, &cfg);
    println!("{summary}");
    for f in &summary.failures {
        println!("{f}");
    }
    println!("elapsed: {:?}", started.elapsed());
}
