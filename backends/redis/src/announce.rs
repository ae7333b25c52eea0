//! Telling masters who owns a moved slot now. The pair of a move (in the order the server
//! makes safe: `broadcast_owner`) is told inside the move: that is what finishes it. Every other master is told by an
//! [`Announcer`], in the background and in batches: the target bumped its config epoch, so
//! they would learn the new owner by gossip anyway, and telling them directly only shortens
//! the window in which they redirect clients to the old owner.
//!
//! Why not inside each move, as the first version did: at 100 masters a scale-out runs about
//! a thousand moves, and each waited for ~108 other masters to answer before its next slot
//! could start; on two loaded cores that alone made a move take seconds. Batched, one
//! pipeline per master carries every slot finished since the last batch.

use crate::RedisAdapter;
use crate::error::AdapterError;
use crate::migrate::{Move, SETSLOT_LANES, on_target};
use engine::Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One finished slot: its new owner's id, and the pair that already knows.
#[derive(Debug)]
struct Finished {
    slot: u16,
    owner_id: String,
    told: [Addr; 2],
}

/// Collects finished slots from any number of moves and tells every master about them from
/// one background task. [`Announcer::finish`] tells the last batch and waits for it, so
/// nothing is left untold when a pass of migrations returns.
#[derive(Debug)]
pub(crate) struct Announcer {
    masters: Vec<Addr>,
    pending: Mutex<Vec<Finished>>,
    wake: Notify,
    closing: AtomicBool,
}

impl Announcer {
    /// Starts the background task telling `masters`; stop it with [`Announcer::finish`].
    pub(crate) fn start(
        adapter: &RedisAdapter,
        masters: Vec<Addr>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let this = Arc::new(Self {
            masters,
            pending: Mutex::new(Vec::new()),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
        });
        let task = tokio::spawn(this.clone().run(adapter.clone()));
        (this, task)
    }

    /// Queues `slots`, now owned by `mv.to`, for every master but the pair. Never waits.
    pub(crate) fn announce(&self, mv: &Move, slots: &[u16]) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend(slots.iter().map(|slot| Finished {
                slot: *slot,
                owner_id: mv.to_id.clone(),
                told: [mv.from.clone(), mv.to.clone()],
            }));
        }
        // A stored permit when the task is busy: the slots go out with its next batch.
        self.wake.notify_one();
    }

    /// Tells what is still queued and returns once every master answered or failed.
    pub(crate) async fn finish(&self, task: tokio::task::JoinHandle<()>) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "the slot-owner announcer stopped abnormally");
        }
    }

    async fn run(self: Arc<Self>, adapter: RedisAdapter) {
        loop {
            // Read `closing` before taking the batch: a finish() after this read finds the
            // batch it queued (or an empty one) on the next turn.
            let closing = self.closing.load(Ordering::Acquire);
            let batch = self
                .pending
                .lock()
                .map(|mut p| std::mem::take(&mut *p))
                .unwrap_or_default();
            if batch.is_empty() {
                if closing {
                    return;
                }
                self.wake.notified().await;
                continue;
            }
            self.tell_all(&adapter, &batch).await;
        }
    }

    /// One pipeline of `SETSLOT … NODE` per master, all masters at once, on the connection
    /// the observer shares (no new connections at a time when nodes are busiest).
    async fn tell_all(&self, adapter: &RedisAdapter, batch: &[Finished]) {
        let mut tasks = tokio::task::JoinSet::new();
        for master in &self.masters {
            let mut pipe = redis::pipe();
            let mut count = 0usize;
            for f in batch.iter().filter(|f| !f.told.contains(master)) {
                pipe.cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(f.slot)
                    .arg("NODE")
                    .arg(&f.owner_id);
                count += 1;
            }
            if count == 0 {
                continue;
            }
            let (adapter, master) = (adapter.clone(), master.clone());
            tasks.spawn(async move {
                let refused = match adapter
                    .pool
                    .pipe_values(&master, &pipe, "CLUSTER SETSLOT NODE")
                    .await
                {
                    Ok(replies) => replies.into_iter().find_map(Result::err),
                    Err(e) => Some(e),
                };
                match refused {
                    // A drained master that turned replica (Redis does when it loses its last
                    // slot) claims nothing any more: there is nothing to tell it.
                    Some(e) if turned_replica(&e) => {
                        tracing::debug!(%master, "not telling a former master that turned replica");
                    }
                    Some(e) => tracing::warn!(%master, slots = count, error = %e,
                        "could not tell a master the new owner of moved slots; gossip will"),
                    None => {}
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

impl RedisAdapter {
    /// `SETSLOT slot NODE to_id` on both ends of the move, each receiving all `slots`, then
    /// queues them for every other master. The order depends on the server
    /// (`Move::source_first`, from `ServerInfo::hands_over_source_first`):
    ///
    /// - **the source first** where the server allows it (Redis 7.4+, Valkey 8). Told first,
    ///   the source stops claiming a slot it holds no key of (Redis refuses it otherwise),
    ///   whatever its epoch does later, and the target, still importing, is immune to every
    ///   claim until it takes the slot. Told second, as Redis' documentation and `redis-cli`
    ///   do, the target claims the slot (under an epoch bumped without consensus) while the
    ///   source still does; if the source's epoch rises above the target's meanwhile (an epoch
    ///   collision settled against it, common when many targets bump at once), the source's
    ///   claim wins everywhere and the target deletes the keys: 1,853 keys at 100 masters
    ///   (`docs/reliability.md`). If the target is never told, the engine's repair has it
    ///   claim the slot (`claim_for_the_importer`; Valkey does it by itself), and if it dies,
    ///   the node holding the moved keys takes the slot (`unclaimed_slots`).
    /// - **the target first** on Redis 7.0-7.2, where the other order has a worse window (see
    ///   `hands_over_source_first`). There the collision itself is kept from happening: in
    ///   either order the pair is told only once the target's bump will land above its
    ///   source's epoch and every other source's (`wait_target_outranks`), and ties between
    ///   sources are settled before any slot moves (`engine::claims::tied_epochs`), so no
    ///   settled tie lifts a source above its target.
    ///
    /// The target is told even where it already claims a slot: its own line may have shown
    /// the slot when the move began and lost it since (a failover claiming its old master's
    /// slots, then an older claim), and a target that does not claim a slot leaves every other
    /// view pointing at it while its own points elsewhere, for ever.
    pub(crate) async fn broadcast_owner(
        &self,
        mv: &Move,
        slots: &[u16],
    ) -> Result<(), AdapterError> {
        let cmds: Vec<redis::Cmd> = slots
            .iter()
            .map(|s| {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("SETSLOT").arg(*s).arg("NODE").arg(&mv.to_id);
                cmd
            })
            .collect();
        let tell_target = || async {
            self.set_owner_on(&mv.to, &cmds)
                .await
                .map_err(|e| on_target(mv, &mv.to, e))
        };
        let _turn = self
            .wait_target_outranks(&mv.from, &mv.to, mv.epoch_floor)
            .await?;
        // A source that has turned replica (Redis 7.0 makes a master that lost its last slot
        // the replica of the node that took it, and a drain's pairs all end with the source
        // losing slots to their targets' claims) claims no slot any more: the hand-over is
        // done on its side (it held no key of these slots, or `SETSLOT NODE` would not be
        // sent). Failing the move for it cost every drain on Redis 7.0 a pass.
        let tell_source = || async {
            match self.set_owner_on(&mv.from, &cmds).await {
                Err(e) if turned_replica(&e) => {
                    tracing::debug!(source = %mv.from, "the source turned replica: nothing to tell it");
                    Ok(())
                }
                other => other,
            }
        };
        if mv.source_first {
            tell_source().await?;
            tell_target().await?;
        } else {
            tell_target().await?;
            tell_source().await?;
        }
        mv.announcer.announce(mv, slots);
        Ok(())
    }

    /// Runs `SETSLOT … NODE` commands on `addr`; the first refusal is the result. A node that
    /// does not answer in time is asked again, twice: the keys have moved by then, and giving
    /// up left the slots open for a whole repair pass. At 100 masters on two cores the targets
    /// of a scale-out, busiest of all, sometimes took longer than the response timeout.
    async fn set_owner_on(&self, addr: &Addr, cmds: &[redis::Cmd]) -> Result<(), AdapterError> {
        let mut attempt = 1;
        loop {
            let result = self
                .pool
                .spread_values(addr, cmds, SETSLOT_LANES, "CLUSTER SETSLOT NODE")
                .await
                .and_then(|replies| {
                    replies
                        .into_iter()
                        .find_map(Result::err)
                        .map_or(Ok(()), Err)
                });
            match result {
                Err(e) if e.is_connectivity() && attempt < OWNER_ATTEMPTS => {
                    tracing::debug!(%addr, attempt, error = %e, "asking again for the new slot owner");
                    tokio::time::sleep(OWNER_RETRY_PAUSE * attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Times the pair of a move is asked to take the new owner before the move fails.
const OWNER_ATTEMPTS: u32 = 3;

/// The pause before the second attempt; the third waits twice as long.
const OWNER_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Redis' answer to `SETSLOT` on a node that is a replica now.
fn turned_replica(e: &AdapterError) -> bool {
    matches!(e, AdapterError::Redis { message, .. } if message.contains("SETSLOT only with masters"))
}
