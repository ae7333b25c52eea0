//! Helpers for tests that run the `kube-sandbox` binary itself.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::eventually;

pub const BIN: &str = env!("CARGO_BIN_EXE_kube-sandbox");

/// Kills the child if the test fails before it is stopped properly.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for `kube-sandbox up` to write its kubeconfig, checks the server address it names
/// starts with `url_prefix`, and returns a client built from that file as kubectl would.
pub async fn client_once_written(kubeconfig: &Path, url_prefix: &str) -> kube::Client {
    let path = kubeconfig.to_path_buf();
    eventually(20, "the kubeconfig", || {
        let path = path.clone();
        async move { path.exists().then_some(()) }
    })
    .await;
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert!(config.cluster_url.to_string().starts_with(url_prefix));
    kube::Client::try_from(config).unwrap()
}

/// Runs `kube-sandbox down --state-dir DIR` and waits (up to `secs`) for the `up` process to
/// exit successfully.
pub async fn down_and_wait(dir: &Path, running: &mut Running, secs: u64) {
    let down = Command::new(BIN)
        .args(["down", "--state-dir"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(down.success());
    let mut status = None;
    for _ in 0..secs * 20 {
        status = running.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status.expect("up exits after down").success());
}
