#![forbid(unsafe_code)]
//! Cluster members as local `redis-server` (or `valkey-server`) processes, for
//! `redis-operator local`.
//!
//! Member `k` of a cluster lives in `<dir>/node-<k>/` and listens on `bind_ip:(base_port + k)`
//! (bus port + 10000). Everything needed to find a member again is on disk — its config,
//! `nodes.conf` and `redis.pid` — so a new operator process adopts the nodes a previous one left
//! running instead of restarting or re-creating them. Processes run in their own process group
//! so that Ctrl-C on the operator never reaches them.

mod backend;
mod config;
mod control;
mod error;
mod process;
pub mod resp;
mod server;

pub use backend::{LocalBackend, LocalMember};
pub use config::{LocalConfig, find_redis_server};
pub use control::{
    Desired, read_desired, read_operator_pid, remove_operator_pid, signal_operator, write_desired,
    write_operator_pid,
};
pub use error::LocalError;
pub use server::{check_server_binary, image_is_valkey, server_for_image};
