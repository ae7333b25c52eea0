use super::CmdResult;

#[derive(clap::Subcommand)]
pub enum SimulateCommand {
    /// Run seeded random simulations.
    Run,
}

pub fn run(_cmd: SimulateCommand) -> CmdResult {
    Err("not available yet".into())
}
