//! Time per `decide` call and per rebalance plan on clusters of 3, 25, 100 and 1000 masters with
//! one replica each, and how each figure grows with the size.
//!
//! Run with `cargo bench -p redis-operator-engine`; `cargo bench -p redis-operator-engine -- 100`
//! runs one size only. Prints tables; asserts nothing.
//!
//! The peer measured in the same run is the *floor*: one pass that reads every stored entry once
//! (its id, flags, address, master, epoch and slots): each distinct shared base once and each
//! view's own differences, which is what any decision that looks at every view must at least
//! pay. A 1000 × 1 observation holds 2,000 views of 2,000 entries each (4 million entries as
//! lists), stored as one shared base of 2,000 entries and one own line per view.

#[path = "../tests/fixture.rs"]
mod fixture;

use redis_operator_engine::planner::{self, MasterSlots};
use redis_operator_engine::slots::{even_split, expand};
use redis_operator_engine::{Desired, Observation, Phase, decide};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [u32; 4] = [3, 25, 100, 1000];

/// Runs `f` for at least ~300 ms and at least 3 times; returns the median call and the count.
fn time<F: FnMut()>(mut f: F) -> (Duration, usize) {
    let start = Instant::now();
    let mut calls = Vec::new();
    while calls.len() < 3 || start.elapsed() < Duration::from_millis(300) {
        let t = Instant::now();
        f();
        calls.push(t.elapsed());
    }
    calls.sort();
    (calls[calls.len() / 2], calls.len())
}

/// Reads every stored entry once (each distinct base, then each view's differences): the least
/// a decision over every view costs.
fn floor(obs: &Observation) -> u64 {
    let mut acc = 0u64;
    let mut bases = BTreeSet::new();
    for m in obs.members.values() {
        let Some(state) = &m.redis else { continue };
        let view = &state.nodes;
        let base = if bases.insert(view.base_id()) {
            view.base_entries()
        } else {
            &[]
        };
        for e in base.iter().chain(view.differences()) {
            acc = acc
                .wrapping_add(u64::from(e.id.as_bytes().last().copied().unwrap_or(0)))
                .wrapping_add(u64::from(e.flags.myself) + u64::from(e.flags.handshake))
                .wrapping_add(e.addr.as_ref().map_or(0, |a| u64::from(a.port)))
                .wrapping_add(e.master_id.as_ref().map_or(0, |m| m.len() as u64))
                .wrapping_add(e.config_epoch)
                .wrapping_add(e.slots.len() as u64);
        }
    }
    acc
}

struct Row {
    masters: u32,
    ready: Duration,
    scale_out: Duration,
    plan: Duration,
    floor: Duration,
}

fn line(case: String, t: Duration, calls: usize) {
    println!("{case:<44} {:>14.3?} {calls:>8}", t);
}

fn measure(masters: u32) -> Row {
    // A converged cluster with one replica per master: the steady-state health check.
    let nodes = fixture::healthy(masters, 1);
    let obs = fixture::observe(&nodes, false, 0);
    let want = Desired::new(masters, 1);
    let (ready, n) = time(|| {
        black_box(decide(&want, Phase::Ready, black_box(&obs)));
    });
    line(format!("decide, ready, {masters} masters x1"), ready, n);
    let (floor_t, n) = time(|| {
        black_box(floor(black_box(&obs)));
    });
    line(
        format!("floor: read every stored entry, {masters} x1"),
        floor_t,
        n,
    );
    drop(obs);

    // Scale out by one master (x1): the decision carries the full rebalance plan once the new
    // master has its replica, so both new members are there and synced.
    let mut nodes = fixture::healthy(masters, 1);
    nodes.push(fixture::Node::new(2 * masters));
    let mut replica = fixture::Node::new(2 * masters + 1);
    replica.master = Some(fixture::id(2 * masters));
    nodes.push(replica);
    let obs = fixture::observe(&nodes, false, 0);
    let want = Desired::new(masters + 1, 1);
    let decision = decide(&want, Phase::Ready, &obs);
    assert!(
        decision.summary.contains("slot"),
        "the scale-out case must plan slot moves, got: {}",
        decision.summary
    );
    let (scale_out, n) = time(|| {
        black_box(decide(&want, Phase::Ready, black_box(&obs)));
    });
    line(
        format!("decide, scale out, {masters}+1 masters x1"),
        scale_out,
        n,
    );
    drop(obs);

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
    let (plan, n) = time(|| {
        black_box(planner::plan(
            black_box(&input),
            2,
            planner::PairSize::Spread,
        ));
    });
    line(format!("plan, {masters}+1 masters"), plan, n);
    Row {
        masters,
        ready,
        scale_out,
        plan,
        floor: floor_t,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any number among the arguments picks that size only.
    let only: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    println!("{:<44} {:>14} {:>8}", "case (median)", "per call", "calls");
    let rows: Vec<Row> = SIZES
        .iter()
        .filter(|m| only.is_empty() || only.contains(m))
        .map(|&m| measure(m))
        .collect();
    let Some(base) = rows.first() else { return };
    println!();
    println!(
        "growth from {} x1 (nodes, view entries, then each figure and its ratio to the first size)",
        base.masters
    );
    println!(
        "{:>7} {:>6} {:>10} {:>20} {:>20} {:>20} {:>20}",
        "masters", "nodes", "entries", "decide ready", "decide scale-out", "floor", "plan"
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
    for r in &rows {
        let nodes = u64::from(r.masters) * 2;
        let cell = |t: Duration, b: Duration| format!("{:.3?} ({:.0}x)", t, ratio(t, b));
        println!(
            "{:>7} {:>6} {:>10} {:>20} {:>20} {:>20} {:>20}",
            r.masters,
            nodes,
            nodes * nodes,
            cell(r.ready, base.ready),
            cell(r.scale_out, base.scale_out),
            cell(r.floor, base.floor),
            cell(r.plan, base.plan),
        );
    }
    println!();
    for r in &rows {
        println!(
            "{} x1: decide ready = {:.1}x the floor, scale-out = {:.1}x the floor",
            r.masters,
            ratio(r.ready, r.floor),
            ratio(r.scale_out, r.floor)
        );
    }
}
