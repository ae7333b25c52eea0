//! `redis-operator kube …`: tools that act on a Kubernetes cluster from outside the operator.

use super::CmdResult;

#[derive(clap::Subcommand)]
pub enum KubeCommand {
    /// Run a RedisCluster in kube-sandbox under seeded chaos (scaling and configuration
    /// changes patched into it, pods deleted, a node killed, the API server cut off, the
    /// operator killed) with a verifying client; exits 1 if an acknowledged write was lost
    /// to anything but a lost master, or the cluster does not end clean.
    Soak(super::soak::kube::KubeSoakArgs),
}

pub fn run(cmd: KubeCommand) -> CmdResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            KubeCommand::Soak(args) => super::soak::kube::run(args).await,
        }
    })
}
