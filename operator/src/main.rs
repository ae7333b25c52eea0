#![forbid(unsafe_code)]
//! `redis-operator`: the one binary. Subcommands live in `commands/`, one module each.

mod commands;
mod console;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "redis-operator",
    version,
    about = "Creates, scales, heals and monitors Redis Cluster"
)]
struct Cli {
    /// Log filter (tracing's env-filter syntax); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a RedisCluster manifest: prints `ok` or every problem, one per line.
    Validate(commands::validate::Args),
    /// Print the RedisCluster CustomResourceDefinition generated from the Rust types.
    Crd(commands::crd::Args),
    /// Run the Kubernetes operator: watch RedisClusters and serve the HTTP API.
    Run(commands::run::Args),
    /// Run a real Redis Cluster of local redis-server processes, no Kubernetes needed.
    #[command(subcommand)]
    Local(commands::local::LocalCommand),
    /// Replay recorded cluster states, or run seeded random simulations.
    #[command(subcommand)]
    Simulate(commands::simulate::SimulateCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Crd(args) => commands::crd::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Local(cmd) => commands::local::run(cmd),
        Command::Simulate(cmd) => commands::simulate::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: logs sent to a file or a pipe carry no escape sequences.
    // `NO_COLOR` (any value) turns colour off on a terminal too.
    let ansi = console::is_tty() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(console::LogWriter)
        .with_target(false)
        .init();
}
