//! Running the real kubectl and helm (from `scripts/kube-tools.sh`) against a sandbox.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube_sandbox::{Sandbox, SandboxHandle};
use tokio::process::Command;

use super::scratch_dir;

pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("KUBE_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} is not installed at {}: run scripts/kube-tools.sh (scripts/setup.sh runs it)",
        path.display()
    );
    path
}

/// A sandbox, a kubeconfig for it, and a HOME of its own so kubectl's and helm's caches
/// never leak between tests.
pub struct Cluster {
    pub sb: SandboxHandle,
    pub dir: PathBuf,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::with(Sandbox::builder()).await
    }

    /// A sandbox serving HTTPS, so kubectl sends bearer tokens.
    pub async fn start_tls() -> Cluster {
        Cluster::with(Sandbox::builder().tls(true)).await
    }

    /// A sandbox with emulated nodes, so pods run.
    pub async fn start_with_nodes(n: usize) -> Cluster {
        Cluster::with(Sandbox::builder().nodes(n)).await
    }

    async fn with(builder: kube_sandbox::SandboxBuilder) -> Cluster {
        let sb = builder.start().await.unwrap();
        let dir = scratch_dir("tools");
        sb.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        Cluster { sb, dir }
    }

    pub fn command(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool(name));
        cmd.args(args)
            .current_dir(&self.dir)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .kill_on_drop(true);
        cmd
    }

    /// Runs a tool to completion and returns (success, stdout, stderr).
    pub async fn run(&self, name: &str, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(name, args).output())
            .await
            .unwrap_or_else(|_| panic!("{name} {args:?} did not finish in 60s"))
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    pub async fn ok(&self, name: &str, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(name, args).await;
        assert!(ok, "{name} {args:?} failed:\n{stderr}\n{stdout}");
        stdout
    }

    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.ok("kubectl", args).await
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    pub fn client(&self) -> kube::Client {
        self.sb.client().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
