use super::CmdResult;

#[derive(clap::Subcommand)]
pub enum LocalCommand {
    /// Build the cluster and keep reconciling it in the foreground.
    Up,
}

pub fn run(_cmd: LocalCommand) -> CmdResult {
    Err("not available yet".into())
}
