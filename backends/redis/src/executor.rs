//! Runs engine effects as Redis commands. Every effect is an *ensure*: running it again after
//! success (or after a crash half-way) converges to the same state without harm.

use crate::RedisAdapter;
use crate::announce::Announcer;
use crate::error::AdapterError;
use crate::migrate::Move;
use engine::model::{Observation, Ordinal};
use engine::{Addr, Effect, FailoverMode};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Where things are, for turning ordinals and node ids into addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecContext {
    /// Client address of each member.
    pub members: BTreeMap<Ordinal, Addr>,
    /// Client address of each cluster node, by node id.
    pub nodes: BTreeMap<String, Addr>,
    /// Every current master: `SETSLOT NODE` is broadcast to them after a slot moves.
    pub masters: Vec<Addr>,
    /// The spec asks for replicas: a migration pauses between rounds while its target has
    /// no synced replica (the engine only starts one towards a protected target).
    pub protect_targets: bool,
    /// The highest config epoch of a master owning slots, on its own line: the floor every
    /// target's epoch bump must land above (`RedisAdapter::wait_target_outranks`).
    pub epoch_floor: u64,
}

impl ExecContext {
    /// Builds the context from an observation: members with an address, the ids they report
    /// for themselves, and the members whose own view says they are masters.
    pub fn from_observation(obs: &Observation) -> Self {
        let mut ctx = ExecContext::default();
        for (ordinal, m) in &obs.members {
            let Some(addr) = &m.addr else { continue };
            ctx.members.insert(*ordinal, addr.clone());
            if let Some(state) = &m.redis {
                ctx.nodes.insert(state.id.clone(), addr.clone());
                if let Some(me) = state.myself().filter(|me| me.flags.master) {
                    ctx.masters.push(addr.clone());
                    if !me.slots.is_empty() {
                        ctx.epoch_floor = ctx.epoch_floor.max(me.config_epoch);
                    }
                }
            }
        }
        ctx
    }

    pub fn addr(&self, ordinal: Ordinal) -> Result<&Addr, AdapterError> {
        self.members
            .get(&ordinal)
            .ok_or(AdapterError::UnknownMember(ordinal))
    }
}

impl RedisAdapter {
    /// `CONFIG SET name value` on the node at `addr` (also used outside the engine's effects
    /// for a password change, whose value must never reach an effect or a trace).
    pub async fn config_set(
        &self,
        addr: &Addr,
        name: &str,
        value: &str,
    ) -> Result<(), AdapterError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg(name).arg(value);
        self.pool.query::<()>(addr, &cmd).await
    }

    /// Opens the replication gate of `addr` (see `engine::replication_gate`): the replication
    /// user, allowed only what a replica's handshake sends, with the cluster's password (or
    /// any, without one). Idempotent: `reset` rewrites the user whole.
    pub async fn open_gate(&self, addr: &Addr) -> Result<(), AdapterError> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(engine::replication_gate::USER)
            .arg("reset")
            .arg("on");
        match &self.config().password {
            Some(pw) => cmd.arg(format!(">{pw}")),
            None => cmd.arg("nopass"),
        };
        cmd.arg("+psync").arg("+sync").arg("+replconf").arg("+ping");
        self.pool.query::<()>(addr, &cmd).await
    }

    /// Gives the replication user `password` on a node (`nopass` for none). With `keep_old`
    /// the passwords it had stay valid too, so that a replica reconnecting with either is let
    /// in while a password changes; without, `password` is the only one left. Where the user
    /// does not exist this creates it switched off: the gate stays shut.
    pub async fn set_replication_password(
        &self,
        addr: &Addr,
        password: Option<&str>,
        keep_old: bool,
    ) -> Result<(), AdapterError> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(engine::replication_gate::USER);
        if !keep_old {
            cmd.arg("resetpass");
        }
        match password {
            Some(pw) => cmd.arg(format!(">{pw}")),
            None => cmd.arg("nopass"),
        };
        self.pool.query::<()>(addr, &cmd).await
    }

    /// Runs one effect (the controller counts outcomes, with its cluster's labels).
    pub async fn execute(&self, effect: &Effect, ctx: &ExecContext) -> Result<(), AdapterError> {
        self.execute_with(effect, ctx, None).await
    }

    /// [`RedisAdapter::execute`], with the announcer a `MigrateSlots` reports its slots to
    /// (without one, it has its own).
    async fn execute_with(
        &self,
        effect: &Effect,
        ctx: &ExecContext,
        announcer: Option<&Arc<Announcer>>,
    ) -> Result<(), AdapterError> {
        // Whatever it changes, no view remembered before or during it (the executor reads
        // views too) describes the cluster after it.
        self.forget_views();
        let result = self.run(effect, ctx, announcer).await;
        self.forget_views();
        match &result {
            Ok(()) => tracing::debug!(%effect, "effect done"),
            // The reconciler logs a failure, at a rate that does not flood: here only debug.
            Err(e) => tracing::debug!(%effect, error = %e, "effect failed"),
        }
        result
    }

    /// Runs a run of `SetSlotOwner` and `SetSlotStable` effects (any other effect is
    /// refused): one pipeline per node instead of one round trip per effect. The open-slot
    /// repair tells an importer the new owner of every slot a dead source left open, and
    /// closes its empty markers (hundreds at once), and the slots of a dead source's promoted
    /// replica answer its moved keys as missing until the move is taken up again after them:
    /// one by one that window lasted up to a second in the chaos soak. Every command is sent;
    /// the first refusal, in input order, is returned.
    pub async fn execute_setslot_commands(
        &self,
        effects: &[Effect],
        ctx: &ExecContext,
    ) -> Result<(), AdapterError> {
        let mut by_node: BTreeMap<Ordinal, Vec<(usize, redis::Cmd)>> = BTreeMap::new();
        for (i, effect) in effects.iter().enumerate() {
            let mut cmd = redis::cmd("CLUSTER");
            let on = match effect {
                Effect::SetSlotOwner { on, slot, owner_id } => {
                    cmd.arg("SETSLOT").arg(*slot).arg("NODE").arg(owner_id);
                    on
                }
                Effect::SetSlotStable { on, slot } => {
                    cmd.arg("SETSLOT").arg(*slot).arg("STABLE");
                    on
                }
                other => return Err(AdapterError::NotASetSlot(other.kind())),
            };
            by_node.entry(*on).or_default().push((i, cmd));
        }
        self.forget_views();
        let mut first: Option<(usize, AdapterError)> = None;
        for (on, cmds) in by_node {
            let mut pipe = redis::pipe();
            for (_, cmd) in &cmds {
                pipe.add_command(cmd.clone());
            }
            let replies = match self
                .pool
                .pipe_values(ctx.addr(on)?, &pipe, "CLUSTER SETSLOT")
                .await
            {
                Ok(replies) => replies,
                Err(e) => vec![Err(e)],
            };
            for ((i, _), reply) in cmds.iter().zip(replies) {
                if let Err(e) = reply
                    && first.as_ref().is_none_or(|(j, _)| i < j)
                {
                    first = Some((*i, e));
                }
            }
        }
        self.forget_views();
        first.map_or(Ok(()), |(_, e)| Err(e))
    }

    /// Runs `effects` concurrently where it is safe: `MigrateSlots` effects with different
    /// (from, to) pairs run in parallel, those sharing a pair run one after another, in order.
    /// Any other effect runs first, sequentially, in the given order (they are cheap and may be
    /// prerequisites). Every started group finishes; the first error (in input order) is
    /// returned.
    ///
    /// A node takes part in at most `pairs_per_node` pairs at once: a scale-out from 100
    /// masters runs about a thousand pairs, a hundred of them into each new master, and all at
    /// once they swamped the new masters until commands timed out and slots were left open.
    /// The other masters learn each new owner from one [`Announcer`] shared by every pair.
    pub async fn execute_parallel_migrations(
        &self,
        effects: &[Effect],
        ctx: &ExecContext,
    ) -> Result<(), AdapterError> {
        let mut groups: BTreeMap<(Ordinal, Ordinal), Vec<(usize, Effect)>> = BTreeMap::new();
        for (i, effect) in effects.iter().enumerate() {
            match effect {
                Effect::MigrateSlots { from, to, .. } => {
                    groups
                        .entry((*from, *to))
                        .or_default()
                        .push((i, effect.clone()));
                }
                other => self.execute(other, ctx).await?,
            }
        }
        let per_node = self.config().pairs_per_node.max(1);
        let mut gates: BTreeMap<Ordinal, Arc<Semaphore>> = BTreeMap::new();
        for (from, to) in groups.keys() {
            for node in [from, to] {
                gates
                    .entry(*node)
                    .or_insert_with(|| Arc::new(Semaphore::new(per_node)));
            }
        }
        let (announcer, announcing) = Announcer::start(self, ctx.masters.clone());
        let ctx = Arc::new(ctx.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for ((from, to), group) in groups {
            let (this, ctx, announcer) = (self.clone(), ctx.clone(), announcer.clone());
            // Both ends' gates, the lower ordinal first: every pair takes them in the same
            // order, so no two pairs can each hold a gate the other waits for.
            let (first, second) = (from.min(to), from.max(to));
            let (first, second) = (gates[&first].clone(), gates[&second].clone());
            tasks.spawn(async move {
                let _first = first.acquire_owned().await;
                let _second = second.acquire_owned().await;
                for (i, effect) in group {
                    if let Err(e) = this.execute_with(&effect, &ctx, Some(&announcer)).await {
                        return Some((i, e));
                    }
                }
                None
            });
        }
        let mut first: Option<(usize, AdapterError)> = None;
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Some((i, e))) = joined
                && first.as_ref().is_none_or(|(j, _)| i < *j)
            {
                first = Some((i, e));
            }
        }
        announcer.finish(announcing).await;
        match first {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    async fn run(
        &self,
        effect: &Effect,
        ctx: &ExecContext,
        announcer: Option<&Arc<Announcer>>,
    ) -> Result<(), AdapterError> {
        match effect {
            Effect::CreateNode { .. }
            | Effect::DeleteNode { .. }
            | Effect::DeleteData { .. }
            | Effect::ReplaceNode { .. } => Err(AdapterError::NotARedisEffect(effect.kind())),
            Effect::Meet { on, ip, port } => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("MEET")
                    .arg(ip)
                    .arg(*port)
                    .arg(u32::from(*port) + 10000);
                self.pool.query(ctx.addr(*on)?, &cmd).await
            }
            Effect::AddSlots { on, slots } => self.add_slots(ctx.addr(*on)?, slots).await,
            Effect::Replicate { on, master_id } => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("REPLICATE").arg(master_id);
                self.pool.query(ctx.addr(*on)?, &cmd).await
            }
            Effect::MigrateSlots {
                from,
                from_id,
                to,
                to_id,
                slots,
            } => {
                // Addresses first: an unknown member fails before an announcer is started.
                let (from, to) = (ctx.addr(*from)?.clone(), ctx.addr(*to)?.clone());
                // A move run alone tells the other masters through an announcer of its own.
                let (announcer, own_task) = match announcer {
                    Some(shared) => (shared.clone(), None),
                    None => {
                        let (own, task) = Announcer::start(self, ctx.masters.clone());
                        (own, Some(task))
                    }
                };
                // Which end hears of the new owner first depends on the target's server.
                let source_first = self.hands_over_source_first(&to).await;
                let mv = Move {
                    from,
                    from_id: from_id.clone(),
                    to,
                    to_id: to_id.clone(),
                    announcer: announcer.clone(),
                    needs_replica: ctx.protect_targets,
                    source_first,
                    epoch_floor: ctx.epoch_floor,
                };
                let result = self
                    .migrate_slots(mv, engine::slots::expand(slots).collect())
                    .await;
                if let Some(task) = own_task {
                    announcer.finish(task).await;
                }
                result
            }
            Effect::MoveStrayKeys {
                from,
                to,
                to_id,
                slot,
            } => {
                let from = ctx.addr(*from)?;
                self.open_for_stray_keys(from, *slot, to_id).await?;
                self.move_keys(from, ctx.addr(*to)?, *slot).await?;
                self.set_slot(from, *slot, &["STABLE"]).await
            }
            Effect::RestoreDroppedKeys {
                from,
                to,
                to_id,
                slot,
            } => self
                .restore_dropped_keys(ctx.addr(*from)?, ctx.addr(*to)?, to_id, *slot)
                .await
                .map(|_| ()),
            Effect::SetSlotStable { on, slot } => {
                self.set_slot(ctx.addr(*on)?, *slot, &["STABLE"]).await
            }
            Effect::SetConfig { on, name, value } => {
                self.config_set(ctx.addr(*on)?, name, value).await
            }
            Effect::SetSlotOwner { on, slot, owner_id } => {
                self.set_slot(ctx.addr(*on)?, *slot, &["NODE", owner_id])
                    .await
            }
            Effect::Failover { on, mode } => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("FAILOVER");
                match mode {
                    FailoverMode::Default => {}
                    FailoverMode::Force => {
                        cmd.arg("FORCE");
                    }
                    FailoverMode::Takeover => {
                        cmd.arg("TAKEOVER");
                    }
                }
                match self.pool.query(ctx.addr(*on)?, &cmd).await {
                    // Sent to a node that is a master already: the failover happened.
                    Err(AdapterError::Redis { message, .. })
                        if message.contains("send CLUSTER FAILOVER to a replica") =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            }
            Effect::Forget { on, node_id } => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("FORGET").arg(node_id);
                match self.pool.query(ctx.addr(*on)?, &cmd).await {
                    Err(AdapterError::Redis { message, .. })
                        if message.to_ascii_lowercase().contains("unknown node") =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            }
            Effect::ResetNode { on, hard } => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("RESET").arg(if *hard { "HARD" } else { "SOFT" });
                self.pool.query(ctx.addr(*on)?, &cmd).await
            }
            Effect::AllowReplicas { on } => self.open_gate(ctx.addr(*on)?).await,
            Effect::SetConfigEpoch { on, epoch } => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("SET-CONFIG-EPOCH").arg(*epoch);
                match self.pool.query::<()>(ctx.addr(*on)?, &cmd).await {
                    // The node met another already (a bootstrap pass run twice) or has an
                    // epoch: Redis settles the ties by itself then, as it always did.
                    Err(AdapterError::Redis { message, .. })
                        if message.contains("does not know any other node")
                            || message.contains("already non-zero") =>
                    {
                        tracing::debug!(%effect, %message, "epoch not set: Redis settles ties");
                        Ok(())
                    }
                    other => other,
                }
            }
            Effect::BumpEpoch { on } => {
                // Answers BUMPED or STILL: either way the node's epoch is now the highest.
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("BUMPEPOCH");
                self.pool
                    .query::<redis::Value>(ctx.addr(*on)?, &cmd)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Redis lets a node `MIGRATE` keys of a slot it does not own only while the slot is open
    /// on it; anything else is answered with `MOVED`. Keys of a slot found on a node with no
    /// marker (the promoted replica of a target that died mid-slot) are sent from an import
    /// opened for the purpose, which the final `SETSLOT STABLE` closes.
    async fn open_for_stray_keys(
        &self,
        from: &Addr,
        slot: u16,
        owner_id: &str,
    ) -> Result<(), AdapterError> {
        let state = self.observe_node(from).await?;
        let Some(me) = state.myself() else {
            return Ok(());
        };
        if me.open_slots.iter().any(|o| o.slot() == slot) {
            return Ok(());
        }
        if me.slots.iter().any(|r| r.start <= slot && slot <= r.end) {
            return Err(AdapterError::NotStray {
                addr: from.clone(),
                slot,
            });
        }
        self.set_slot(from, slot, &["IMPORTING", owner_id]).await
    }

    async fn set_slot(&self, on: &Addr, slot: u16, rest: &[&str]) -> Result<(), AdapterError> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot);
        for a in rest {
            cmd.arg(*a);
        }
        self.pool.query(on, &cmd).await
    }

    /// Claims the slots `on` does not own yet (a retry after a partial success must not fail
    /// on "already busy"), with `ADDSLOTSRANGE`, or `ADDSLOTS` on servers older than 7.
    async fn add_slots(&self, on: &Addr, slots: &[engine::SlotRange]) -> Result<(), AdapterError> {
        let owned = self.owned_slot_set(on).await?;
        let missing =
            engine::slots::to_ranges(engine::slots::expand(slots).filter(|s| !owned.contains(s)));
        if missing.is_empty() {
            return Ok(());
        }
        let mut range = redis::cmd("CLUSTER");
        range.arg("ADDSLOTSRANGE");
        for r in &missing {
            range.arg(r.start).arg(r.end);
        }
        match self.pool.query::<()>(on, &range).await {
            Err(AdapterError::Redis { message, .. })
                if message.to_ascii_lowercase().contains("unknown subcommand") =>
            {
                let mut each = redis::cmd("CLUSTER");
                each.arg("ADDSLOTS");
                for s in engine::slots::expand(&missing) {
                    each.arg(s);
                }
                self.pool.query(on, &each).await
            }
            other => other,
        }
    }

    async fn owned_slot_set(
        &self,
        addr: &Addr,
    ) -> Result<std::collections::BTreeSet<u16>, AdapterError> {
        let state = self.observe_node(addr).await?;
        Ok(state
            .myself()
            .map(|me| engine::slots::expand(&me.slots).collect())
            .unwrap_or_default())
    }
}
