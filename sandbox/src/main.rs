#![forbid(unsafe_code)]
//! `kube-sandbox up|down`: run the API server in the foreground, or stop one by its pid file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube_sandbox::Sandbox;

#[derive(Parser)]
#[command(
    name = "kube-sandbox",
    about = "A Kubernetes API server on loopback for tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API in the foreground until Ctrl-C.
    Up {
        /// Where to write the kubeconfig for kubectl, helm and kube-rs.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Loopback address to serve on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Keep objects here across restarts (and a pid file for `down`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Serve HTTPS with a sandbox CA (written into the kubeconfig), so kubectl and helm
        /// can present service-account tokens.
        #[arg(long)]
        tls: bool,
        /// Emulated nodes; pods bound to them run as local processes (0: API only).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
    /// Stop the sandbox whose state dir is given.
    Down {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Inject faults into a running sandbox (the one the kubeconfig points at).
    Fault {
        #[arg(long)]
        kubeconfig: PathBuf,
        /// End every open watch stream.
        #[arg(long)]
        cut_watches: bool,
        /// Forget the event history: resuming a watch gets 410 Gone.
        #[arg(long)]
        compact: bool,
        /// Delay every request by this many milliseconds (0 turns it off).
        #[arg(long)]
        latency_ms: Option<u64>,
        /// Fail the next N writes of RESOURCE (a plural, e.g. configmaps) with 409.
        #[arg(long, value_name = "RESOURCE=N", value_parser = parse_conflicts)]
        conflicts: Option<(String, u32)>,
        /// Answer 503 to every request for this many milliseconds.
        #[arg(long)]
        down_for_ms: Option<u64>,
        /// SIGKILL a container's process; the kubelet restarts it per restartPolicy.
        #[arg(long, value_name = "NAMESPACE/POD[/CONTAINER]")]
        kill_container: Option<String>,
        /// Freeze every process of a node's pods (SIGSTOP); the node goes NotReady.
        #[arg(long, value_name = "NODE")]
        stop_node: Option<String>,
        /// Kill every process of a node's pods (SIGKILL), as a power loss; the node goes
        /// NotReady and runs nothing until --start-node.
        #[arg(long, value_name = "NODE")]
        kill_node: Option<String>,
        /// Resume a stopped node (SIGCONT) or reboot a killed one (its containers restart
        /// per restartPolicy); it turns Ready again.
        #[arg(long, value_name = "NODE")]
        start_node: Option<String>,
    },
}

fn parse_conflicts(s: &str) -> Result<(String, u32), String> {
    let (resource, n) = s
        .split_once('=')
        .ok_or("expected RESOURCE=N, e.g. configmaps=2")?;
    let n = n
        .parse::<u32>()
        .map_err(|_| format!("{n:?} is not a count"))?;
    if resource.is_empty() {
        return Err("the resource is empty".into());
    }
    Ok((resource.to_string(), n))
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Sandbox(#[from] kube_sandbox::SandboxError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Down(String),
    #[error("{0}")]
    Fault(String),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version are not failures.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Clap's message spans several lines (reason, details, usage); keep the reason
            // and its details on one line.
            let text = e.to_string();
            let reason: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!(
                "kube-sandbox: {}",
                reason.join(" ").trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Up {
            kubeconfig,
            listen,
            state_dir,
            tls,
            nodes,
        } => up(kubeconfig, listen, state_dir, tls, nodes),
        Command::Down { state_dir } => down(&state_dir),
        Command::Fault {
            kubeconfig,
            cut_watches,
            compact,
            latency_ms,
            conflicts,
            down_for_ms,
            kill_container,
            stop_node,
            kill_node,
            start_node,
        } => {
            let mut req = serde_json::Map::new();
            if cut_watches {
                req.insert("cutWatches".into(), true.into());
            }
            if compact {
                req.insert("compact".into(), true.into());
            }
            if let Some(ms) = latency_ms {
                req.insert("latencyMs".into(), ms.into());
            }
            if let Some((resource, count)) = conflicts {
                req.insert(
                    "conflicts".into(),
                    serde_json::json!({"resource": resource, "count": count}),
                );
            }
            if let Some(ms) = down_for_ms {
                req.insert("downForMs".into(), ms.into());
            }
            if let Some(target) = kill_container {
                let parts: Vec<&str> = target.split('/').collect();
                let (ns, pod, container) = match parts[..] {
                    [ns, pod] => (ns, pod, None),
                    [ns, pod, c] => (ns, pod, Some(c)),
                    _ => {
                        return report(Err(CliError::Fault(format!(
                            "--kill-container takes NAMESPACE/POD[/CONTAINER], not {target:?}"
                        ))));
                    }
                };
                req.insert(
                    "killContainer".into(),
                    serde_json::json!({"namespace": ns, "pod": pod, "container": container}),
                );
            }
            if let Some(node) = stop_node {
                req.insert("stopNode".into(), node.into());
            }
            if let Some(node) = kill_node {
                req.insert("killNode".into(), node.into());
            }
            if let Some(node) = start_node {
                req.insert("startNode".into(), node.into());
            }
            fault(&kubeconfig, &serde_json::Value::Object(req))
        }
    };
    report(result)
}

fn report(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(
    kubeconfig: PathBuf,
    listen: SocketAddr,
    state_dir: Option<PathBuf>,
    tls: bool,
    nodes: usize,
) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async move {
        let mut builder = Sandbox::builder().listen(listen).tls(tls).nodes(nodes);
        if let Some(dir) = &state_dir {
            builder = builder.state_dir(dir);
        }
        let handle = builder.start().await?;
        handle.write_kubeconfig(&kubeconfig)?;
        let pid_file = state_dir.as_ref().map(|d| d.join("kube-sandbox.pid"));
        if let Some(pid_file) = &pid_file {
            std::fs::write(pid_file, std::process::id().to_string()).map_err(|source| {
                kube_sandbox::SandboxError::File {
                    path: pid_file.display().to_string(),
                    source,
                }
            })?;
        }
        println!(
            "kube-sandbox serving {} (kubeconfig {})",
            handle.url(),
            kubeconfig.display()
        );
        wait_for_signal().await;
        tracing::info!("stopping");
        handle.stop().await?;
        if let Some(pid_file) = pid_file {
            let _ = std::fs::remove_file(pid_file);
        }
        Ok(())
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn down(state_dir: &std::path::Path) -> Result<(), CliError> {
    let pid_file = state_dir.join("kube-sandbox.pid");
    let pid = std::fs::read_to_string(&pid_file).map_err(|e| {
        CliError::Down(format!(
            "no running sandbox recorded in {}: {e}",
            pid_file.display()
        ))
    })?;
    let pid = pid.trim();
    if pid.parse::<u32>().is_err() {
        return Err(CliError::Down(format!(
            "{} does not hold a process id",
            pid_file.display()
        )));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .map_err(|e| CliError::Down(format!("cannot run kill: {e}")))?;
    if !status.success() {
        return Err(CliError::Down(format!("process {pid} is not running")));
    }
    Ok(())
}

/// Posts a fault request to the sandbox the kubeconfig names, as its user.
fn fault(kubeconfig: &std::path::Path, req: &serde_json::Value) -> Result<(), CliError> {
    if req.as_object().is_none_or(|m| m.is_empty()) {
        return Err(CliError::Fault(
            "name at least one fault: --cut-watches, --compact, --latency-ms, --conflicts, --down-for-ms, --kill-container, --stop-node, --kill-node or --start-node".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async {
        let bad = |e: String| CliError::Fault(format!("{}: {e}", kubeconfig.display()));
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| bad(e.to_string()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        let request = hyper::Request::post("/sandbox/faults")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(req.to_string().into_bytes())
            .map_err(|e| CliError::Fault(e.to_string()))?;
        client
            .request_text(request)
            .await
            .map(|_| ())
            .map_err(|e| CliError::Fault(format!("the sandbox refused the fault: {e}")))
    })
}
