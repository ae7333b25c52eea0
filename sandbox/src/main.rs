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
        } => up(kubeconfig, listen, state_dir),
        Command::Down { state_dir } => down(&state_dir),
        Command::Fault {
            kubeconfig,
            cut_watches,
            compact,
            latency_ms,
            conflicts,
            down_for_ms,
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
            fault(&kubeconfig, &serde_json::Value::Object(req))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(kubeconfig: PathBuf, listen: SocketAddr, state_dir: Option<PathBuf>) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async move {
        let mut builder = Sandbox::builder().listen(listen);
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

/// The `host:port` of the kubeconfig's current cluster (plain http only) and the bearer
/// token of its user.
fn server_address(kubeconfig: &std::path::Path) -> Result<(String, String), CliError> {
    let bad = |why: String| CliError::Fault(format!("{}: {why}", kubeconfig.display()));
    let text = std::fs::read_to_string(kubeconfig).map_err(|e| bad(e.to_string()))?;
    let config: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let current = config["current-context"].as_str().unwrap_or("");
    let contexts = config["contexts"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let context = contexts
        .iter()
        .find(|c| c["name"].as_str() == Some(current));
    let cluster_name = context
        .and_then(|c| c["context"]["cluster"].as_str())
        .unwrap_or("");
    let user_name = context
        .and_then(|c| c["context"]["user"].as_str())
        .unwrap_or("");
    let users = config["users"].as_sequence().cloned().unwrap_or_default();
    let token = users
        .iter()
        .find(|u| u["name"].as_str() == Some(user_name))
        .and_then(|u| u["user"]["token"].as_str())
        .unwrap_or("")
        .to_string();
    let clusters = config["clusters"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let server = clusters
        .iter()
        .find(|c| c["name"].as_str() == Some(cluster_name))
        .or_else(|| clusters.first())
        .and_then(|c| c["cluster"]["server"].as_str())
        .ok_or_else(|| bad("no cluster server".into()))?;
    let addr = server
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/').to_string())
        .ok_or_else(|| bad(format!("{server} is not a kube-sandbox http address")))?;
    Ok((addr, token))
}

fn fault(kubeconfig: &std::path::Path, req: &serde_json::Value) -> Result<(), CliError> {
    use std::io::{Read, Write};
    if req.as_object().is_none_or(|m| m.is_empty()) {
        return Err(CliError::Fault(
            "name at least one fault: --cut-watches, --compact, --latency-ms, --conflicts or --down-for-ms".into(),
        ));
    }
    let (addr, token) = server_address(kubeconfig)?;
    let body = req.to_string();
    let mut stream = std::net::TcpStream::connect(&addr)
        .map_err(|e| CliError::Fault(format!("cannot reach the sandbox at {addr}: {e}")))?;
    let request = format!(
        "POST /sandbox/faults HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let io = |e: std::io::Error| CliError::Fault(format!("talking to {addr}: {e}"));
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io)?;
    let status_line = answer.lines().next().unwrap_or("");
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        Err(CliError::Fault(format!(
            "the sandbox refused the fault: {status_line} {body}"
        )))
    }
}
