//! Time per `decide` call and per rebalance plan on clusters of 3, 100 and 1000 masters.
//! Run with `cargo bench -p redis-operator-engine`. Prints a table; asserts nothing.

#[path = "../tests/fixture.rs"]
mod fixture;

use redis_operator_engine::planner::{self, MasterSlots};
use redis_operator_engine::slots::{even_split, expand};
use redis_operator_engine::{Desired, Phase, decide};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn time<F: FnMut()>(mut f: F) -> (Duration, u32) {
    // Run for at least ~300 ms (and at least 3 calls) and report the mean.
    let start = Instant::now();
    let mut n = 0;
    while n < 3 || start.elapsed() < Duration::from_millis(300) {
        f();
        n += 1;
    }
    (start.elapsed() / n, n)
}

fn main() {
    println!("{:<40} {:>14} {:>8}", "case", "per call", "calls");
    for masters in [3u32, 100, 1000] {
        // A converged cluster with one replica per master: the steady-state health check.
        let nodes = fixture::healthy(masters, 1);
        let obs = fixture::observe(&nodes, false, 0);
        let want = Desired::new(masters, 1);
        let (t, n) = time(|| {
            black_box(decide(&want, Phase::Ready, black_box(&obs)));
        });
        println!(
            "{:<40} {:>14.3?} {:>8}",
            format!("decide, ready, {masters} masters x1"),
            t,
            n
        );

        // Scale out by one master: the decision carries the full rebalance plan.
        let mut nodes = fixture::healthy(masters, 0);
        nodes.push(fixture::Node::new(masters));
        let obs = fixture::observe(&nodes, false, 0);
        let want = Desired::new(masters + 1, 0);
        let (t, n) = time(|| {
            black_box(decide(&want, Phase::Ready, black_box(&obs)));
        });
        println!(
            "{:<40} {:>14.3?} {:>8}",
            format!("decide, scale out, {masters}+1 masters"),
            t,
            n
        );

        let split = even_split(masters);
        let mut input: Vec<MasterSlots<u32>> = (0..masters)
            .map(|i| MasterSlots {
                key: i,
                slots: expand(&[split[i as usize]]).collect(),
                weight: 1,
            })
            .collect();
        input.push(MasterSlots {
            key: masters,
            slots: Vec::new(),
            weight: 1,
        });
        let (t, n) = time(|| {
            black_box(planner::plan(black_box(&input), 2));
        });
        println!(
            "{:<40} {:>14.3?} {:>8}",
            format!("plan, {masters}+1 masters"),
            t,
            n
        );
    }
}
