//! The last looks before a migrated slot is handed to its target (`SETSLOT NODE`): the source
//! must still be migrating it (`confirm_source_still_migrates`), and the target's claim must
//! outrank every claim the source ever made (`EpochGate`).

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::migrate::Move;
use engine::Addr;
use redis::{FromRedisValue, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

impl RedisAdapter {
    /// The last look before slots are handed over: in one pipeline on the source, its own
    /// `CLUSTER NODES` line and `COUNTKEYSINSLOT` of each slot. A slot is handed over only if
    /// the source is still a master that owns it, still marks it migrating to this target and
    /// holds none of its keys. A source that stalled past the node timeout mid-move may have
    /// been replaced by its replica, which then claims the slot with the keys it had not sent
    /// yet; when the source hears of that claim it drops its own remaining keys of the slot
    /// (Redis deletes keys of slots a master loses), so it answers 0 keys although the keys
    /// still exist on the new owner. `SETSLOT NODE` on the target would then outbid the new
    /// owner's claim, and Redis would delete those keys there too (chaos soak, seed 7). The
    /// engine's repair finishes such a slot from its new owner instead.
    pub(crate) async fn confirm_source_still_migrates(
        &self,
        mv: &Move,
        slots: Vec<u16>,
        first_error: &mut Option<AdapterError>,
    ) -> Vec<u16> {
        if slots.is_empty() {
            return slots;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("CLUSTER").arg("NODES");
        for s in &slots {
            pipe.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*s);
        }
        let replies: Result<Vec<Value>, _> = self.pool.pipe(&mv.from, &pipe, "CLUSTER NODES").await;
        let verdicts = replies.and_then(|replies| source_verdicts(mv, &slots, &replies));
        match verdicts {
            Ok(verdicts) => {
                let mut confirmed = Vec::with_capacity(slots.len());
                // One log line per reason, not per slot: a source replaced mid-move declines
                // hundreds of slots at once.
                let mut declined: std::collections::BTreeMap<&'static str, Vec<u16>> =
                    std::collections::BTreeMap::new();
                for (slot, verdict) in slots.into_iter().zip(verdicts) {
                    match verdict {
                        None => confirmed.push(slot),
                        Some(why) => {
                            declined.entry(why).or_default().push(slot);
                            let e = AdapterError::SourceLostSlot {
                                addr: mv.from.clone(),
                                slot,
                                why,
                            };
                            self.slot_failed(mv, slot, e, first_error);
                        }
                    }
                }
                for (why, slots) in declined {
                    let ranges = engine::slots::format_ranges(&engine::slots::to_ranges(
                        slots.iter().copied(),
                    ));
                    tracing::warn!(
                        from = %mv.from,
                        to = %mv.to,
                        count = slots.len(),
                        slots = %ranges,
                        "slots not handed over: {why}; the engine repairs them from their owner"
                    );
                }
                confirmed
            }
            Err(e) => {
                for s in slots {
                    self.slot_failed(mv, s, e.clone(), first_error);
                }
                Vec::new()
            }
        }
    }
}

/// For each slot about to be handed over, why it must not be (None: it may), from the
/// source's `CLUSTER NODES` and one `COUNTKEYSINSLOT` per slot (see
/// `confirm_source_still_migrates`).
fn source_verdicts(
    mv: &Move,
    slots: &[u16],
    replies: &[Value],
) -> Result<Vec<Option<&'static str>>, AdapterError> {
    let bad = |message: String| AdapterError::BadReply {
        addr: mv.from.clone(),
        command: "CLUSTER NODES".into(),
        message,
    };
    let (nodes, counts) = replies
        .split_first()
        .ok_or_else(|| bad("empty reply".into()))?;
    let text = String::from_redis_value(nodes.clone()).map_err(|e| bad(e.to_string()))?;
    let parsed = engine::parse::parse_cluster_nodes(&text).map_err(|e| bad(e.to_string()))?;
    let me = parsed
        .iter()
        .find(|n| n.flags.myself)
        .ok_or_else(|| bad("no line for the node itself".into()))?;
    let owned: std::collections::BTreeSet<u16> = engine::slots::expand(&me.slots).collect();
    let mut out = Vec::with_capacity(slots.len());
    for (slot, count) in slots.iter().zip(counts) {
        let count = u64::from_redis_value(count.clone()).map_err(|e| bad(e.to_string()))?;
        let marked = me.open_slots.iter().any(|o| {
            matches!(o, engine::OpenSlot::Migrating { slot: s, target } if s == slot && *target == mv.to_id)
        });
        out.push(if me.master_id.is_some() || !me.flags.master {
            Some("it is a replica now")
        } else if !owned.contains(slot) {
            Some("another node owns it now")
        } else if !marked {
            Some("its migrating marker is gone")
        } else if count > 0 {
            Some("keys of it arrived on the source")
        } else {
            None
        });
    }
    if out.len() != slots.len() {
        return Err(bad("fewer key counts than slots".into()));
    }
    Ok(out)
}

/// Makes the target of a hand-over claim its slots under a config epoch above the source's.
///
/// A target told `SETSLOT NODE` while importing bumps its config epoch to one above the
/// highest *it knows of*. If it has not heard of the source's latest epoch yet (the source
/// bumped its own a moment ago, as the target of another move), its claim ranks below the
/// source's: any message from the source sent before it was told, or an `UPDATE` from a
/// master that has not yet heard the source drop the slot, then gives the slot back to the
/// source, and Redis deletes the target's keys of it. A pair of moves sharing a node caught
/// this on Redis 7.0 (`moves::pairs_sharing_a_node_take_turns…`): the slot went back to the
/// source for a moment. So before the pair is told, the gate waits until the target knows an
/// epoch at least the source's, and differs from it; the target's bump then lands strictly
/// above. And no node is the source of one hand-over while it is the target of another, so
/// no source bumps its epoch (as a target elsewhere) between the gate and the moment it stops
/// claiming the slot. A node may be the source (or the target) of many at once: a source
/// never bumps, and a target that bumped once already holds the highest epoch it knows. A
/// scale-out, whose new masters are only targets and old ones only sources, never waits on
/// it; a first version that let a node take part in one hand-over at a time made 100 -> 110
/// masters a third slower.
///
/// Nor may the target's bump land on the epoch of any other master that owns slots: such a
/// tie is settled by Redis when the two next ping, by lifting the one with the lower id to
/// the top, and if that one is the source of a move whose target was just told, the source
/// then outranks it (490 keys lost at 100 -> 110 masters on Redis 7.0 before this floor,
/// all of a master the engine had just bumped to settle a tie). So the target must know the highest epoch the pass began with (`floor`); ties
/// the engine found between old masters are settled before any slot moves
/// (`engine::claims::tied_epochs`).
///
/// What stays open: a node that was the target of a move and is the source of a later one
/// in the same pass sits above the floor, where other targets' bumps may tie with it. No plan
/// makes such a pass (a master is a donor or a receiver of it, never both), and the next
/// pass's floor covers what a pass's targets took (`docs/reliability.md`).
#[derive(Debug, Default)]
pub(crate) struct EpochGate {
    /// Hand-overs in progress, per node: how many as source, how many as target.
    busy: Mutex<HashMap<Addr, Ends>>,
    /// Woken whenever a hand-over ends.
    ended: Notify,
}

#[derive(Debug, Default, Clone, Copy)]
struct Ends {
    sources: u32,
    targets: u32,
}

/// Held for one hand-over, from the gate until both ends are told; dropping it ends the turn.
pub struct HandOverTurn {
    gate: Arc<EpochGate>,
    from: Addr,
    to: Addr,
}

impl Drop for HandOverTurn {
    fn drop(&mut self) {
        {
            let mut busy = self
                .gate
                .busy
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (addr, as_source) in [(&self.from, true), (&self.to, false)] {
                if let Some(ends) = busy.get_mut(addr) {
                    let count = if as_source {
                        &mut ends.sources
                    } else {
                        &mut ends.targets
                    };
                    *count = count.saturating_sub(1);
                    if ends.sources == 0 && ends.targets == 0 {
                        busy.remove(addr);
                    }
                }
            }
        }
        self.gate.ended.notify_waiters();
    }
}

/// The pause between two looks at the target's epochs.
const EPOCH_POLL: Duration = Duration::from_millis(25);

impl EpochGate {
    /// Starts a hand-over from `from` to `to` unless `from` is the target of another or `to`
    /// the source of another.
    fn try_start(&self, from: &Addr, to: &Addr) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let free = busy.get(from).is_none_or(|e| e.targets == 0)
            && busy.get(to).is_none_or(|e| e.sources == 0);
        if free {
            busy.entry(from.clone()).or_default().sources += 1;
            busy.entry(to.clone()).or_default().targets += 1;
        }
        free
    }

    /// Waits until a hand-over from `from` to `to` may start, and starts it (both ends at
    /// once, so two waiting hand-overs never each hold what the other needs).
    async fn turn(self: &Arc<Self>, from: &Addr, to: &Addr) -> HandOverTurn {
        loop {
            // Registered before the check: a hand-over ending in between still wakes us.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.try_start(from, to) {
                return HandOverTurn {
                    gate: self.clone(),
                    from: from.clone(),
                    to: to.clone(),
                };
            }
            ended.await;
        }
    }
}

/// The two epochs of a node that matter to a hand-over, from its `CLUSTER INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epochs {
    current: u64,
    mine: u64,
}

impl Epochs {
    fn parse(addr: &Addr, text: &str) -> Result<Self, AdapterError> {
        let info = engine::parse::parse_info(text);
        let field = |key: &str| {
            info.get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| AdapterError::BadReply {
                    addr: addr.clone(),
                    command: "CLUSTER INFO".into(),
                    message: format!("no number for {key}"),
                })
        };
        Ok(Self {
            current: field("cluster_current_epoch")?,
            mine: field("cluster_my_epoch")?,
        })
    }

    /// True when a bump of this (target) node lands above `needed` and does not tie with
    /// `source`: it knows an epoch at least `needed` (the source's and the floor), and its own
    /// is not the source's (a node whose epoch is already the highest it knows does not bump).
    fn outranks_after_bump(self, source: u64, needed: u64) -> bool {
        self.current >= needed.max(source) && self.mine != source
    }
}

impl RedisAdapter {
    /// Waits (up to `epoch_wait`) until `to`, told `SETSLOT NODE` for a slot it imports
    /// from `from`, would claim it above every claim of `from` and above `floor` (the highest
    /// epoch of the masters owning slots when the pass began: a target that bumps to one of
    /// theirs ties with it, and Redis may settle the tie by lifting that master, a source
    /// mid-move perhaps, above its own target). Returns the pair's turn, to be held until
    /// both are told. See [`EpochGate`].
    pub async fn wait_target_outranks(
        &self,
        from: &Addr,
        to: &Addr,
        floor: u64,
    ) -> Result<HandOverTurn, AdapterError> {
        let turn = self.gate.turn(from, to).await;
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        let started = tokio::time::Instant::now();
        let mut look = 0u32;
        loop {
            look += 1;
            let (source, target) = tokio::join!(
                self.pool.query::<String>(from, &info),
                self.pool.query::<String>(to, &info),
            );
            let source = Epochs::parse(from, &source?)?.mine;
            let target = Epochs::parse(to, &target?)?;
            if target.outranks_after_bump(source, floor) {
                if look > 1 {
                    tracing::debug!(%from, %to, source_epoch = source, floor, looks = look,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "the target learnt the epoch it needed before the hand-over");
                }
                return Ok(turn);
            }
            if started.elapsed() >= self.config().epoch_wait {
                return Err(AdapterError::TargetBehindSources {
                    addr: to.clone(),
                    needed_epoch: source.max(floor),
                    known_epoch: target.current,
                });
            }
            tokio::time::sleep(EPOCH_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(current: u64, mine: u64) -> Epochs {
        Epochs { current, mine }
    }

    fn node(port: u16) -> Addr {
        Addr::new("127.0.0.1", port)
    }

    #[tokio::test]
    async fn many_hand_overs_into_one_target_or_out_of_one_source_run_together() {
        let gate = Arc::new(EpochGate::default());
        let _a = gate.turn(&node(1), &node(9)).await;
        let _b = gate.turn(&node(2), &node(9)).await;
        let _c = gate.turn(&node(1), &node(8)).await;
        assert!(gate.try_start(&node(3), &node(9)));
    }

    #[tokio::test]
    async fn a_node_is_never_source_and_target_of_two_hand_overs_at_once() {
        let gate = Arc::new(EpochGate::default());
        let into_9 = gate.turn(&node(1), &node(9)).await;
        assert!(!gate.try_start(&node(9), &node(2)), "9 is a target now");
        assert!(!gate.try_start(&node(3), &node(1)), "1 is a source now");
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.turn(&node(9), &node(2)).await.to.port }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(into_9);
        let started = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(started, Ok(Ok(2))), "{started:?}");
        assert!(
            gate.busy
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&node(1))
                .is_none()
        );
    }

    #[test]
    fn a_target_that_knows_the_source_epoch_outranks_it_after_its_bump() {
        assert!(epochs(7, 3).outranks_after_bump(7, 0));
        assert!(epochs(9, 9).outranks_after_bump(7, 0));
    }

    #[test]
    fn a_target_must_also_know_the_highest_epoch_of_every_source() {
        assert!(!epochs(7, 3).outranks_after_bump(5, 8));
        assert!(epochs(8, 3).outranks_after_bump(5, 8));
    }

    #[test]
    fn a_target_behind_the_source_epoch_or_sharing_it_does_not() {
        assert!(!epochs(6, 3).outranks_after_bump(7, 0));
        // Already the highest it knows: it would not bump, and would tie with the source.
        assert!(!epochs(7, 7).outranks_after_bump(7, 0));
    }

    #[test]
    fn epochs_are_read_from_cluster_info_and_a_missing_one_is_a_bad_reply() {
        let addr = Addr::new("127.0.0.1", 7000);
        let text = "cluster_state:ok\r\ncluster_current_epoch:12\r\ncluster_my_epoch:4\r\n";
        assert_eq!(Epochs::parse(&addr, text), Ok(epochs(12, 4)));
        let err = Epochs::parse(&addr, "cluster_state:ok\r\ncluster_current_epoch:12\r\n");
        assert!(matches!(err, Err(AdapterError::BadReply { .. })), "{err:?}");
    }
}
