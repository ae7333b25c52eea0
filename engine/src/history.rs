//! What happened before this observation, as far as a decision needs it: effects that keep
//! failing the same way, and masters that came back without their data. The engine keeps no
//! state of its own; the shell holds a [`Memory`], updates it after every observation and
//! every pass, and hands its [`History`] to the engine inside the [`Observation`]. Both stay
//! pure (no clock: `now_ms` comes from the observation), so a trace replays the same.

use crate::effect::Effect;
use crate::model::{Observation, Ordinal};
use crate::slots::{self, SlotRange};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An effect that failed several passes in a row is reported in `Degraded` from this count on.
pub const STUCK_AFTER: u32 = 3;
/// How long a master that came back empty stays reported: long enough for an operator to see
/// it on the next look at the status, short enough not to hide a later incident.
pub const LOSS_RETENTION_MS: u64 = 60 * 60 * 1000;

/// The part of the past a decision reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The effect that failed on the last pass(es), if it failed more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<EffectFailure>,
    /// Masters that came back empty, within [`LOSS_RETENTION_MS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<DataLoss>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.failure.is_none() && self.losses.is_empty()
    }
}

/// The same effect failed on consecutive passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectFailure {
    pub effect: Effect,
    /// The last error, as the backend said it.
    pub error: String,
    /// Consecutive passes on which it failed.
    pub times: u32,
    /// When it first failed in this run of failures.
    pub since_ms: u64,
}

/// A master that stopped answering and came back with no key while still owning slots: its
/// data is gone (no replica took over, no persistence brought it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataLoss {
    pub ordinal: Ordinal,
    pub node_id: String,
    pub slots: Vec<SlotRange>,
    /// Keys it held at the last observation before it went down.
    pub keys: u64,
    pub at_ms: u64,
}

impl std::fmt::Display for DataLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "master #{} ({}) came back empty: the {} keys it held in slots {} at its last \
             observation are lost (no replica took over, no persistence)",
            self.ordinal,
            self.node_id.get(..8).unwrap_or(&self.node_id),
            self.keys,
            slots::format_ranges(&self.slots)
        )
    }
}

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC), for messages that must not
/// change from one pass to the next (a count of seconds would).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What a master looked like the last time it answered.
#[derive(Debug, Clone)]
struct Seen {
    keys: u64,
    slots: Vec<SlotRange>,
}

/// The shell's memory of one cluster.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    failure: Option<EffectFailure>,
    losses: Vec<DataLoss>,
    /// Masters by node id, as last seen answering.
    seen: BTreeMap<String, Seen>,
    /// Node ids that did not answer at some observation since they were last seen.
    went_down: BTreeSet<String>,
}

impl Memory {
    /// The history to put into the next observation.
    pub fn history(&self, now_ms: u64) -> History {
        History {
            failure: self.failure.clone().filter(|f| f.times > 1),
            losses: self
                .losses
                .iter()
                .filter(|l| now_ms.saturating_sub(l.at_ms) < LOSS_RETENTION_MS)
                .cloned()
                .collect(),
        }
    }

    /// Takes in an observation; returns the data losses it reveals for the first time. A
    /// master is lost when it went down (stopped answering) and came back as a master of
    /// some of the same slots with no key, after it held some: a master emptied while it kept
    /// answering was emptied by a client (`FLUSHALL`), not lost.
    pub fn observed(&mut self, obs: &Observation) -> Vec<DataLoss> {
        let mut found = Vec::new();
        let mut answered = BTreeSet::new();
        for (ordinal, m) in &obs.members {
            let Some(state) = m.redis.as_ref().filter(|_| m.running) else {
                continue;
            };
            let Some(me) = state.myself() else { continue };
            answered.insert(me.id.clone());
            let is_master = me.is_master();
            if is_master
                && state.keys == 0
                && self.went_down.contains(&me.id)
                && let Some(before) = self.seen.get(&me.id)
                && before.keys > 0
            {
                let kept = slots::common(&me.slots, &before.slots);
                if !kept.is_empty() {
                    found.push(DataLoss {
                        ordinal: *ordinal,
                        node_id: me.id.clone(),
                        slots: kept,
                        keys: before.keys,
                        at_ms: obs.now_ms,
                    });
                }
            }
            self.went_down.remove(&me.id);
            if is_master {
                self.seen.insert(
                    me.id.clone(),
                    Seen {
                        keys: state.keys,
                        slots: me.slots.clone(),
                    },
                );
            } else {
                self.seen.remove(&me.id);
            }
        }
        for id in self.seen.keys() {
            if !answered.contains(id) {
                self.went_down.insert(id.clone());
            }
        }
        self.losses
            .retain(|l| obs.now_ms.saturating_sub(l.at_ms) < LOSS_RETENTION_MS);
        self.losses.extend(found.iter().cloned());
        found
    }

    /// Takes in the outcome of a pass: the effect that failed and why, or `None` when every
    /// effect ran. Returns how many passes in a row that effect has failed (0 on success).
    pub fn executed(&mut self, failed: Option<(&Effect, &str)>, now_ms: u64) -> u32 {
        match failed {
            None => {
                self.failure = None;
                0
            }
            Some((effect, error)) => {
                let (times, since_ms) = match &self.failure {
                    Some(f) if f.effect == *effect => (f.times.saturating_add(1), f.since_ms),
                    _ => (1, now_ms),
                };
                self.failure = Some(EffectFailure {
                    effect: effect.clone(),
                    error: error.to_string(),
                    times,
                    since_ms,
                });
                times
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClusterNode, LinkState, Member, NodeFlags, NodeState};

    fn master(ordinal: Ordinal, keys: Option<u64>, now_ms: u64) -> Observation {
        let id = format!("{:040}", ordinal);
        let redis = keys.map(|keys| NodeState {
            id: id.clone(),
            nodes: vec![ClusterNode {
                id: id.clone(),
                addr: None,
                hostname: None,
                flags: NodeFlags {
                    myself: true,
                    master: true,
                    ..NodeFlags::default()
                },
                master_id: None,
                ping_sent_ms: 0,
                pong_recv_ms: 0,
                config_epoch: 1,
                link: LinkState::Connected,
                slots: vec![SlotRange::new(0, 5460)],
                open_slots: Vec::new(),
            }]
            .into(),
            cluster_ok: true,
            current_epoch: 1,
            repl_offset: 0,
            master_link_up: false,
            keys,
            open_slot_keys: BTreeMap::new(),
            ever_linked: true,
            serves_replicas: true,
            replicates_from: None,
            hands_over_source_first: false,
            replid: None,
            config: Default::default(),
        });
        let mut obs = Observation {
            now_ms,
            ..Observation::default()
        };
        obs.members.insert(
            ordinal,
            Member {
                ordinal,
                addr: None,
                running: keys.is_some(),
                host: None,
                fingerprint: None,
                redis,
            },
        );
        obs
    }

    #[test]
    fn a_master_that_went_down_and_came_back_empty_is_a_loss_reported_once() {
        let mut m = Memory::default();
        assert!(m.observed(&master(2, Some(10_143), 0)).is_empty());
        assert!(m.observed(&master(2, None, 1_000)).is_empty());
        let lost = m.observed(&master(2, Some(0), 2_000));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].keys, 10_143);
        assert_eq!(lost[0].slots, vec![SlotRange::new(0, 5460)]);
        assert!(m.observed(&master(2, Some(0), 3_000)).is_empty());
        assert_eq!(m.history(3_000).losses.len(), 1);
        assert!(m.history(2_000 + LOSS_RETENTION_MS).losses.is_empty());
    }

    #[test]
    fn a_master_emptied_while_it_kept_answering_is_no_loss() {
        let mut m = Memory::default();
        m.observed(&master(2, Some(500), 0));
        assert!(m.observed(&master(2, Some(0), 1_000)).is_empty());
    }

    #[test]
    fn times_are_written_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_890_630_000), "2026-11-28T18:30:30Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn only_the_same_effect_failing_again_counts_up() {
        let mut m = Memory::default();
        let a = Effect::SetSlotStable { on: 1, slot: 5 };
        let b = Effect::SetSlotStable { on: 2, slot: 5 };
        assert_eq!(m.executed(Some((&a, "CLUSTERDOWN")), 10), 1);
        assert!(
            m.history(10).failure.is_none(),
            "a single failure is not news"
        );
        assert_eq!(m.executed(Some((&a, "CLUSTERDOWN")), 20), 2);
        let f = m
            .history(20)
            .failure
            .expect("reported after the second failure");
        assert_eq!((f.times, f.since_ms), (2, 10));
        assert_eq!(m.executed(Some((&b, "x")), 30), 1);
        assert_eq!(m.executed(None, 40), 0);
        assert!(m.history(40).failure.is_none());
    }
}
