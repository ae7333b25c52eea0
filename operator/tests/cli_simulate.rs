//! `redis-operator simulate run|replay` through the built binary: exit codes, the printed
//! timeline, differences from a tampered trace and malformed input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn redis_operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-operator"))
        .args(args)
        .output()
        .expect("the redis-operator binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/traces")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_simulate");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn replay(path: &Path) -> Output {
    redis_operator(&["simulate", "replay", path.to_str().unwrap()])
}

#[test]
fn every_committed_trace_replays_with_no_difference() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(traces_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "the example traces are committed: {files:?}"
    );
    for f in files {
        let out = replay(&f);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} replays cleanly (regenerate with `cargo run -p redis-operator-sim --example write_traces` if the engine changed on purpose):\n{stdout}{}",
            f.display(),
            text(&out.stderr)
        );
        assert!(
            stdout.contains("0 difference(s), 0 violation(s)"),
            "{stdout}"
        );
    }
}

#[test]
fn replay_prints_one_line_per_record_with_the_phase_change_and_effects() {
    let out = replay(&traces_dir().join("scale-out.jsonl"));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("t=0ms Ready -> ScalingOut: create node #3"),
        "{stdout}"
    );
    assert!(stdout.contains("migrate 1366 slots #0 -> #3"), "{stdout}");
}

#[test]
fn replay_of_a_tampered_trace_flags_the_difference_and_exits_non_zero() {
    let original = std::fs::read_to_string(traces_dir().join("bootstrap.jsonl")).unwrap();
    // The recorded first decision now claims the cluster was already Ready with no effect.
    let mut lines: Vec<serde_json::Value> = original
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["decision"]["phase"] = serde_json::json!("Ready");
    lines[0]["decision"]["effects"] = serde_json::json!([]);
    let tampered: String = lines.iter().map(|v| format!("{v}\n")).collect();
    let path = scratch("tampered.jsonl");
    std::fs::write(&path, tampered).unwrap();
    let out = replay(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("DIFFERENCE at line 1: phase Ready recorded, Pending now"),
        "{stdout}"
    );
}

#[test]
fn replay_flags_an_unsafe_recorded_decision_as_a_violation() {
    let original = std::fs::read_to_string(traces_dir().join("scale-out.jsonl")).unwrap();
    let mut rec: serde_json::Value =
        serde_json::from_str(original.lines().next().unwrap()).unwrap();
    // The recorded decision deletes master #0, which owns slots and keys.
    rec["decision"]["effects"] = serde_json::json!([{"type": "deleteNode", "ordinal": 0}]);
    let path = scratch("unsafe.jsonl");
    std::fs::write(&path, format!("{rec}\n")).unwrap();
    let out = replay(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("DIFFERENCE at line 1"), "{stdout}");
    assert!(
        stdout.contains("VIOLATION at line 1 (recorded decision): delete node #0: node #0"),
        "{stdout}"
    );
}

#[test]
fn a_malformed_line_is_an_error_naming_the_line() {
    let first = std::fs::read_to_string(traces_dir().join("bootstrap.jsonl")).unwrap();
    let first = first.lines().next().unwrap();
    let path = scratch("malformed.jsonl");
    std::fs::write(&path, format!("{first}\n{{\"time\": \"soon\"}}\n")).unwrap();
    let out = replay(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("malformed.jsonl:2: not a trace record"),
        "{stderr}"
    );
}

/// `decide` is only ever given slots a cluster can have: a crafted record naming slot 16384
/// (in a slot range or an open slot) is refused at the boundary, with one line that says
/// where and why, instead of reaching the engine.
#[test]
fn a_trace_naming_slot_16384_is_refused_with_a_one_line_reason() {
    let failover = std::fs::read_to_string(traces_dir().join("failover.jsonl")).unwrap();
    let record = failover
        .lines()
        .find(|l| l.contains("\"end\":16383"))
        .unwrap();
    let migration =
        std::fs::read_to_string(traces_dir().join("interrupted-migration.jsonl")).unwrap();
    let open = migration
        .lines()
        .find(|l| l.contains("\"Migrating\":{\"slot\":4096"))
        .unwrap();
    for (name, line, reason) in [
        (
            "range.jsonl",
            record.replacen("\"end\":16383", "\"end\":16384", 1),
            "slot range",
        ),
        (
            "open.jsonl",
            open.replacen("\"slot\":4096", "\"slot\":16384", 1),
            "slot 16384 is not a slot (0-16383)",
        ),
    ] {
        let path = scratch(name);
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let out = replay(&path);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("{name}:1: not a trace record")),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_missing_trace_file_is_an_error() {
    let out = redis_operator(&["simulate", "replay", "/nonexistent/trace.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/trace.jsonl"));
}

#[test]
fn simulate_run_without_faults_passes_and_prints_a_summary() {
    let dir = scratch("failures");
    let out = redis_operator(&[
        "simulate",
        "run",
        "--seeds",
        "3",
        "--seed",
        "5",
        "--steps",
        "10",
        "--no-faults",
        "--max-spec-changes",
        "0",
        "--failure-dir",
        dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("3 seed(s), "), "{stdout}");
    assert!(stdout.contains("0 violation(s)"), "{stdout}");
}

#[test]
fn simulate_run_exits_non_zero_and_names_the_seed_and_trace_of_a_failure() {
    // Too few steps to converge is a failure the simulator must report, whatever the engine.
    let dir = scratch("failures-short");
    let out = redis_operator(&[
        "simulate",
        "run",
        "--seeds",
        "1",
        "--seed",
        "9",
        "--steps",
        "1",
        "--settle-steps",
        "1",
        "--no-faults",
        "--failure-dir",
        dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL seed 9 failed at step"), "{stdout}");
    let trace = dir.join("seed-9.jsonl");
    assert!(stdout.contains(&trace.display().to_string()), "{stdout}");
    assert!(trace.exists());
    // The written trace replays cleanly: the failure was slowness, not a wrong decision.
    assert_eq!(replay(&trace).status.code(), Some(0));
}

/// The timelines a page written by `--html` embeds.
fn embedded(page: &Path) -> serde_json::Value {
    let html = std::fs::read_to_string(page).unwrap();
    serde_json::from_str(timeline::embedded(&html).expect("the page embeds its data")).unwrap()
}

#[test]
fn what_if_with_two_replicas_shows_where_the_decision_differs_and_simulates_on_to_ready() {
    let page = scratch("whatif.html");
    let out = redis_operator(&[
        "simulate",
        "replay",
        traces_dir().join("failover.jsonl").to_str().unwrap(),
        "--set",
        "replicas=2",
        "--html",
        page.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(
            "what-if replicas=2: recorded 3 masters x 1 replicas, changed 3 masters x 2 replicas"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("first difference at line 1"), "{stdout}");
    assert!(
        stdout.contains("changed:  Ready -> ReplicaScaling: create node #6"),
        "{stdout}"
    );
    assert!(stdout.contains("changed: converged after"), "{stdout}");
    let data = embedded(&page);
    let timelines = data.as_array().unwrap();
    assert_eq!(timelines.len(), 2, "the recorded and the changed timeline");
    assert_eq!(timelines[0]["diverged_at"], 0);
    assert_eq!(timelines[1]["diverged_at"], 0);
    // The changed run ends with every member of 3 x 2 present: nine lanes, the last Ready.
    assert_eq!(timelines[1]["lanes"].as_array().unwrap().len(), 9);
    let phases = timelines[1]["phases"].as_array().unwrap();
    assert_eq!(phases.last().unwrap()["v"], "Ready");
}

#[test]
fn what_if_with_a_manifest_takes_its_shape() {
    let manifest = scratch("four-masters.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: demo\nspec:\n  masters: 4\n  replicas: 1\n",
    )
    .unwrap();
    let out = redis_operator(&[
        "simulate",
        "replay",
        traces_dir().join("scale-out.jsonl").to_str().unwrap(),
        "--spec",
        manifest.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("changed 4 masters x 1 replicas"),
        "{stdout}"
    );
    assert!(stdout.contains("changed: converged after"), "{stdout}");
}

#[test]
fn a_what_if_with_a_bad_change_exits_non_zero_with_one_line_and_prints_nothing_else() {
    for (set, why) in [
        ("masters=2", "masters must be between 3 and"),
        ("masters=many", "is not a whole number"),
        ("colour=blue", "unknown field \"colour\""),
        ("replicas", "expected FIELD=VALUE"),
    ] {
        let out = redis_operator(&[
            "simulate",
            "replay",
            traces_dir().join("failover.jsonl").to_str().unwrap(),
            "--set",
            set,
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{set}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{set}: {stderr}");
        assert!(out.stdout.is_empty(), "{set}: {}", text(&out.stdout));
    }
}

#[test]
fn simulate_run_with_html_draws_the_seed_with_its_injected_faults() {
    let page = scratch("seed3.html");
    let out = redis_operator(&[
        "simulate",
        "run",
        "--seed",
        "3",
        "--html",
        page.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let steps: usize = stdout
        .strip_prefix("seed 3 passed in ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    let data = embedded(&page);
    assert_eq!(data[0]["records"].as_array().unwrap().len(), steps);
    let notes = data[0]["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["k"] == "fault"),
        "seed 3 has faults injected: {notes:?}"
    );
    let many = redis_operator(&[
        "simulate",
        "run",
        "--seeds",
        "2",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(many.status.code(), Some(1));
    assert!(text(&many.stderr).contains("--html draws one seed"));
}
