//! `redis-operator local host`: many local clusters reconciled by one process, as the
//! Kubernetes controller holds every cluster of its namespace — for measuring what the
//! operator costs per cluster (memory, start-up to the first pass; `bench/operator_memory.py`).
//! Every cluster is `--masters` × `--replicas` on its own ports, in its own directory under
//! `--dir`; SIGTERM or Ctrl-C stops every node.

use super::local::{LOCAL_NAMESPACE, adapter_for, local_config};
use super::local_members::LocalMembers;
use super::local_state::read_manifest;
use super::{CmdError, CmdResult};
use controller::{ClusterKey, Reconciler};
use local::LocalBackend;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct HostArgs {
    /// How many clusters.
    #[arg(long)]
    pub clusters: u16,
    #[arg(long, default_value_t = 3)]
    pub masters: u16,
    #[arg(long, default_value_t = 0)]
    pub replicas: u16,
    /// The first cluster's base port; each next one starts where the previous one ends.
    #[arg(long)]
    pub base_port: u16,
    /// Where every cluster's directory goes.
    #[arg(long)]
    pub dir: PathBuf,
}

/// What a cluster's loop reports to the host.
enum Event {
    FirstPass,
    Ready,
}

pub(super) async fn host(args: HostArgs) -> CmdResult {
    let started = Instant::now();
    // Kept as `local up` and the Kubernetes controller keep them (not served here): the
    // per-cluster series are part of what a cluster costs.
    let _metrics = controller::http::install_metrics_recorder().ok();
    let nodes = args.masters * (1 + args.replicas);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut loops = tokio::task::JoinSet::new();
    for i in 0..args.clusters {
        let base = u32::from(args.base_port) + u32::from(i) * u32::from(nodes);
        let name = format!("host{i}");
        let dir = args.dir.join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let manifest = dir.join("manifest.yaml");
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n\
                 spec:\n  masters: {}\n  replicas: {}\n  basePort: {base}\n  maxMemory: 16mb\n",
                args.masters, args.replicas
            ),
        )
        .map_err(|e| format!("cannot write {}: {e}", manifest.display()))?;
        let cluster = read_manifest(&manifest)?;
        let problems = spec::validate(&cluster.spec, None);
        if !problems.is_empty() {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(CmdError::from(format!(
                "cluster {name}: {}",
                problems.join("; ")
            )));
        }
        let cfg = local_config(&cluster, &dir)?;
        let backend = LocalBackend::new(cfg.clone())?;
        let redis = adapter_for(&cfg, &cluster.spec);
        let mut reconciler = Reconciler::new(
            ClusterKey::new(LOCAL_NAMESPACE, &name),
            LocalMembers(backend.clone()),
            redis,
        );
        let (events_tx, mut stop_rx) = (events_tx.clone(), stop_rx.clone());
        loops.spawn(async move {
            let (mut first, mut ready) = (true, false);
            loop {
                let delay = match reconciler.reconcile(&cluster.spec).await {
                    Ok(pass) => {
                        if std::mem::take(&mut first) {
                            let _ = events_tx.send(Event::FirstPass);
                        }
                        if pass.is_ready() && !ready {
                            ready = true;
                            let _ = events_tx.send(Event::Ready);
                        }
                        pass.next_delay
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %name, error = %e, "pass failed");
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop_rx.changed() => break,
                }
            }
            if let Err(e) = backend.stop_all().await {
                tracing::warn!(cluster = %name, error = %e, "nodes not stopped");
            }
        });
    }
    drop(events_tx);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (mut first_passes, mut ready) = (0u16, 0u16);
    let mut report = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            Some(event) = events.recv() => match event {
                Event::FirstPass => {
                    first_passes += 1;
                    if first_passes == args.clusters {
                        println!("first pass of every cluster: {} ms", started.elapsed().as_millis());
                    }
                }
                Event::Ready => {
                    ready += 1;
                    if ready == args.clusters {
                        println!("every cluster ready: {} ms", started.elapsed().as_millis());
                    }
                }
            },
            _ = report.tick() => println!("rss: {} kB, ready: {ready}/{}", rss_kb(), args.clusters),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

/// This process's resident set (`VmRSS`), 0 where /proc does not say.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
