//! Measures slot migration speed for several batch sizes and slot concurrencies, and the same
//! move done by `redis-cli --cluster reshard` for reference. Uses ports 12400-12402.
//!
//! `cargo run -p redis-operator-redis --example migrate_bench [keys] [slots]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use engine::Effect;
use redis_operator_redis::{AdapterConfig, RedisAdapter};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let keys: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let slots: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let c = Cluster::start(&[12400, 12401, 12402], 3, None).await;
    // Keys spread evenly over node 0's slots (0-5461).
    let names: Vec<String> = (0u64..)
        .map(|i| format!("bench:{i}"))
        .filter(|k| crc16(k.as_bytes()) % 16384 <= 5461)
        .take(keys)
        .collect();
    fill(&mut c.client(0, None).await, &names).await;
    println!(
        "{keys} keys over slots 0-5461; moving {slots} slots (~{} keys) each run",
        keys * slots as usize / 5462
    );

    let moved: Vec<u16> = (0..slots).collect();
    for (batch, conc, per_round) in [
        (1000, 4, 1),
        (1000, 4, 16),
        (100, 4, 64),
        (1000, 1, 64),
        (1000, 4, 64),
        (5000, 4, 64),
        (1000, 8, 64),
        (1000, 4, 256),
    ] {
        let adapter = RedisAdapter::new(AdapterConfig {
            migrate_batch: batch,
            slot_concurrency: conc,
            slots_per_round: per_round,
            ..AdapterConfig::default()
        });
        let ctx = c.ctx().await;
        let there = Effect::MigrateSlots {
            from: 0,
            from_id: c.ids[0].clone(),
            to: 1,
            to_id: c.ids[1].clone(),
            slots: ranges(&moved),
        };
        let back = Effect::MigrateSlots {
            from: 1,
            from_id: c.ids[1].clone(),
            to: 0,
            to_id: c.ids[0].clone(),
            slots: ranges(&moved),
        };
        let t = Instant::now();
        adapter.execute(&there, &ctx).await.expect("there");
        let t1 = t.elapsed();
        let t = Instant::now();
        adapter.execute(&back, &ctx).await.expect("back");
        let t2 = t.elapsed();
        println!(
            "adapter batch={batch:5} concurrency={conc:2} slots/round={per_round:3}: {:7.3} s / {:7.3} s",
            t1.as_secs_f64(),
            t2.as_secs_f64()
        );
    }
    for pipeline in [10, 1000] {
        let run = |from: &str, to: &str| {
            let t = Instant::now();
            let out = std::process::Command::new("redis-cli")
                .args([
                    "--cluster",
                    "reshard",
                    "127.0.0.1:12400",
                    "--cluster-from",
                    from,
                    "--cluster-to",
                    to,
                ])
                .args([
                    "--cluster-slots",
                    &slots.to_string(),
                    "--cluster-yes",
                    "--cluster-pipeline",
                    &pipeline.to_string(),
                ])
                .output()
                .expect("redis-cli runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            t.elapsed()
        };
        let t1 = run(&c.ids[0], &c.ids[1]);
        c.wait_ok().await;
        let t2 = run(&c.ids[1], &c.ids[0]);
        c.wait_ok().await;
        println!(
            "redis-cli reshard pipeline={pipeline:4}:            {:7.3} s / {:7.3} s",
            t1.as_secs_f64(),
            t2.as_secs_f64()
        );
    }
}
