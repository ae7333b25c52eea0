//! Scratch runner: `cargo run -p redis-operator-sim --example sim_smoke -- START COUNT`.
fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let start = args.first().copied().unwrap_or(0);
    let count = args.get(1).copied().unwrap_or(20);
    let mut cfg = redis_operator_sim::SimConfig::default();
    cfg.faults = std::env::var("NOFAULTS").is_err();
    if std::env::var("NOCHANGES").is_ok() {
        cfg.max_spec_changes = 0;
    }
    let t = std::time::Instant::now();
    let (r, recs) = redis_operator_sim::record_seed(start, &cfg);
    println!(
        "record {:?} {} records {:?}",
        r.map(|r| r.steps),
        recs.len(),
        t.elapsed()
    );
    let t = std::time::Instant::now();
    for rec in &recs {
        let _ = engine::decide(&rec.spec, rec.phase_hint, &rec.observation);
    }
    println!("decide only {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let s = redis_operator_sim::run_many(start..start + count, &cfg);
    println!("{s}");
    for f in &s.failures {
        println!("{}", f.to_string().chars().take(600).collect::<String>());
    }
    println!("{:?}", t.elapsed());
}
