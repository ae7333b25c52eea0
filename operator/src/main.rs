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
    /// Log filter (tracing's env-filter syntax); RUST_LOG overrides it. Default: `info`;
    /// `error` for `local soak`, whose report is its output (its observations of nodes it
    /// killed on purpose would warn every 100 ms).
    #[arg(long, global = true)]
    log: Option<String>,
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let quiet = matches!(
        cli.command,
        Command::Local(commands::local::LocalCommand::Soak(_))
    );
    let log = cli
        .log
        .clone()
        .unwrap_or_else(|| if quiet { "error" } else { "info" }.into());
    if let Err(e) = init_tracing(&log) {
        eprintln!("error: --log {log:?} is not a log filter: {e}");
        return ExitCode::from(2);
    }
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

/// A bad argument gets clap's one-line reason and exit code 2 (its usage page would bury the
/// reason); `--help`, `--version` and a missing subcommand print what they always print.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // clap spreads one reason over lines (the missing arguments, a tip), then the usage:
    // keep the reason, on one line.
    let text = e.to_string();
    let reason: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("{} (see --help)", reason.join(" "));
    ExitCode::from(2)
}

/// `RUST_LOG` wins when set and valid (an invalid one falls back to `--log`, as operators
/// expect of the variable); an invalid `--log` is the user's argument and an error.
fn init_tracing(flag: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    use tracing_subscriber::EnvFilter;
    let from_flag = EnvFilter::try_new(flag)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or(from_flag);
    // Colour only on a terminal: logs sent to a file or a pipe carry no escape sequences.
    // `NO_COLOR` (any value) turns colour off on a terminal too.
    let ansi = console::is_tty() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(console::LogWriter)
        .with_target(false)
        .init();
    Ok(())
}
