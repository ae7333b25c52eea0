//! `redis-operator crd`: print the RedisCluster CRD generated from the spec crate's types.
//! The chart's `crds/` file is exactly this output.

use std::io::Write;
use std::process::ExitCode;

use super::CmdResult;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    std::io::stdout()
        .lock()
        .write_all(spec::crd_yaml().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
