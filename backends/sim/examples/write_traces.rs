//! Regenerates `examples/traces/*.jsonl` from the simulator's scenarios:
//! `cargo run -p redis-operator-sim --example write_traces [-- DIR]`.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/traces"));
    std::fs::create_dir_all(&dir)?;
    for (name, scenario) in redis_operator_sim::scenario::all() {
        let records = scenario();
        let text = redis_operator_sim::scenario::to_jsonl(&records)?;
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::write(&path, &text)?;
        println!(
            "{}: {} record(s), {} bytes",
            path.display(),
            records.len(),
            text.len()
        );
    }
    Ok(())
}
