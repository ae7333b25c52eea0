//! `redis-operator local …`: a real Redis Cluster of local `redis-server` processes, driven by
//! the same engine and reconcile loop as the Kubernetes controller.

use super::local_display::{BAR_WIDTH, progress_line, slot_bars};
use super::local_members::{LocalMembers, apply_settings};
use super::local_state::{
    effective_spec, load_saved, read_manifest, save_manifest, save_server_binary, saved_manifest,
    server_binary, state_dir,
};
use super::{CmdError, CmdResult};
use crate::console;
use controller::desired::desired_from;
use controller::http::{Directory, HttpState};
use controller::projection::{node_entries, role};
use controller::{ClusterKey, Members, Pass, Reconciler};
use engine::{ConditionKind, Observation, Phase};
use local::{LocalBackend, LocalConfig, LocalError};
use redis_backend::{AdapterConfig, MigrationProgress, RedisAdapter};
use spec::{RedisCluster, RedisClusterSpec};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Namespace local clusters appear under in the HTTP API.
pub const LOCAL_NAMESPACE: &str = "local";

#[derive(clap::Subcommand)]
pub enum LocalCommand {
    /// Build the cluster from a RedisCluster manifest and keep reconciling it in the
    /// foreground; serves the HTTP API. Ctrl-C stops the nodes, keeping their data.
    Up(UpArgs),
    /// Stop a local cluster's nodes (and its running `up`), optionally deleting its data.
    Down(DownArgs),
    /// Print the topology of a local cluster.
    Status(NameArgs),
    /// Change the number of masters and replicas of a running local cluster.
    Scale(ScaleArgs),
    /// Run a cluster under seeded chaos (scaling, configuration changes, killed and frozen
    /// nodes, a killed operator) with a verifying client; exits 1 if an acknowledged write was
    /// lost to anything but a killed master, or the cluster does not end clean.
    Soak(super::soak::SoakArgs),
    /// Reconcile many clusters in one process (a benchmark of the operator's memory and
    /// start-up per cluster; `bench/operator_memory.py`).
    #[command(hide = true)]
    Host(super::local_host::HostArgs),
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// The RedisCluster manifest (YAML or JSON).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// State directory (default: .local-clusters/<name>).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Address of the HTTP API, or `off`.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: String,
    /// Exit 0 once the cluster is ready, leaving the nodes running (for scripts).
    #[arg(long)]
    pub until_ready: bool,
    /// With --until-ready: give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub ready_timeout: u64,
    /// Append the passes as trace records (JSON Lines) to this file: every pass that acts or
    /// sees something change, and one a minute of a settled cluster.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// With --record: write every pass, a settled cluster's repeats too.
    #[arg(long, requires = "record")]
    pub record_every_pass: bool,
    /// The server binary the nodes run (a `redis-server` or `valkey-server`). Default: the one
    /// a previous `up --server-binary` chose for this cluster, else `valkey-server` from PATH
    /// when spec.image names valkey, else `redis-server` from PATH. A different binary than
    /// the nodes run replaces them one by one (a rolling replacement).
    #[arg(long, value_name = "PATH")]
    pub server_binary: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct NameArgs {
    /// The cluster's name (metadata.name of its manifest).
    #[arg(long)]
    pub name: String,
    /// State directory (default: .local-clusters/<name>).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub cluster: NameArgs,
    /// Also delete every node's data and identity.
    #[arg(long)]
    pub purge: bool,
}

#[derive(clap::Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub cluster: NameArgs,
    #[arg(long)]
    pub masters: Option<u32>,
    #[arg(long)]
    pub replicas: Option<u32>,
}

pub fn run(cmd: LocalCommand) -> CmdResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            LocalCommand::Up(args) => up(args).await,
            LocalCommand::Down(args) => down(args).await,
            LocalCommand::Status(args) => status(args).await,
            LocalCommand::Scale(args) => scale(args),
            LocalCommand::Soak(args) => super::soak::run(args).await,
            LocalCommand::Host(args) => super::local_host::host(args).await,
        }
    })
}

pub(super) fn local_config(cluster: &RedisCluster, dir: &Path) -> Result<LocalConfig, CmdError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let spec = &cluster.spec;
    let base_port = u16::try_from(spec.base_port())
        .map_err(|_| format!("spec.basePort {} is not a port", spec.base_port()))?;
    let mut cfg = LocalConfig::with_server(name, dir, base_port, server_binary(cluster, dir)?);
    apply_settings(&mut cfg, spec);
    // Kubernetes reads the password from a Secret; locally it comes from the environment.
    cfg.password = std::env::var("REDIS_OPERATOR_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    Ok(cfg)
}

pub(super) fn adapter_for(cfg: &LocalConfig, spec: &RedisClusterSpec) -> RedisAdapter {
    RedisAdapter::new(AdapterConfig {
        password: cfg.password.clone(),
        migrate_batch: spec.migration_batch_keys() as usize,
        ..AdapterConfig::default()
    })
}

async fn up(args: UpArgs) -> CmdResult {
    let cluster = read_manifest(&args.file)?;
    let problems = spec::validate(&cluster.spec, None);
    if !problems.is_empty() {
        for p in &problems {
            println!("{}: {p}", args.file.display());
        }
        return Err(format!(
            "{} is invalid ({} problems)",
            args.file.display(),
            problems.len()
        )
        .into());
    }
    let name = cluster
        .metadata
        .name
        .clone()
        .ok_or("metadata.name is required")?;
    let dir = state_dir(&name, args.dir.as_deref());
    if let Some(pid) = local::read_operator_pid(&dir)? {
        return Err(format!("`local up` for {name:?} is already running (pid {pid})").into());
    }
    // Bound before anything is written: a bad or busy address changes nothing.
    let listener = if args.listen == "off" {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&args.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?,
        )
    };
    let fresh = !dir.exists();
    let prepared = (|| -> Result<_, CmdError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Some(binary) = &args.server_binary {
            save_server_binary(binary, &dir)?;
        }
        let cfg = local_config(&cluster, &dir)?;
        let backend = LocalBackend::new(cfg.clone())?;
        // `local scale` counts stay in force until the manifest is edited after them (see
        // `effective_spec`), so restarting `up` never undoes a scale.
        save_manifest(&args.file, &dir)?;
        local::write_operator_pid(&dir)?;
        Ok((cfg, backend))
    })();
    let (cfg, backend) = match prepared {
        Ok(p) => p,
        Err(e) => {
            // Nothing runs yet: a directory this call made (on a full disk, say) goes again.
            if fresh {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    let redis = adapter_for(&cfg, &cluster.spec)
        .with_progress(MigrationProgress::for_cluster(LOCAL_NAMESPACE, &name));
    // Every pass reads every node's full view, as before steady passes (benchmarks compare).
    if std::env::var("REDIS_OPERATOR_STEADY_VIEWS").is_ok_and(|v| v == "off") {
        redis.turn_off_steady_views();
    }

    let directory = Directory::new();
    let metrics = controller::http::install_metrics_recorder().ok();
    let http = HttpState::new(directory.clone(), metrics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(listener) = listener {
        eprintln!(
            "HTTP API on http://{}/cluster/nodes?clusterName={name}",
            listener.local_addr()?
        );
        controller::http::spawn_server(listener, http.clone(), stop_rx.clone());
    }

    let progress = spawn_progress_ticker(&redis, stop_rx.clone());
    let mut reconciler = Reconciler::new(
        ClusterKey::new(LOCAL_NAMESPACE, &name),
        LocalMembers(backend.clone()),
        redis,
    )
    .with_directory(directory);
    if let Some(p) = &args.record {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
        reconciler = reconciler.record_to(std::io::BufWriter::new(file));
        if args.record_every_pass {
            reconciler = reconciler.recording_every_pass();
        }
    }
    let result = run_loop(&args, &name, &dir, &mut reconciler, &http).await;
    let _ = stop_tx.send(true);
    progress.abort();
    console::finish();
    let _ = local::remove_operator_pid(&dir);
    match result {
        Ok(Outcome::Ready) => Ok(ExitCode::SUCCESS),
        Ok(Outcome::Stopped) => {
            eprintln!("stopping the nodes (their data and identities are kept)…");
            backend.stop_all().await?;
            eprintln!(
                "stopped; `redis-operator local up -f {}` brings the same cluster back",
                args.file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}

enum Outcome {
    Ready,
    Stopped,
}

/// The shell around the reconciler: reads the manifest each pass (an unreadable edit keeps
/// the last valid spec), stops on Ctrl-C or SIGTERM, and shows each pass on the console.
async fn run_loop(
    args: &UpArgs,
    name: &str,
    dir: &Path,
    reconciler: &mut Reconciler<LocalMembers>,
    http: &HttpState,
) -> Result<Outcome, CmdError> {
    let started = Instant::now();
    let mut was_ready = false;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let exits = reconciler.members().0.exits();
    loop {
        let spec = match effective_spec(&args.file, dir) {
            Ok(c) => c.spec,
            Err(e) => {
                // A broken edit of the manifest changes nothing; say so and keep the last spec.
                console::set_status(vec![format!(
                    "[{}] manifest unreadable, nothing changed: {e}",
                    reconciler.phase()
                )]);
                match reconciler.last_valid_spec() {
                    Some(s) => s.clone(),
                    None => return Err(e),
                }
            }
        };
        let step = tokio::select! {
            p = reconciler.reconcile(&spec) => p?,
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Stopped),
            _ = term.recv() => return Ok(Outcome::Stopped),
        };
        http.set_ready(true);
        for warning in &step.warnings {
            console::line(&format!("warning: {warning}"));
        }
        for loss in &step.losses {
            console::line(&format!("WARNING: DATA LOST: {loss}"));
        }
        show(&step);
        let ready = step.is_ready();
        if ready && !was_ready {
            // Nothing moves any more; the block stays above the addresses, and the next pass
            // draws a new one below.
            console::set_progress(None);
            console::finish();
            print_ready(name, &step.observation, args);
        }
        was_ready = ready;
        if ready && args.until_ready {
            return Ok(Outcome::Ready);
        }
        if args.until_ready && started.elapsed() > Duration::from_secs(args.ready_timeout) {
            return Err(format!(
                "cluster not ready after {} s (phase {}: {})",
                args.ready_timeout, step.decision.phase, step.decision.summary
            )
            .into());
        }
        // A pass that changed nothing only polls: a node's death ends that wait at once. After
        // effects the delay is the engine's (a failover under way must not be repeated).
        let idle = step.decision.effects.is_empty() && step.error.is_none();
        tokio::select! {
            _ = tokio::time::sleep(step.next_delay) => {}
            _ = exits.notified(), if idle => {
                tracing::debug!("a redis-server exited: looking at the cluster now");
            }
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Stopped),
            _ = term.recv() => return Ok(Outcome::Stopped),
        }
    }
}

/// The phase and the reason of the pass, then a slot bar per master.
fn show(step: &Pass<LocalError>) {
    let d = &step.decision;
    let mut line = format!("[{}] {}", d.phase, d.summary);
    if let Some(c) = d.condition(ConditionKind::Degraded).filter(|c| c.status) {
        line.push_str(&format!(" | DEGRADED: {}", c.message));
    }
    if let Some(e) = &step.error {
        line.push_str(&format!(" | retrying after: {e}"));
    }
    let mut lines = vec![line];
    lines.extend(slot_bars(&step.observation, BAR_WIDTH));
    console::set_status(lines);
}

fn print_ready(name: &str, obs: &Observation, args: &UpArgs) {
    let entries = node_entries(obs);
    println!("cluster {name} is ready: {} nodes", entries.len());
    for e in &entries {
        println!("  {}:{}  {:<7}  {}", e.ip, e.port, e.role, e.slots);
    }
    if args.listen != "off" {
        println!(
            "  GET http://{}/cluster/nodes?clusterName={name}",
            args.listen
        );
    }
}

/// Prints migration progress every 2 s while slots are moving.
fn spawn_progress_ticker(
    redis: &RedisAdapter,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let progress = redis.progress();
    tokio::spawn(async move {
        let mut last = (0, 0);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => return,
            }
            let s = progress.snapshot();
            if s.slots_pending() == 0 {
                console::set_progress(None);
            } else if (s.slots_done, s.keys_moved) != last {
                console::set_progress(Some(progress_line(&s)));
                last = (s.slots_done, s.keys_moved);
            }
        }
    })
}

async fn down(args: DownArgs) -> CmdResult {
    let (dir, cluster) = load_saved(&args.cluster)?;
    if let Some(pid) = local::signal_operator(&dir).await? {
        eprintln!("asked the running `local up` (pid {pid}) to stop");
        // Give it a moment to stop its loop before the nodes go away under it.
        for _ in 0..50 {
            if local::read_operator_pid(&dir)?.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let backend = LocalBackend::new(local_config(&cluster, &dir)?)?;
    if args.purge {
        backend.destroy().await?;
        println!("stopped and deleted {}", dir.display());
    } else {
        backend.stop_all().await?;
        println!("stopped; data kept in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What a running cluster looks like now, and what the engine would decide about it with
/// the spec in force (nothing is executed): what `status` prints, and how the soak judges
/// health.
pub(super) struct Judgement {
    pub desired: engine::Desired,
    pub observation: Observation,
    pub decision: engine::Decision,
}

/// `manifest`: the one the running `up` reads (its saved copy when that is not known).
pub(super) async fn judge(args: &NameArgs, manifest: Option<&Path>) -> Result<Judgement, CmdError> {
    let (dir, cluster) = load_saved(args)?;
    let cfg = local_config(&cluster, &dir)?;
    let backend = LocalBackend::new(cfg.clone())?;
    let redis = adapter_for(&cfg, &cluster.spec);
    let members = LocalMembers(backend);
    let observation = controller::observe(&members, &redis).await?;
    let manifest = manifest.map_or_else(|| saved_manifest(&dir), Path::to_path_buf);
    let spec = effective_spec(&manifest, &dir)?.spec;
    let mut desired = desired_from(&spec, None);
    desired.fingerprint = members.fingerprint(&spec);
    let decision = engine::decide(&desired, Phase::Ready, &observation);
    Ok(Judgement {
        desired,
        observation,
        decision,
    })
}

async fn status(args: NameArgs) -> CmdResult {
    let Judgement {
        desired,
        observation: obs,
        decision,
    } = judge(&args, None).await?;
    let mut out = String::new();
    let ready = if decision.is_true(ConditionKind::Ready) {
        "ready"
    } else {
        "not ready"
    };
    out.push_str(&format!(
        "{}: {} masters x {} replicas wanted; {ready}: {}\n",
        args.name, desired.masters, desired.replicas, decision.summary
    ));
    out.push_str(&format!(
        "{:<4} {:<21} {:<8} {:<10} {:<10} {:>8}  slots\n",
        "#", "address", "role", "id", "master", "keys"
    ));
    for (ord, m) in &obs.members {
        let addr = m
            .addr
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "-".into());
        match m.redis.as_ref().and_then(|s| s.myself().map(|me| (s, me))) {
            Some((s, me)) => out.push_str(&format!(
                "{:<4} {:<21} {:<8} {:<10} {:<10} {:>8}  {}\n",
                ord,
                addr,
                role(me),
                me.id.get(..8).unwrap_or(&me.id),
                me.master_id
                    .as_deref()
                    .and_then(|m| m.get(..8))
                    .unwrap_or("-"),
                s.keys,
                engine::slots::format_ranges(&me.slots)
            )),
            None => out.push_str(&format!(
                "{:<4} {:<21} {:<8}\n",
                ord,
                addr,
                if m.running { "no answer" } else { "down" }
            )),
        }
    }
    let bars = slot_bars(&obs, BAR_WIDTH);
    if !bars.is_empty() {
        out.push_str("slots 0-16383 per master (one character: 512 slots)\n");
        for b in bars {
            out.push_str(&b);
            out.push('\n');
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn scale(args: ScaleArgs) -> CmdResult {
    let (masters, replicas) = scale_to(&args)?;
    println!(
        "{}: now {masters} masters x {replicas} replicas (the running `local up` applies it)",
        args.cluster.name,
    );
    Ok(ExitCode::SUCCESS)
}

/// Validates the new counts against the spec in force and hands them to the running `up`
/// (`desired.json`); returns the counts now wanted.
pub(super) fn scale_to(args: &ScaleArgs) -> Result<(u32, u32), CmdError> {
    let (dir, _) = load_saved(&args.cluster)?;
    let current = effective_spec(&saved_manifest(&dir), &dir)?.spec;
    let mut next = current.clone();
    if let Some(m) = args.masters {
        next.masters = m;
    }
    if let Some(r) = args.replicas {
        next.replicas = Some(r);
    }
    let problems = spec::validate(&next, Some(&current));
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(format!("nothing changed: {}", list.join("; ")).into());
    }
    local::write_desired(&dir, next.masters, next.replicas())?;
    Ok((next.masters, next.replicas()))
}
