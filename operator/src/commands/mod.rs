//! One module per subcommand. Each `run` returns the exit code, or an error whose one-line
//! Display is printed as `error: …`.

pub mod crd;
pub mod kube;
pub mod local;
mod local_display;
mod local_host;
mod local_members;
mod local_state;
mod record;
pub mod run;
pub mod simulate;
mod soak;
pub mod validate;

/// The error every command returns: a one-line reason for the user.
pub type CmdError = Box<dyn std::error::Error + Send + Sync>;
pub type CmdResult = Result<std::process::ExitCode, CmdError>;
