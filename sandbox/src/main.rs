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
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Sandbox(#[from] kube_sandbox::SandboxError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Down(String),
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
