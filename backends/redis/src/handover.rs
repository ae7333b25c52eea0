//! The last look before a migrated slot is handed to its target (`SETSLOT NODE`): the source
//! must still be migrating it. See `confirm_source_still_migrates`.

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::migrate::Move;
use redis::{FromRedisValue, Value};

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
                for (slot, verdict) in slots.into_iter().zip(verdicts) {
                    match verdict {
                        None => confirmed.push(slot),
                        Some(why) => {
                            let e = AdapterError::SourceLostSlot {
                                addr: mv.from.clone(),
                                slot,
                                why,
                            };
                            tracing::warn!(slot, from = %mv.from, to = %mv.to, error = %e, "slot not handed over");
                            self.slot_failed(mv, slot, e, first_error);
                        }
                    }
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
