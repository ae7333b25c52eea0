//! Errors of the local backend. Each Display is one line a user can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("redis-server not found on PATH; install it with `apt-get install -y redis-server`")]
    RedisServerNotFound,

    #[error("redis-server binary {0} does not exist or is not a file")]
    RedisServerMissing(PathBuf),

    #[error(
        "spec.image {image} asks for Valkey, but valkey-server is not on PATH; install it \
         (`bash scripts/valkey.sh` puts Valkey 8.1 in target/tools/valkey/bin) or pass \
         --server-binary PATH"
    )]
    ValkeyServerNotFound { image: String },

    #[error("{path} is not a redis-server or valkey-server binary: {reason}")]
    NotAServer { path: PathBuf, reason: String },

    #[error("member #{ordinal}: port {base_port} + {ordinal} (bus port + 10000) exceeds 65535")]
    PortOutOfRange { ordinal: u32, base_port: u16 },

    #[error(
        "member #{ordinal}: {addr} is already in use by another process; choose another base port or stop it"
    )]
    PortInUse { ordinal: u32, addr: String },

    #[error("member #{ordinal} on {addr} did not start: {reason}; last lines of {log}:\n{tail}")]
    StartFailed {
        ordinal: u32,
        addr: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },

    #[error("member #{ordinal} (pid {pid}) did not stop within {secs} s, even after SIGKILL")]
    StopFailed { ordinal: u32, pid: u32, secs: u64 },

    #[error("`kill -{signal} {pid}` failed: {reason}")]
    Signal {
        signal: &'static str,
        pid: u32,
        reason: String,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not valid JSON for the desired shape: {source}")]
    BadDesired {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{path}: does not hold a pid: {content:?}")]
    BadPidFile { path: PathBuf, content: String },

    #[error("redis at {addr}: {reason}")]
    Redis { addr: String, reason: String },
}

impl LocalError {
    /// Attach the path an I/O error is about: a bare "No such file" helps nobody.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LocalError::Io { path, source }
    }
}

pub type Result<T, E = LocalError> = std::result::Result<T, E>;
