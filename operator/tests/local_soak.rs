//! `redis-operator local soak`, as CI runs it: two minutes of seeded chaos on real server
//! processes (scaling, configuration changes, killed and frozen nodes, a killed operator),
//! a client writing and reading back throughout, then every acknowledged write read back and
//! `redis-cli --cluster check`. Ports 20000-20017 (bus ports 30000-30017).

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use support::{bin, test_server};

const BASE_PORT: &str = "20000";

/// Stops whatever a soak left running when the test fails mid-way (the soak tears its
/// cluster down itself when it ends).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new(bin())
            .args(["local", "down", "--name", "soak", "--purge", "--dir"])
            .arg(self.0.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The number after `label` in the soak's summary (`acknowledged writes: 1234 of …`).
fn figure(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

#[test]
fn a_two_minute_soak_loses_no_acknowledged_write_to_the_operator_and_ends_clean() {
    let dir = std::env::temp_dir().join(format!("rop-it-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _cleanup = Cleanup(dir.clone());
    // A different seed makes different choices; CI keeps one so that a failure can be rerun.
    // Seed 2's first scale freezes the source of a move past the node timeout mid-move, and a
    // later one SIGKILLs one (`ScaleLosingSource`).
    let seed = std::env::var("REDIS_OPERATOR_SOAK_SEED").unwrap_or_else(|_| "2".into());
    let mut cmd = Command::new(bin());
    cmd.args(["local", "soak", "--minutes", "2", "--seed", &seed])
        .args(["--base-port", BASE_PORT, "--dir"])
        .arg(&dir)
        .env_remove("RUST_LOG");
    if let Some(server) = test_server() {
        cmd.arg("--server-binary").arg(server);
    }
    let out = cmd.output().expect("redis-operator runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // The table is the test's figure: shown with `--no-capture`, and on failure.
    println!("{text}");
    let operator_log = std::fs::read_to_string(dir.join("operator.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the soak failed ({}):\n{text}\n{}\noperator log tail:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        support::tail(&operator_log, 40)
    );
    assert!(text.contains("redis-cli --cluster check: clean"), "{text}");
    assert!(text.contains("\nPASS"), "{text}");
    // It did something: operations ran and a client wrote through them.
    assert!(figure(&text, "operations: ") >= 4, "{text}");
    assert!(figure(&text, "acknowledged writes: ") >= 1_000, "{text}");
    assert_eq!(
        figure(&text, "acknowledged writes lost: "),
        0,
        "lost outside a killed master's window:\n{text}"
    );
}

#[test]
fn a_soak_with_bad_arguments_is_refused_with_one_line_and_starts_nothing() {
    for (args, says) in [
        (&["local", "soak"][..], "--minutes"),
        (&["local", "soak", "--minutes", "0"][..], "--minutes"),
        (
            &["local", "soak", "--minutes", "1", "--base-port", "60000"][..],
            "--base-port",
        ),
    ] {
        let out = Command::new(bin())
            .args(args)
            .output()
            .expect("redis-operator runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed something");
    }
}
