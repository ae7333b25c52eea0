//! Every manifest under examples/ is a contract: the valid ones validate clean, and each file in
//! examples/invalid/ produces exactly the problem named on its `# expect:` first line.

use std::fs;
use std::path::{Path, PathBuf};

use redis_operator_spec::{parse_manifest, validate};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// What checking a manifest prints: the parse error, or every problem one per line.
fn outcome(text: &str) -> Vec<String> {
    match parse_manifest(text) {
        Err(e) => vec![e.to_string()],
        Ok(cluster) => validate(&cluster.spec, None)
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

#[test]
fn every_valid_example_parses_and_validates_clean() {
    let files = yaml_files(&examples_dir());
    assert!(
        files.len() >= 4,
        "expected the four documented examples, found {files:?}"
    );
    for file in files {
        let text = fs::read_to_string(&file).expect("readable example");
        assert_eq!(outcome(&text), Vec::<String>::new(), "{}", file.display());
    }
}

#[test]
fn every_invalid_example_produces_exactly_its_expected_line() {
    let files = yaml_files(&examples_dir().join("invalid"));
    assert!(
        files.len() >= 8,
        "expected at least eight invalid examples, found {files:?}"
    );
    for file in files {
        let text = fs::read_to_string(&file).expect("readable example");
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} must start with `# expect: `", file.display()));
        assert_eq!(
            outcome(&text),
            vec![expected.to_owned()],
            "{}",
            file.display()
        );
    }
}

#[test]
fn the_seed_example_keeps_the_seed_values() {
    let text = fs::read_to_string(examples_dir().join("seed-cluster.yaml")).expect("seed example");
    let cluster = parse_manifest(&text).expect("seed parses");
    assert_eq!(cluster.metadata.name.as_deref(), Some("rediscluster1"));
    assert_eq!(cluster.metadata.namespace.as_deref(), Some("cache"));
    assert_eq!(cluster.spec.image(), "awbrg789/redis:latest");
    assert_eq!(cluster.spec.masters, 3);
    assert_eq!(cluster.spec.replicas(), 1);
    assert_eq!(cluster.spec.base_port(), 10000);
    assert_eq!(cluster.spec.total_nodes(), 6);
    assert_eq!(cluster.spec.max_memory_bytes(), Ok(Some(512 * 1024 * 1024)));
    let limits = cluster
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("1"));
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("1000Mi"));
    let exporter = cluster
        .spec
        .exporter_resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .expect("exporter requests");
    assert_eq!(exporter.get("cpu").map(|q| q.0.as_str()), Some("50m"));
}
