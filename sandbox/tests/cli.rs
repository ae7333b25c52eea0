//! The `kube-sandbox` binary: `up` serves and writes a kubeconfig, `down` stops it.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::cli::{BIN, Running, client_once_written, down_and_wait};
use common::{config_map, scratch_dir};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn up_writes_a_kubeconfig_kube_rs_can_use_and_down_stops_it() {
    let dir = scratch_dir("cli");
    let kubeconfig = dir.join("kubeconfig");
    let child = Command::new(BIN)
        .args(["up", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--state-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let client = client_once_written(&kubeconfig, "http://127.0.0.1:").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("from-cli", &[]))
        .await
        .unwrap();

    down_and_wait(&dir, &mut running, 5).await;
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(state.contains("from-cli"), "state saved at stop");
    assert!(!dir.join("kube-sandbox.pid").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fails_with_one_line(args: &[&str], expect: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of reason, got {stderr:?}");
    assert!(
        lines[0].contains(expect),
        "{:?} should mention {expect:?}",
        lines[0]
    );
}

#[test]
fn bad_arguments_exit_non_zero_with_a_one_line_reason() {
    fails_with_one_line(&["up"], "--kubeconfig");
    fails_with_one_line(
        &["up", "--kubeconfig", "/tmp/x", "--listen", "not-an-address"],
        "not-an-address",
    );
    fails_with_one_line(
        &[
            "up",
            "--kubeconfig",
            "/tmp/kube-sandbox-never-written",
            "--listen",
            "0.0.0.0:0",
        ],
        "loopback",
    );
    fails_with_one_line(
        &["down", "--state-dir", "/nonexistent/kube-sandbox"],
        "no running sandbox",
    );
    fails_with_one_line(&["sideways"], "sideways");
}

#[tokio::test]
async fn the_fault_command_injects_conflicts_into_a_running_sandbox() {
    let sb = kube_sandbox::Sandbox::builder().start().await.unwrap();
    let dir = scratch_dir("fault");
    let kubeconfig = dir.join("kubeconfig");
    sb.write_kubeconfig(&kubeconfig).unwrap();
    let status = tokio::process::Command::new(BIN)
        .args(["fault", "--conflicts", "configmaps=1", "--kubeconfig"])
        .arg(&kubeconfig)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let refused = api
        .create(&PostParams::default(), &config_map("c", &[]))
        .await;
    assert_eq!(common::api_error(refused).0, 409);
    api.create(&PostParams::default(), &config_map("c", &[]))
        .await
        .unwrap();
    let none = tokio::process::Command::new(BIN)
        .args(["fault", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .await
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("name at least one fault"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn up_with_tls_writes_a_kubeconfig_that_trusts_its_own_ca() {
    let dir = scratch_dir("cli-tls");
    let kubeconfig = dir.join("kubeconfig");
    let child = Command::new(BIN)
        .args(["up", "--tls", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let client = client_once_written(&kubeconfig, "https://127.0.0.1:").await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("over-tls", &[]))
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
