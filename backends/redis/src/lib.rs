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

mod announce;
mod config;
mod connection;
mod dropped;
mod error;
mod executor;
mod handover;
mod keys;
mod migrate;
mod observer;
mod progress;
mod protected;
mod replication;
mod replies;
mod server;
mod view_cache;

pub use config::AdapterConfig;
/// One description of a member for every backend; defined by the engine's model.
pub use engine::model::MemberInfo;
pub use error::AdapterError;
pub use executor::ExecContext;
pub use handover::HandOverTurn;
pub use observer::{Views, ViewsRead};
pub use progress::{MigrationProgress, ProgressSnapshot, describe_metrics};
pub use replies::node_state_from_replies;
pub use server::{ServerInfo, ServerKind};

use connection::Pool;
use std::sync::Arc;

/// The adapter. Cheap to clone; clones share connections and progress.
#[derive(Clone)]
pub struct RedisAdapter {
    pool: Pool,
    progress: MigrationProgress,
    /// Full views remembered for steady observations; a plain mutex, never held across an
    /// await.
    views: Arc<std::sync::Mutex<view_cache::ViewCache>>,
    /// One hand-over per node at a time, each above its source's epoch.
    gate: Arc<handover::EpochGate>,
    /// Whether each node's server hands over source-first, with the generation of the
    /// connection it was read on: read again only once that connection broke (a restarted,
    /// perhaps upgraded, server breaks it).
    servers: Arc<std::sync::Mutex<std::collections::HashMap<engine::Addr, (u64, bool)>>>,
}

impl RedisAdapter {
    pub fn new(config: AdapterConfig) -> Self {
        Self {
            pool: Pool::new(Arc::new(config)),
            progress: MigrationProgress::new(),
            views: Arc::default(),
            gate: Arc::default(),
            servers: Arc::default(),
        }
    }

    pub fn config(&self) -> &AdapterConfig {
        self.pool.config()
    }

    /// Turns steady observations off for this adapter and its clones: every observation reads
    /// every node's full view, as before they existed (`REDIS_OPERATOR_STEADY_VIEWS=off` in
    /// local mode; benchmarks compare both).
    pub fn turn_off_steady_views(&self) {
        if let Ok(mut views) = self.views.lock() {
            views.turn_off();
        }
    }

    /// Forgets every remembered full view: the next steady observation reads them all.
    /// Executing an effect does it; a caller that changed the cluster by other means does too.
    pub fn forget_views(&self) {
        if let Ok(mut views) = self.views.lock() {
            views.clear();
        }
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
            views: self.views.clone(),
            gate: self.gate.clone(),
            servers: self.servers.clone(),
        }
    }
}
