//! How a reconcile that failed outside the core's pass is tried again, and how it is shown.
//!
//! A transient failure (a timeout, a 409, a 500, the API server restarting) is retried with an
//! exponential backoff, so an API server in trouble is not hammered by every cluster at once,
//! and logged. A permanent one (403 forbidden, 422 invalid: only a person can fix it) is
//! reported once, as a Warning event and a log line, and looked at again rarely; the edit
//! that fixes it triggers a reconcile of its own. The first success forgets both.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first retry of a transient failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two tries of a transient failure.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How often a permanent failure is tried again without any change to the object (a Role
/// granted later shows no event on the `RedisCluster`).
const PERMANENT_RETRY: Duration = Duration::from_secs(300);

/// What to do about one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Try again after this long.
    pub retry_after: Duration,
    /// Tell people (a Warning event): the first time this permanent failure is seen.
    pub report: bool,
    /// Failures in a row of this cluster, this one included.
    pub failures: u32,
}

#[derive(Debug, Default)]
struct Track {
    failures: u32,
    /// The message of the permanent failure last reported.
    reported: Option<String>,
}

/// Failures in a row per cluster (namespace, name).
#[derive(Debug, Default)]
pub struct Retries {
    tracks: Mutex<HashMap<(String, String), Track>>,
}

impl Retries {
    /// Records a failure of `key` and says when to try again and whether to report it.
    pub fn failed(&self, key: (String, String), transient: bool, message: &str) -> Verdict {
        let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        let track = tracks.entry(key).or_default();
        track.failures = track.failures.saturating_add(1);
        if transient {
            // A transient failure between two permanent ones: report the next permanent anew.
            track.reported = None;
            return Verdict {
                retry_after: backoff(track.failures),
                report: false,
                failures: track.failures,
            };
        }
        let report = track.reported.as_deref() != Some(message);
        track.reported = Some(message.to_string());
        Verdict {
            retry_after: PERMANENT_RETRY,
            report,
            failures: track.failures,
        }
    }

    /// A reconcile of `key` succeeded (or the cluster is gone): the count starts over.
    pub fn succeeded(&self, key: &(String, String)) {
        self.tracks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// 1 s, 2 s, 4 s ... up to a minute, for the `failures`-th failure in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (String, String) {
        ("ns".to_string(), "c".to_string())
    }

    #[test]
    fn transient_failures_back_off_exponentially_up_to_a_minute() {
        let r = Retries::default();
        let waits: Vec<u64> = (0..9)
            .map(|_| r.failed(key(), true, "timeout").retry_after.as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_success_starts_the_backoff_over() {
        let r = Retries::default();
        for _ in 0..5 {
            r.failed(key(), true, "timeout");
        }
        r.succeeded(&key());
        assert_eq!(r.failed(key(), true, "timeout").retry_after, FIRST_RETRY);
    }

    #[test]
    fn a_permanent_failure_is_reported_once_until_its_message_changes() {
        let r = Retries::default();
        let reports: Vec<bool> = ["forbidden", "forbidden", "forbidden", "invalid"]
            .iter()
            .map(|m| r.failed(key(), false, m).report)
            .collect();
        assert_eq!(reports, [true, false, false, true]);
        assert_eq!(
            r.failed(key(), false, "invalid").retry_after,
            PERMANENT_RETRY
        );
    }

    #[test]
    fn a_permanent_failure_is_reported_again_after_it_was_fixed() {
        let r = Retries::default();
        assert!(r.failed(key(), false, "forbidden").report);
        r.succeeded(&key());
        assert!(r.failed(key(), false, "forbidden").report);
    }

    #[test]
    fn clusters_back_off_independently() {
        let r = Retries::default();
        for _ in 0..4 {
            r.failed(key(), true, "timeout");
        }
        let other = ("ns".to_string(), "other".to_string());
        assert_eq!(r.failed(other, true, "timeout").retry_after, FIRST_RETRY);
    }

    #[test]
    fn transient_failures_are_never_reported_as_events() {
        let r = Retries::default();
        assert!((0..3).all(|_| !r.failed(key(), true, "timeout").report));
    }
}
