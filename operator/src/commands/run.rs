//! `redis-operator run`: the Kubernetes operator. Watches `RedisCluster`s, runs each through
//! the shared reconcile core with the Kubernetes backend, and serves the HTTP API.

use super::CmdResult;
use controller::http::{Directory, HttpState};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_backend::lease::{self, Leadership, LeaseConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kubeconfig to use; default: in-cluster configuration, else $KUBECONFIG or
    /// ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A namespace to watch (repeat for several); default: every namespace.
    #[arg(long = "namespace")]
    namespaces: Vec<String>,
    /// Address of the HTTP API (`/cluster/nodes`, `/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "0.0.0.0:9090")]
    listen: SocketAddr,
    /// Namespace of the leader-election Lease; default: $POD_NAMESPACE, else `default`.
    #[arg(long)]
    leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "redis-operator-leader")]
    leader_election_name: String,
    /// Seconds a leader's lease lasts without renewal; a standby takes over after this.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_duration_seconds: u64,
    /// Act without electing a leader (only safe with exactly one operator process).
    #[arg(long)]
    no_leader_election: bool,
    /// This process's name in the lease and in events; default: $POD_NAME, else
    /// `<hostname>-<pid>`.
    #[arg(long)]
    identity: Option<String>,
    /// Append each cluster's passes as trace records to `DIR/<namespace>/<name>.jsonl`: every
    /// pass that acts or sees something change, and one a minute of a settled cluster
    /// (`simulate replay` reads it; passwords never reach it).
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// With --record: start a new file once a trace holds this many MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    record_max_mib: u64,
    /// With --record: rotated files kept per cluster (`<name>.1.jsonl` is the newest).
    #[arg(long, default_value_t = 4)]
    record_keep: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no Kubernetes configuration: {0}")]
    Config(String),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Controller(#[from] kube_backend::Error),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

pub fn run(args: Args) -> CmdResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    rt.block_on(operate(args))?;
    Ok(ExitCode::SUCCESS)
}

/// A client from `kubeconfig`, else the in-cluster configuration, `$KUBECONFIG` or
/// `~/.kube/config` (what kubectl would use).
pub(super) async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client, RunError> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| RunError::Kubeconfig {
                    path: path.to_path_buf(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| RunError::Kubeconfig {
                    path: path.to_path_buf(),
                    source,
                })?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::Config(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(RunError::Client)
}

fn identity(args: &Args) -> String {
    if let Some(id) = &args.identity {
        return id.clone();
    }
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "redis-operator".to_string());
    format!("{host}-{}", std::process::id())
}

async fn operate(args: Args) -> Result<(), RunError> {
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let identity = identity(&args);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.listen,
            source,
        })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let directory = Directory::new();
    let metrics = controller::http::install_metrics_recorder().ok();
    let http = HttpState::new(directory.clone(), metrics);
    let http_task = controller::http::spawn_server(listener, http.clone(), stop_rx.clone());
    let (leadership, lease_task) = if args.no_leader_election {
        (Leadership::always(), None)
    } else {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| "default".to_string());
        let (leadership, task) = lease::spawn(
            client.clone(),
            LeaseConfig {
                namespace,
                name: args.leader_election_name.clone(),
                identity: identity.clone(),
                duration: Duration::from_secs(args.lease_duration_seconds),
            },
            stop_rx.clone(),
        );
        (leadership, Some(task))
    };
    let (ready_tx, mut ready_rx) = tokio::sync::watch::channel(false);
    {
        let http = http.clone();
        tokio::spawn(async move {
            if ready_rx.wait_for(|r| *r).await.is_ok() {
                http.set_ready(true);
            }
        });
    }
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping: finishing the passes in flight, then releasing the lease");
            let _ = stop_tx.send(true);
        });
    }
    let config = kube_backend::RunConfig {
        namespaces: args.namespaces.clone(),
        identity,
        record: args
            .record
            .clone()
            .map(|dir| controller::trace_file::TraceFiles {
                dir,
                max_bytes: args.record_max_mib * 1024 * 1024,
                keep: args.record_keep,
            }),
    };
    let result = kube_backend::run(client, config, leadership, directory, ready_tx, stop_rx).await;
    // Stopped by a signal, or failed (no API server): everything else stops too.
    let _ = stop_tx.send(true);
    http.set_ready(false);
    if let Some(task) = lease_task {
        let _ = task.await;
    }
    let _ = http_task.await;
    result.map_err(RunError::from)
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
