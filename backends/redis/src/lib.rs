#![forbid(unsafe_code)]
//! Talks to real Redis nodes for the engine: [`RedisAdapter::observe`] turns nodes into an
//! [`engine::Observation`], [`RedisAdapter::execute`] turns [`engine::Effect`]s into cluster
//! commands. One multiplexed connection per node, every call bounded by timeouts.
//!
//! ```no_run
//! # async fn demo(members: Vec<redis_operator_redis::MemberInfo>, effects: Vec<engine::Effect>)
//! # -> Result<(), redis_operator_redis::AdapterError> {
//! use redis_operator_redis::{AdapterConfig, ExecContext, RedisAdapter};
//! let adapter = RedisAdapter::new(AdapterConfig::default());
//! let observation = adapter.observe(members, 1_700_000_000_000).await;
//! let ctx = ExecContext::from_observation(&observation);
//! for effect in &effects {
//!     adapter.execute(effect, &ctx).await?;
//! }
//! # Ok(()) }
//! ```

mod config;
mod connection;
mod error;
mod executor;
mod handover;
mod migrate;
mod observer;
mod progress;
mod protected;
mod replication;
mod server;

pub use config::AdapterConfig;
/// One description of a member for every backend; defined by the engine's model.
pub use engine::model::MemberInfo;
pub use error::AdapterError;
pub use executor::ExecContext;
pub use observer::node_state_from_replies;
pub use progress::{MigrationProgress, ProgressSnapshot, describe_metrics};
pub use server::{ServerInfo, ServerKind};

use connection::Pool;
use std::sync::Arc;

/// The adapter. Cheap to clone; clones share connections and progress.
#[derive(Clone)]
pub struct RedisAdapter {
    pool: Pool,
    progress: MigrationProgress,
}

impl RedisAdapter {
    pub fn new(config: AdapterConfig) -> Self {
        Self {
            pool: Pool::new(Arc::new(config)),
            progress: MigrationProgress::new(),
        }
    }

    pub fn config(&self) -> &AdapterConfig {
        self.pool.config()
    }

    /// Progress counters of every migration this adapter (and its clones) ran.
    pub fn progress(&self) -> MigrationProgress {
        self.progress.clone()
    }

    /// The same adapter (same connections) counting into `progress`, e.g. a fresh one per
    /// rebalance so a CLI shows that rebalance alone.
    pub fn with_progress(&self, progress: MigrationProgress) -> Self {
        Self {
            pool: self.pool.clone(),
            progress,
        }
    }
}
