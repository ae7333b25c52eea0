//! Runs the built `redis-operator` binary the way a user would: `validate -f` on a valid and
//! an invalid example, and `crd`, checking stdout, stderr and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn redis_operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-operator"))
        .args(args)
        .output()
        .expect("the redis-operator binary runs")
}

fn example(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
        .to_string_lossy()
        .into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_prints_ok_and_exits_zero_for_the_seed_manifest() {
    let out = redis_operator(&["validate", "-f", &example("seed-cluster.yaml")]);
    assert_eq!(text(&out.stdout), "ok\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
}

#[test]
fn validate_prints_each_problem_and_exits_one_for_an_invalid_manifest() {
    let out = redis_operator(&["validate", "-f", &example("invalid/too-few-masters.yaml")]);
    assert_eq!(
        text(&out.stdout),
        "spec.masters: must be at least 3 (Redis Cluster needs a majority of masters to fail over), got 2\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn validate_reports_a_parse_error_on_one_line_and_fails() {
    let out = redis_operator(&[
        "validate",
        "-f",
        &example("invalid/masters-not-a-number.yaml"),
    ]);
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.ends_with("line 7: spec.masters: invalid type: string \"three\", expected u32\n"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn validate_fails_with_a_reason_when_the_file_cannot_be_read() {
    let out = redis_operator(&["validate", "-f", "/nonexistent/cluster.yaml"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot read /nonexistent/cluster.yaml"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn crd_prints_the_same_yaml_the_chart_ships() {
    let out = redis_operator(&["crd"]);
    assert_eq!(out.status.code(), Some(0));
    let chart = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/redis-operator/crds/redisclusters.redis.redis.yaml"),
    )
    .expect("chart CRD");
    assert_eq!(text(&out.stdout), chart);
}

#[test]
fn validate_accepts_zero_replicas_without_persistence_but_warns_that_data_dies_with_a_master() {
    let dir = std::env::temp_dir().join(format!("validate-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("cache.yaml");
    std::fs::write(
        &file,
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: cache\nspec:\n  masters: 3\n  replicas: 0\n",
    )
    .expect("manifest written");
    let out = redis_operator(&["validate", "-f", &file.to_string_lossy()]);
    assert_eq!(text(&out.stdout), "ok\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).starts_with("warning: spec.replicas: 0 replicas without persistence"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
