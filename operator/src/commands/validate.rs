//! `redis-operator validate -f FILE`: parse a RedisCluster manifest and run every validation
//! rule, printing `ok` or each problem on its own line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::CmdResult;

#[derive(clap::Args)]
pub struct Args {
    /// Manifest to check (YAML or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
}

pub fn run(args: Args) -> CmdResult {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read standard input: {e}"))?
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
    };
    let cluster =
        spec::parse_manifest(&text).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let problems = spec::validate(&cluster.spec, None);
    for warning in spec::warnings(&cluster.spec) {
        eprintln!("warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    if problems.is_empty() {
        writeln!(out, "ok")?;
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        writeln!(out, "{problem}")?;
    }
    Ok(ExitCode::FAILURE)
}
