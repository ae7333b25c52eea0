//! Which passes a recording (`local up --record`, `run --record`) writes.
//!
//! A settled cluster is observed again every few seconds, and each observation differs from
//! the last only in what Redis measures by the moment: ping and pong times, replication
//! offsets, key counts. Written whole every pass, that came to 385 MB a minute at 100
//! masters x 1 replica (`bench/record_size.py`). So a pass is left out when it decided
//! nothing to do, exactly as the last written one did, for the same spec, on an observation
//! that differs from that one's only in those measurements; one such pass is still written
//! every [`HEARTBEAT_MS`], so a trace shows the time that passed. Every pass that does
//! something, decides otherwise, or sees anything else change (a role, a slot, an epoch, a
//! failure flag, a link, a member started or gone) is written, so a replay meets every
//! decision the engine made and every observation that could make a newer engine decide
//! otherwise.

use engine::Phase;
use engine::decision::Decision;
use engine::desired::Desired;
use engine::history::History;
use engine::model::{Observation, OpenSlot};
use engine::trace::TraceRecord;
use std::hash::{DefaultHasher, Hash, Hasher};

/// At least one pass is written this often, whatever it saw.
pub const HEARTBEAT_MS: u64 = 60_000;

/// What the last written pass decided and saw, as far as leaving a pass out depends on it.
struct Written {
    time: u64,
    spec: Desired,
    phase_hint: Phase,
    decision: Decision,
    history: History,
    digest: u64,
}

/// Decides, pass by pass, whether a record is written (see the module doc).
#[derive(Default)]
pub struct TraceThinning {
    last: Option<Written>,
    /// Passes left out since the last written one.
    pub skipped: u64,
    /// Write every pass (`--record-every-pass`): nothing is left out.
    every_pass: bool,
}

impl TraceThinning {
    /// A thinning that leaves nothing out.
    pub fn every_pass() -> Self {
        Self {
            every_pass: true,
            ..Self::default()
        }
    }

    /// Whether `record` is written; remembers it when it is.
    pub fn keep(&mut self, record: &TraceRecord) -> bool {
        if self.every_pass {
            return true;
        }
        let digest = digest(&record.observation);
        let repeats = self.last.as_ref().is_some_and(|w| {
            record.decision.effects.is_empty()
                && record.time < w.time.saturating_add(HEARTBEAT_MS)
                && w.digest == digest
                && w.phase_hint == record.phase_hint
                && w.decision == record.decision
                && w.spec == record.spec
                && w.history == record.observation.history
        });
        if repeats {
            self.skipped += 1;
            return false;
        }
        self.skipped = 0;
        self.last = Some(Written {
            time: record.time,
            spec: record.spec.clone(),
            phase_hint: record.phase_hint,
            decision: record.decision.clone(),
            history: record.observation.history.clone(),
            digest,
        });
        true
    }
}

/// A hash of everything an observation says except what Redis measures by the moment (ping
/// and pong times, replication offsets, key counts) and the time it was taken.
fn digest(obs: &Observation) -> u64 {
    let mut h = DefaultHasher::new();
    for (ordinal, m) in &obs.members {
        ordinal.hash(&mut h);
        (&m.addr, m.running, &m.host, &m.fingerprint).hash(&mut h);
        let Some(s) = &m.redis else {
            false.hash(&mut h);
            continue;
        };
        true.hash(&mut h);
        (&s.id, s.cluster_ok, s.current_epoch, s.master_link_up).hash(&mut h);
        (s.ever_linked, &s.open_slot_keys, &s.replid, &s.config).hash(&mut h);
        (s.serves_replicas, &s.replicates_from).hash(&mut h);
        for n in &s.nodes {
            (&n.id, &n.addr, &n.hostname, &n.master_id, n.config_epoch).hash(&mut h);
            let f = n.flags;
            let flags = [
                f.myself,
                f.master,
                f.replica,
                f.pfail,
                f.fail,
                f.handshake,
                f.noaddr,
                f.nofailover,
            ];
            flags.hash(&mut h);
            matches!(n.link, engine::model::LinkState::Connected).hash(&mut h);
            n.slots.hash(&mut h);
            for open in &n.open_slots {
                match open {
                    OpenSlot::Migrating { slot, target } => (0u8, slot, target).hash(&mut h),
                    OpenSlot::Importing { slot, source } => (1u8, slot, source).hash(&mut h),
                }
            }
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::model::{Addr, ClusterNode, LinkState, Member, NodeFlags, NodeState};
    use engine::slots::SlotRange;

    fn node(i: u8, pong: u64) -> ClusterNode {
        ClusterNode {
            id: format!("{i:040}"),
            addr: Some(Addr::new("127.0.0.1", 7000 + u16::from(i))),
            hostname: None,
            flags: NodeFlags {
                master: true,
                myself: i == 0,
                ..NodeFlags::default()
            },
            master_id: None,
            ping_sent_ms: 0,
            pong_recv_ms: pong,
            config_epoch: u64::from(i) + 1,
            link: LinkState::Connected,
            slots: vec![SlotRange::new(u16::from(i) * 100, u16::from(i) * 100 + 99)],
            open_slots: Vec::new(),
        }
    }

    /// One pass at `time` of a one-member cluster whose view has `nodes`.
    fn record(time: u64, nodes: Vec<ClusterNode>, keys: u64) -> TraceRecord {
        let state = NodeState {
            id: nodes[0].id.clone(),
            nodes: nodes.into_iter().collect(),
            cluster_ok: true,
            current_epoch: 3,
            repl_offset: time,
            master_link_up: false,
            keys,
            open_slot_keys: Default::default(),
            ever_linked: true,
            replid: None,
            config: Default::default(),
            serves_replicas: true,
            replicates_from: None,
            hands_over_source_first: false,
        };
        let member = Member {
            ordinal: 0,
            addr: Some(Addr::new("127.0.0.1", 7000)),
            running: true,
            host: None,
            fingerprint: None,
            redis: Some(state),
        };
        let observation = Observation {
            now_ms: time,
            members: [(0, member)].into(),
            history: History::default(),
        };
        let spec = Desired::new(3, 0);
        // What a settled cluster's pass decides: nothing to do.
        let decision = Decision {
            phase: Phase::Ready,
            effects: Vec::new(),
            conditions: Vec::new(),
            requeue_ms: Some(5_000),
            summary: "cluster is ready".into(),
        };
        TraceRecord {
            time,
            spec,
            phase_hint: Phase::Ready,
            observation,
            decision,
        }
    }

    #[test]
    fn a_pass_that_differs_only_in_timings_and_counts_is_left_out_until_the_heartbeat() {
        let mut t = TraceThinning::default();
        assert!(t.keep(&record(1_000, vec![node(0, 5), node(1, 5)], 10)));
        assert!(!t.keep(&record(2_000, vec![node(0, 9), node(1, 7)], 12)));
        assert!(!t.keep(&record(30_000, vec![node(0, 9), node(1, 8)], 15)));
        assert_eq!(t.skipped, 2);
        assert!(t.keep(&record(61_000, vec![node(0, 9), node(1, 8)], 15)));
        assert_eq!(t.skipped, 0);
        let mut all = TraceThinning::every_pass();
        assert!(all.keep(&record(1_000, vec![node(0, 5), node(1, 5)], 10)));
        assert!(all.keep(&record(2_000, vec![node(0, 9), node(1, 7)], 12)));
    }

    #[test]
    fn a_pass_that_sees_a_flag_a_slot_or_an_epoch_change_is_written() {
        let mut t = TraceThinning::default();
        assert!(t.keep(&record(1_000, vec![node(0, 5), node(1, 5)], 10)));
        let mut suspect = node(1, 5);
        suspect.flags.pfail = true;
        assert!(t.keep(&record(2_000, vec![node(0, 5), suspect], 10)));
        let mut moved = node(1, 5);
        moved.slots = vec![SlotRange::new(100, 150)];
        assert!(t.keep(&record(3_000, vec![node(0, 5), moved], 10)));
        let mut bumped = node(1, 5);
        bumped.config_epoch = 9;
        assert!(t.keep(&record(4_000, vec![node(0, 5), bumped], 10)));
    }
}
