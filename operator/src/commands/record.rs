//! `redis-operator simulate record`: observes a running cluster now and then and writes, in
//! the trace format, what the engine would decide at each observation. Nothing is executed,
//! so it is safe beside the operator (or `local up`) that runs the cluster.
//!
//! A local cluster is found by its state directory; a cluster on Kubernetes by its namespace
//! (and kubeconfig). Either way the members are read and the spec built by the same code the
//! running operator uses, and [`controller::recording::Recorder`] decides.

use super::local::{LOCAL_NAMESPACE, NameArgs};
use super::local::{adapter_for, local_config};
use super::local_members::LocalMembers;
use super::local_state::{effective_spec, load_saved, saved_manifest};
use super::run::kube_client;
use super::{CmdError, CmdResult};
use controller::recording::Recorder;
use engine::trace::TraceRecord;
use kube_backend::record::KubeRecording;
use local::LocalBackend;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RecordArgs {
    /// The cluster's name: metadata.name of its manifest (local) or of the RedisCluster.
    #[arg(long)]
    pub name: String,
    /// Local cluster: its state directory (default: .local-clusters/<name>).
    #[arg(long, conflicts_with_all = ["namespace", "kubeconfig"])]
    pub dir: Option<PathBuf>,
    /// Kubernetes: the RedisCluster's namespace (default: the kubeconfig context's). With this
    /// or --kubeconfig the cluster is read from Kubernetes; its nodes' addresses must be
    /// reachable from where this runs.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Kubernetes: the kubeconfig to use (default: in-cluster configuration, else $KUBECONFIG
    /// or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where to write the trace (JSON Lines of {time, spec, phaseHint, observation, decision}).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// How many observations to record (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// Milliseconds between observations (at most an hour).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub interval_ms: u64,
}

impl RecordArgs {
    fn on_kubernetes(&self) -> bool {
        self.namespace.is_some() || self.kubeconfig.is_some()
    }
}

pub fn record(args: RecordArgs) -> CmdResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if args.on_kubernetes() {
            record_kube(&args).await
        } else {
            record_local(&args).await
        }
    })
}

async fn record_local(args: &RecordArgs) -> CmdResult {
    let names = NameArgs {
        name: args.name.clone(),
        dir: args.dir.clone(),
    };
    let (dir, cluster) = load_saved(&names)?;
    let cfg = local_config(&cluster, &dir)?;
    let members = LocalMembers(LocalBackend::new(cfg.clone())?);
    let mut recorder = Recorder::new(members, adapter_for(&cfg, &cluster.spec));
    let from = format!("{LOCAL_NAMESPACE}/{}", args.name);
    write_samples(args, &from, async || {
        // `local scale` and edits of the manifest apply from the next sample on.
        let spec = effective_spec(&saved_manifest(&dir), &dir)?.spec;
        Ok(recorder.sample(&spec, &[]).await?)
    })
    .await
}

async fn record_kube(args: &RecordArgs) -> CmdResult {
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let namespace = match &args.namespace {
        Some(ns) => ns.clone(),
        None => client.default_namespace().to_string(),
    };
    let mut recording = KubeRecording::start(client, &namespace, &args.name).await?;
    let from = format!("{namespace}/{}", args.name);
    write_samples(args, &from, async || Ok(recording.sample().await?)).await
}

/// Takes `args.samples` records, `args.interval_ms` apart, each written as one line as soon as
/// it is taken (an interrupted recording leaves whole lines). The file is created only once
/// the cluster was found, so a wrong name leaves no empty trace behind.
async fn write_samples(
    args: &RecordArgs,
    from: &str,
    mut sample: impl AsyncFnMut() -> Result<TraceRecord, CmdError>,
) -> CmdResult {
    let mut out = std::fs::File::create(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    for i in 0..args.samples {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
        let record = sample().await?;
        let mut line = serde_json::to_string(&record)?;
        line.push('\n');
        out.write_all(line.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    }
    eprintln!(
        "wrote {} records of {from} to {}",
        args.samples,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
