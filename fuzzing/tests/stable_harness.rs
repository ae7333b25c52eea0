//! The fuzz targets on stable, in CI: each runs over its committed seeds
//! (`fuzz/seeds/<target>/`) and then over a fixed number of seeded mutations of them, so a run
//! is reproducible and bounded. A failing input is written to
//! `target/fuzz-failures/<target>-<n>` for `cargo +nightly fuzz run <target> FILE` or a
//! regression test. `FUZZ_ITERATIONS=N` and `FUZZ_SEED=S` override the count and the seed;
//! `FUZZ_DEBUG=1` writes each input to `target/fuzz-current` before running it, to catch a hang.

use fuzzing::mutate::{Rng, mutate};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = repo().join("fuzz/seeds").join(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())))
        .collect()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs `target` over its seeds and `iterations` mutations; returns the executions.
fn run(name: &str, iterations: u64) -> u64 {
    let target = fuzzing::TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let seeds = seeds(name);
    assert!(!seeds.is_empty(), "fuzz/seeds/{name} holds no seed");
    let iterations = env_number("FUZZ_ITERATIONS").unwrap_or(iterations);
    // One stream per target, so adding a target changes no other target's inputs.
    let base = env_number("FUZZ_SEED").unwrap_or(0x5eed);
    let mut rng = Rng::new(
        name.bytes()
            .fold(base, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    );
    let mut executions = 0u64;
    let mut exec = |input: &[u8], n: u64| {
        executions += 1;
        if std::env::var_os("FUZZ_DEBUG").is_some() {
            let _ = std::fs::write(repo().join("target/fuzz-current"), input);
        }
        if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
            let dir = repo().join("target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}-{n}"));
            let _ = std::fs::write(&path, input);
            panic!(
                "fuzz target {name} failed on input {n} (saved to {}; replay it with \
                 `cargo +nightly fuzz run {name} {}` from fuzz/)",
                path.display(),
                path.display()
            );
        }
    };
    for (i, s) in seeds.iter().enumerate() {
        exec(s, i as u64);
    }
    for i in 0..iterations {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, &seeds);
        exec(&input, seeds.len() as u64 + i);
    }
    eprintln!("{name}: {executions} executions ({} seeds)", seeds.len());
    executions
}

// Counts chosen so that each target takes a few seconds unoptimised on one CI core.

#[test]
fn cluster_nodes_parsing_survives_seeds_and_mutations() {
    run("cluster_nodes", 20_000);
}

#[test]
fn cluster_info_reading_survives_seeds_and_mutations() {
    run("cluster_info", 20_000);
}

#[test]
fn manifest_parsing_and_validation_survive_seeds_and_mutations() {
    run("manifest", 5_000);
}

#[test]
fn http_requests_survive_seeds_and_mutations() {
    run("http_request", 5_000);
}

#[test]
fn trace_replay_survives_seeds_and_mutations() {
    run("trace_replay", 3_000);
}

#[test]
fn decide_keeps_its_invariants_on_seeds_and_mutations() {
    run("decide", 5_000);
}

#[test]
fn every_target_has_a_cargo_fuzz_binary_and_seeds() {
    let manifest = std::fs::read_to_string(repo().join("fuzz/Cargo.toml"))
        .unwrap_or_else(|e| panic!("cannot read fuzz/Cargo.toml: {e}"));
    for t in fuzzing::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "fuzz/Cargo.toml has no [[bin]] for target {}",
            t.name
        );
        let file = repo().join(format!("fuzz/fuzz_targets/{}.rs", t.name));
        let body = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        assert!(
            body.contains(&format!("fuzzing::{}(", t.name)),
            "{} does not call fuzzing::{}",
            file.display(),
            t.name
        );
        assert!(!seeds(t.name).is_empty());
    }
}
