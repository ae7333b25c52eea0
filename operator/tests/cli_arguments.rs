//! Bad command lines: each exits non-zero with one line that says what was wrong, and
//! changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn redis_operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-operator"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the redis-operator binary runs")
}

/// Exit code 2 and exactly one line on standard error, containing every `needle`.
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let out = redis_operator(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {stderr} lacks {n:?}");
    }
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn an_unknown_subcommand_is_one_line_naming_it() {
    assert_usage_error(&["frobnicate"], &["frobnicate"]);
}

#[test]
fn an_unknown_flag_is_one_line_naming_it() {
    assert_usage_error(&["validate", "--frobnicate", "x.yaml"], &["--frobnicate"]);
}

#[test]
fn a_missing_required_argument_is_one_line_naming_it() {
    assert_usage_error(&["local", "up"], &["--file"]);
}

#[test]
fn a_value_of_the_wrong_type_or_range_is_one_line_naming_the_flag() {
    assert_usage_error(
        &["simulate", "run", "--seeds", "many"],
        &["--seeds", "many"],
    );
    assert_usage_error(
        &["run", "--lease-duration-seconds", "1"],
        &["--lease-duration-seconds", "1"],
    );
    assert_usage_error(&["run", "--listen", "nowhere"], &["--listen", "nowhere"]);
}

#[test]
fn an_invalid_log_filter_is_one_line_instead_of_being_ignored() {
    assert_usage_error(
        &["--log", "info,engine=loudest", "crd"],
        &["--log", "loudest"],
    );
}

#[test]
fn local_up_with_an_address_it_cannot_listen_on_fails_before_writing_any_state() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_arguments_bad_listen");
    let _ = std::fs::remove_dir_all(&dir);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/local-3x1.yaml");
    let out = redis_operator(&[
        "local",
        "up",
        "-f",
        manifest.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
        "--listen",
        "nowhere",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: cannot listen on nowhere"),
        "{stderr}"
    );
    assert!(!dir.exists(), "the state directory was created: {stderr}");
}

#[test]
fn simulate_record_refuses_a_local_directory_beside_kubernetes_flags_and_zero_samples() {
    assert_usage_error(
        &[
            "simulate",
            "record",
            "--name",
            "c",
            "-o",
            "t.jsonl",
            "--dir",
            "state",
            "--namespace",
            "cache",
        ],
        &["--dir", "--namespace"],
    );
    assert_usage_error(
        &[
            "simulate",
            "record",
            "--name",
            "c",
            "-o",
            "t.jsonl",
            "--samples",
            "0",
        ],
        &["--samples", "'0'"],
    );
}
