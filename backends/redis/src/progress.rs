//! Live migration progress, shared between the executor (which counts) and whoever renders it
//! (a CLI, the operator's status). Cloning is cheap: all clones see the same counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct MigrationProgress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `namespace` and `cluster` of the cluster this progress belongs to, on every series.
    labels: Vec<metrics::Label>,
    started_at: Instant,
    slots_total: AtomicU64,
    slots_done: AtomicU64,
    keys_moved: AtomicU64,
    /// Milliseconds after `started_at` of the last progress log line.
    last_log_ms: AtomicU64,
}

/// A consistent-enough copy of the counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressSnapshot {
    pub slots_total: u64,
    pub slots_done: u64,
    pub keys_moved: u64,
    pub elapsed: Duration,
}

impl ProgressSnapshot {
    pub fn slots_pending(&self) -> u64 {
        self.slots_total.saturating_sub(self.slots_done)
    }

    pub fn keys_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.keys_moved as f64 / secs
        } else {
            0.0
        }
    }
}

impl Default for MigrationProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// Names of the migration metrics.
pub const MIGRATED_SLOTS: &str = "redis_operator_migrated_slots_total";
pub const MIGRATED_KEYS: &str = "redis_operator_migrated_keys_total";
pub const SLOTS_PENDING: &str = "redis_operator_migration_slots_pending";

/// Registers the help text of the migration metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        MIGRATED_SLOTS,
        "Slots whose keys and ownership moved to another master"
    );
    metrics::describe_counter!(MIGRATED_KEYS, "Keys moved between masters by MIGRATE");
    metrics::describe_gauge!(
        SLOTS_PENDING,
        "Slots the migrations under way still have to move"
    );
}

impl MigrationProgress {
    /// Progress whose metrics carry no cluster label (tests, one-off CLI runs).
    pub fn new() -> Self {
        Self::labelled(Vec::new())
    }

    /// Progress of one cluster: its metrics carry `namespace` and `cluster`.
    pub fn for_cluster(namespace: &str, cluster: &str) -> Self {
        Self::labelled(vec![
            metrics::Label::new("namespace", namespace.to_string()),
            metrics::Label::new("cluster", cluster.to_string()),
        ])
    }

    fn labelled(labels: Vec<metrics::Label>) -> Self {
        Self {
            inner: Arc::new(Inner {
                labels,
                started_at: Instant::now(),
                slots_total: AtomicU64::new(0),
                slots_done: AtomicU64::new(0),
                keys_moved: AtomicU64::new(0),
                last_log_ms: AtomicU64::new(0),
            }),
        }
    }

    pub fn started_at(&self) -> Instant {
        self.inner.started_at
    }

    pub fn slots_total(&self) -> u64 {
        self.inner.slots_total.load(Ordering::Relaxed)
    }

    pub fn slots_done(&self) -> u64 {
        self.inner.slots_done.load(Ordering::Relaxed)
    }

    pub fn keys_moved(&self) -> u64 {
        self.inner.keys_moved.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            slots_total: self.slots_total(),
            slots_done: self.slots_done(),
            keys_moved: self.keys_moved(),
            elapsed: self.inner.started_at.elapsed(),
        }
    }

    pub(crate) fn add_slots(&self, n: u64) {
        self.inner.slots_total.fetch_add(n, Ordering::Relaxed);
        self.publish_pending();
    }

    pub(crate) fn slot_done(&self) {
        self.inner.slots_done.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(MIGRATED_SLOTS, self.inner.labels.iter()).increment(1);
        self.publish_pending();
    }

    /// A slot that will not be finished by this run (error): it no longer counts as pending
    /// here; the next observation will plan it again.
    pub(crate) fn slot_abandoned(&self) {
        self.inner.slots_total.fetch_sub(1, Ordering::Relaxed);
        self.publish_pending();
    }

    pub(crate) fn keys_moved_add(&self, n: u64) {
        self.inner.keys_moved.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(MIGRATED_KEYS, self.inner.labels.iter()).increment(n);
    }

    fn publish_pending(&self) {
        let pending = self.slots_total().saturating_sub(self.slots_done());
        metrics::gauge!(SLOTS_PENDING, self.inner.labels.iter()).set(pending as f64);
    }

    /// Logs a progress line if `interval` passed since the last one. Whoever wins the
    /// compare-exchange logs, so concurrent slot tasks do not print duplicates.
    pub(crate) fn maybe_log(&self, interval: Duration) {
        let now_ms = self.inner.started_at.elapsed().as_millis() as u64;
        let last = self.inner.last_log_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < interval.as_millis() as u64 {
            return;
        }
        if self
            .inner
            .last_log_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let s = self.snapshot();
            tracing::info!(
                keys_moved = s.keys_moved,
                keys_per_s = s.keys_per_second().round() as u64,
                slots_done = s.slots_done,
                slots_left = s.slots_pending(),
                "slot migration progress"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counters_and_pending_is_total_minus_done() {
        let p = MigrationProgress::new();
        let view = p.clone();
        p.add_slots(5);
        p.slot_done();
        p.slot_abandoned();
        p.keys_moved_add(40);
        let s = view.snapshot();
        assert_eq!((s.slots_total, s.slots_done, s.keys_moved), (4, 1, 40));
        assert_eq!(s.slots_pending(), 3);
    }
}
