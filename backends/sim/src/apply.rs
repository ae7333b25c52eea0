//! Effects executed the way Redis executes the commands behind them, including Redis'
//! refusals (returned as errors, never panics).

use crate::cluster::Cluster;
use crate::gossip::{become_replica, new_peer};
use crate::node::{Member, NONE, NodeKey, RedisNode};
use engine::{Effect, FailoverMode, Ordinal, slots};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("#{0}: no such member")]
    NoMember(Ordinal),
    #[error("#{0}: connection refused (not running)")]
    NotRunning(Ordinal),
    /// Redis answered with an error.
    #[error("#{on}: {message}")]
    Refused { on: Ordinal, message: String },
    /// The simulated operator died in the middle of a multi-step effect.
    #[error("operator interrupted mid-effect")]
    Interrupted,
    /// A fault killed one end of the migration being applied, in the middle of a slot; the
    /// executor's next command to it would fail, so the effect stops there.
    #[error("#{ordinal} ({victim}) was killed in the middle of a slot")]
    Killed { ordinal: Ordinal, victim: Victim },
}

/// Which end of a migration a mid-slot kill hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// The node sending the slot's keys (`MIGRATING`, or the stray keys' holder).
    Source,
    /// The node receiving them (`IMPORTING`, or the owner stray keys go home to).
    Target,
}

impl Victim {
    /// The fault's name in `FaultCounts`.
    pub fn fault_kind(self) -> &'static str {
        match self {
            Victim::Source => "kill_migration_source",
            Victim::Target => "kill_migration_target",
        }
    }
}

impl std::fmt::Display for Victim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Victim::Source => "the migration's source",
            Victim::Target => "the migration's target",
        })
    }
}

/// A planned kill inside a migration: after `after` more mid-slot points (a point is the
/// moment right after a `MIGRATE` batch moved keys, so the slot is open on both ends and keys
/// of it sit on both sides, or all on the target before `SETSLOT NODE`), `victim` dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MidSlotKill {
    pub after: u32,
    pub victim: Victim,
}

fn refused(on: Ordinal, message: impl Into<String>) -> ApplyError {
    ApplyError::Refused {
        on,
        message: message.into(),
    }
}

/// Counts the protocol steps of multi-step effects, to interrupt them at a chosen point.
#[derive(Debug, Clone, Default)]
pub struct StepBudget {
    pub left: Option<u32>,
    /// A fault that kills one end of the migration mid-slot (see `MidSlotKill`).
    pub kill: Option<MidSlotKill>,
}

impl StepBudget {
    pub fn unlimited() -> Self {
        Self {
            left: None,
            kill: None,
        }
    }

    /// The operator dies after `steps` protocol steps.
    pub fn interrupt_after(steps: u32) -> Self {
        Self {
            left: Some(steps),
            kill: None,
        }
    }

    /// One end of the migration dies at a mid-slot point (see `MidSlotKill`).
    pub fn kill_at(kill: MidSlotKill) -> Self {
        Self {
            left: None,
            kill: Some(kill),
        }
    }

    /// A mid-slot point was reached: the victim, if the planned kill is due now.
    fn mid_slot(&mut self) -> Option<Victim> {
        let k = self.kill.as_mut()?;
        if k.after == 0 {
            let victim = k.victim;
            self.kill = None;
            return Some(victim);
        }
        k.after -= 1;
        None
    }

    fn step(&mut self) -> Result<(), ApplyError> {
        match &mut self.left {
            Some(0) => Err(ApplyError::Interrupted),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Keys moved per `MIGRATE … KEYS` batch.
pub const MIGRATE_BATCH: usize = 10;
/// How long `CLUSTER FORGET` keeps a node from coming back through gossip.
const FORGET_BLACKLIST_MS: u64 = 60_000;

impl Cluster {
    fn node(&self, o: Ordinal) -> Result<&RedisNode, ApplyError> {
        let m = self.members.get(&o).ok_or(ApplyError::NoMember(o))?;
        if !m.running {
            return Err(ApplyError::NotRunning(o));
        }
        Ok(&m.node)
    }

    fn node_mut(&mut self, o: Ordinal) -> Result<&mut RedisNode, ApplyError> {
        let m = self.members.get_mut(&o).ok_or(ApplyError::NoMember(o))?;
        if !m.running {
            return Err(ApplyError::NotRunning(o));
        }
        Ok(&mut m.node)
    }

    /// A node id as the node `on` knows it (`ERR Unknown node` otherwise).
    fn known(&self, on: Ordinal, id: &str) -> Result<NodeKey, ApplyError> {
        let n = self.node(on)?;
        match self.key_of(id) {
            Some(k) if k == n.key || n.peers.contains_key(&k) => Ok(k),
            _ => Err(refused(on, format!("ERR Unknown node {id}"))),
        }
    }

    pub fn apply(&mut self, effect: &Effect, budget: &mut StepBudget) -> Result<(), ApplyError> {
        let result = self.apply_one(effect, budget);
        for o in std::mem::take(&mut self.pending_pongs) {
            self.broadcast_pong(o);
        }
        result
    }

    fn apply_one(&mut self, effect: &Effect, budget: &mut StepBudget) -> Result<(), ApplyError> {
        match effect {
            Effect::CreateNode { ordinal } => {
                self.create_or_restart(*ordinal);
                Ok(())
            }
            Effect::DeleteNode { ordinal } => {
                self.members.remove(ordinal);
                self.isolated.remove(ordinal);
                Ok(())
            }
            Effect::Meet { on, ip, port } => self.meet(*on, ip, *port),
            Effect::AddSlots { on, slots } => self.add_slots(*on, slots),
            Effect::Replicate { on, master_id } => self.replicate_cmd(*on, master_id),
            Effect::MigrateSlots {
                from,
                from_id,
                to,
                to_id,
                slots,
            } => self.migrate_slots(*from, from_id, *to, to_id, slots, budget),
            Effect::MoveStrayKeys {
                from,
                to,
                to_id,
                slot,
            } => self.move_stray_keys(*from, *to, to_id, *slot, budget),
            Effect::SetSlotStable { on, slot } => {
                self.setslot_guard(*on)?;
                let n = self.node_mut(*on)?;
                n.migrating.remove(slot);
                n.importing.remove(slot);
                n.markers_changed();
                Ok(())
            }
            Effect::SetSlotOwner { on, slot, owner_id } => {
                let owner = self.known(*on, owner_id)?;
                self.setslot_node(*on, *slot, owner)
            }
            Effect::Failover { on, mode } => self.failover(*on, *mode),
            Effect::Forget { on, node_id } => self.forget(*on, node_id),
            Effect::ResetNode { on, hard } => self.reset(*on, *hard),
            Effect::BumpEpoch { on } => {
                // Redis saves the new epoch; peers hear it with the next ping.
                bump_epoch_without_consensus(self.node_mut(*on)?);
                Ok(())
            }
        }
    }

    /// `CreateNode`: a new member, or a restart of a stopped one.
    pub fn create_or_restart(&mut self, o: Ordinal) {
        match self.members.get(&o) {
            Some(m) if m.running => {}
            Some(_) => self.restart(o),
            None => {
                let node = self.new_node();
                self.members.insert(
                    o,
                    Member {
                        ordinal: o,
                        running: true,
                        address_generation: 0,
                        has_nodes_conf: true,
                        node,
                    },
                );
            }
        }
    }

    /// Starts a stopped member. With `nodes.conf` it keeps its id, view, slots and epochs, and
    /// its dataset only with persistence (the append-only file on the same volume); without
    /// `nodes.conf` (volume lost) it is a brand-new, empty node.
    pub fn restart(&mut self, o: Ordinal) {
        let (now, persistent) = (self.now_ms, self.persistent);
        let fresh = match self.members.get(&o) {
            Some(m) if m.has_nodes_conf => None,
            Some(_) => Some(self.new_node()),
            None => return,
        };
        let Some(m) = self.members.get_mut(&o) else {
            return;
        };
        m.running = true;
        m.has_nodes_conf = true;
        if let Some(node) = fresh {
            m.node = node;
            return;
        }
        let n = &mut m.node;
        if !persistent {
            n.flush();
        }
        // Redis loading an append-only file starts a new replication history either way.
        n.repl_offset = 0;
        n.synced = false;
        n.last_sync_ms = None;
        n.failover_at = None;
        n.voted_for_master.clear();
        for p in n.peers.values_mut() {
            p.pfail = false;
            p.fail = false;
            p.last_pong_ms = now;
            p.failure_reports.clear();
        }
        n.seen.clear();
        n.touch();
    }

    fn meet(&mut self, on: Ordinal, ip: &str, port: u16) -> Result<(), ApplyError> {
        let now = self.now_ms;
        let me = self.node(on)?.key;
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(refused(
                on,
                format!("ERR Invalid node address specified: {ip}:{port}"),
            ));
        }
        // Redis answers OK and starts a handshake; it completes only if someone answers.
        let Some(target) = self.at_address(ip, port) else {
            return Ok(());
        };
        if target == on || !self.can_talk(on, target) {
            return Ok(());
        }
        let on_ip = self.members.get(&on).map(Member::ip).unwrap_or_default();
        let Some(tkey) = self.members.get(&target).map(|m| m.node.key) else {
            return Ok(());
        };
        for (a, b, b_ip) in [(on, tkey, ip.to_string()), (target, me, on_ip)] {
            if let Some(m) = self.members.get_mut(&a) {
                let n = &mut m.node;
                n.blacklist.remove(&b);
                match n.peers.get_mut(&b) {
                    Some(p) => p.ip = b_ip,
                    None => {
                        n.peers.insert(b, new_peer(b_ip, now));
                    }
                }
                n.touch();
            }
        }
        Ok(())
    }

    fn add_slots(&mut self, on: Ordinal, ranges: &[engine::SlotRange]) -> Result<(), ApplyError> {
        let n = self.node_mut(on)?;
        if !n.is_master() {
            return Err(refused(on, "ERR Please use ADDSLOTS only with masters."));
        }
        if let Some(s) = slots::expand(ranges).find(|s| n.owner(*s) != NONE) {
            return Err(refused(on, format!("ERR Slot {s} is already busy")));
        }
        let me = n.key;
        for s in slots::expand(ranges) {
            n.set_owner(s, me);
        }
        Ok(())
    }

    fn replicate_cmd(&mut self, on: Ordinal, master_id: &str) -> Result<(), ApplyError> {
        let mk = self.known(on, master_id)?;
        let n = self.node_mut(on)?;
        if mk == n.key {
            return Err(refused(on, "ERR Can't replicate myself"));
        }
        if !n.sees_master(mk) {
            return Err(refused(
                on,
                "ERR I can only replicate a master, not a replica.",
            ));
        }
        if n.master == Some(mk) {
            return Ok(());
        }
        let me = n.key;
        if n.is_master() && (n.slot_count_of(me) > 0 || n.key_count() > 0) {
            return Err(refused(
                on,
                "ERR To set a master the node must be empty and without assigned slots.",
            ));
        }
        become_replica(n, mk);
        Ok(())
    }

    fn setslot_guard(&self, on: Ordinal) -> Result<(), ApplyError> {
        if !self.node(on)?.is_master() {
            return Err(refused(on, "ERR Please use SETSLOT only with masters."));
        }
        Ok(())
    }

    fn setslot_importing(
        &mut self,
        on: Ordinal,
        slot: u16,
        source: NodeKey,
    ) -> Result<(), ApplyError> {
        self.setslot_guard(on)?;
        let n = self.node_mut(on)?;
        if n.owner(slot) == n.key {
            return Err(refused(
                on,
                format!("ERR I'm already the owner of hash slot {slot}"),
            ));
        }
        if !n.peers.contains_key(&source) {
            return Err(refused(on, "ERR I don't know about node"));
        }
        n.importing.insert(slot, source);
        n.touch();
        Ok(())
    }

    fn setslot_migrating(
        &mut self,
        on: Ordinal,
        slot: u16,
        target: NodeKey,
    ) -> Result<(), ApplyError> {
        self.setslot_guard(on)?;
        let n = self.node_mut(on)?;
        if n.owner(slot) != n.key {
            return Err(refused(
                on,
                format!("ERR I'm not the owner of hash slot {slot}"),
            ));
        }
        match n.peers.get(&target) {
            None => return Err(refused(on, "ERR I don't know about node")),
            Some(p) if p.master.is_some() => {
                return Err(refused(on, "ERR Target node is not a master"));
            }
            Some(_) => {}
        }
        n.migrating.insert(slot, target);
        n.touch();
        Ok(())
    }

    /// `CLUSTER SETSLOT slot NODE owner`, with Redis' checks and side effects.
    fn setslot_node(&mut self, on: Ordinal, slot: u16, owner: NodeKey) -> Result<(), ApplyError> {
        self.setslot_guard(on)?;
        let n = self.node_mut(on)?;
        let me = n.key;
        if owner != me && !n.sees_master(owner) {
            return Err(refused(on, "ERR Target node is not a master"));
        }
        if n.owner(slot) == me && owner != me && n.keys_in(slot) > 0 {
            return Err(refused(
                on,
                format!(
                    "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                ),
            ));
        }
        if n.migrating.contains_key(&slot) && n.keys_in(slot) == 0 {
            n.migrating.remove(&slot);
        }
        // The importing node claims the slot under a fresh epoch, without consensus, so its
        // claim wins everywhere, and tells every node at once (`clusterBroadcastPong`): its
        // own replicas learn the slot is their master's before anything else can happen.
        let imported = owner == me && n.importing.remove(&slot).is_some();
        if imported {
            n.markers_changed();
        }
        if imported {
            bump_epoch_without_consensus(n);
        }
        let had = n.owner(slot) == me;
        n.set_owner(slot, owner);
        n.touch();
        // Redis 7.2+: a master that gave away its last slot becomes a replica of the taker
        // (cluster-allow-replica-migration, default yes).
        if had && owner != me && n.slot_count_of(me) == 0 {
            become_replica(n, owner);
        }
        if imported {
            self.pending_pongs.insert(on);
        }
        Ok(())
    }

    /// Copies one slot of a master's dataset to its replicas whose link is up.
    pub fn mirror_slot(&mut self, master: Ordinal, slot: u16) {
        let Some(m) = self.members.get(&master) else {
            return;
        };
        let data = m.node.keys.get(&slot).cloned();
        let offset = m.node.repl_offset;
        for r in self.synced_replicas(master) {
            if let Some(rm) = self.members.get_mut(&r) {
                match &data {
                    Some(d) => rm.node.keys.insert(slot, d.clone()),
                    None => rm.node.keys.remove(&slot),
                };
                rm.node.repl_offset = offset;
            }
        }
    }

    /// How node `o` routes a keyed command for `slot` before running it (Redis'
    /// `getNodeByQuery`, in its order): an unbound slot and a cluster that is down refuse it
    /// first; `MIGRATE` (and `RESTORE-ASKING`, which carries `ASKING`) then runs locally on a
    /// slot the node imports, or migrates while owning it; anything else is redirected.
    /// A replica never owns a slot, so it answers MOVED (Redis redirects in cluster mode
    /// before it would check `replica-read-only`).
    fn route_keyed(&mut self, o: Ordinal, slot: u16) -> Result<(), String> {
        let Some(n) = self.members.get(&o).map(|m| &m.node) else {
            return Err(format!("#{o}: no such member"));
        };
        let owner = n.owner(slot);
        let (me, importing) = (n.key, n.importing.contains_key(&slot));
        if owner == NONE {
            return Err(format!("CLUSTERDOWN Hash slot not served ({slot})"));
        }
        let at = n.peers.get(&owner).map(|p| format!("{}:{}", p.ip, p.port));
        if !self.cluster_ok(o) {
            return Err("CLUSTERDOWN The cluster is down".to_string());
        }
        if owner == me || importing {
            return Ok(());
        }
        Err(format!("MOVED {slot} {}", at.unwrap_or_default()))
    }

    /// One `MIGRATE … KEYS` batch from `from` to `to` for `slot`, with the checks Redis makes
    /// on both ends: `from` must serve the command (see `route_keyed`), then `to` must accept
    /// `RESTORE-ASKING` the same way (a refusal there leaves the keys on `from`). Returns the
    /// keys moved.
    pub fn migrate_batch(
        &mut self,
        from: Ordinal,
        to: Ordinal,
        slot: u16,
    ) -> Result<Vec<u64>, ApplyError> {
        self.node(from)?;
        self.route_keyed(from, slot).map_err(|m| refused(from, m))?;
        if !self.can_talk(from, to) {
            return Err(refused(
                from,
                "IOERR error or timeout connecting to the client",
            ));
        }
        self.route_keyed(to, slot)
            .map_err(|m| refused(from, format!("ERR Target instance replied with error: {m}")))?;
        let size = self.migrate_batch.max(1);
        let fnode = self.node_mut(from)?;
        let batch: Vec<u64> = fnode
            .keys
            .get(&slot)
            .map(|s| s.iter().take(size).copied().collect())
            .unwrap_or_default();
        if let Some(set) = fnode.keys.get_mut(&slot) {
            for k in &batch {
                set.remove(k);
            }
            if set.is_empty() {
                fnode.keys.remove(&slot);
            }
        }
        fnode.repl_offset += 1;
        let tn = self.node_mut(to)?;
        tn.keys
            .entry(slot)
            .or_default()
            .extend(batch.iter().copied());
        tn.repl_offset += 1;
        self.mirror_slot(from, slot);
        self.mirror_slot(to, slot);
        self.record_arrivals(from, to, &batch);
        Ok(batch)
    }

    /// A mid-slot point of a migration from `from` to `to`: if the planned kill is due, the
    /// victim dies now. Configs announced by slots finished earlier in this effect go out
    /// first: Redis broadcasts them within milliseconds of each `SETSLOT NODE`.
    fn mid_slot_point(
        &mut self,
        budget: &mut StepBudget,
        from: Ordinal,
        to: Ordinal,
    ) -> Result<(), ApplyError> {
        let Some(victim) = budget.mid_slot() else {
            return Ok(());
        };
        for o in std::mem::take(&mut self.pending_pongs) {
            self.broadcast_pong(o);
        }
        let ordinal = match victim {
            Victim::Source => from,
            Victim::Target => to,
        };
        self.kill(ordinal);
        Err(ApplyError::Killed { ordinal, victim })
    }

    fn migrate_slots(
        &mut self,
        from: Ordinal,
        from_id: &str,
        to: Ordinal,
        to_id: &str,
        ranges: &[engine::SlotRange],
        budget: &mut StepBudget,
    ) -> Result<(), ApplyError> {
        let fk = self.node(from)?.key;
        let tk = self.node(to)?.key;
        if self.id(fk) != from_id {
            return Err(refused(
                from,
                format!("node id is {}, not {from_id}", self.id(fk)),
            ));
        }
        if self.id(tk) != to_id {
            return Err(refused(
                to,
                format!("node id is {}, not {to_id}", self.id(tk)),
            ));
        }
        for slot in slots::expand(ranges) {
            let (f_owns, f_migrating) = {
                let n = self.node(from)?;
                (n.owner(slot) == fk, n.migrating.contains_key(&slot))
            };
            let t_owns = self.node(to)?.owner(slot) == tk;
            if t_owns && !f_owns && !f_migrating {
                continue; // already moved
            }
            if !t_owns {
                budget.step()?;
                self.setslot_importing(to, slot, fk)?;
                budget.step()?;
                self.setslot_migrating(from, slot, tk)?;
                while self.node(from)?.keys_in(slot) > 0 {
                    budget.step()?;
                    let moved = self.migrate_batch(from, to, slot)?;
                    if !moved.is_empty() {
                        self.mid_slot_point(budget, from, to)?;
                    }
                }
                budget.step()?;
                self.setslot_node(to, slot, tk)?;
            }
            budget.step()?;
            self.setslot_node(from, slot, tk)?;
            budget.step()?;
            let others: Vec<Ordinal> = self
                .members
                .values()
                .filter(|m| m.running && m.node.is_master() && m.ordinal != from && m.ordinal != to)
                .map(|m| m.ordinal)
                .collect();
            for o in others {
                // Best effort, as the real executor: a master that does not know the target
                // yet learns the new owner through gossip.
                let _ = self.setslot_node(o, slot, tk);
            }
        }
        Ok(())
    }

    /// Moves the keys of `slot` that `from` holds without owning the slot to its owner `to`,
    /// as the real executor does: a node that does not import the slot first gets
    /// `SETSLOT slot IMPORTING <owner>` (Redis runs `MIGRATE` only for a slot the node owns or
    /// imports, and a `MIGRATING` marker on a node that no longer owns the slot does not
    /// count; on a replica `SETSLOT` is refused), then `MIGRATE` batches, then `SETSLOT
    /// STABLE`.
    fn move_stray_keys(
        &mut self,
        from: Ordinal,
        to: Ordinal,
        to_id: &str,
        slot: u16,
        budget: &mut StepBudget,
    ) -> Result<(), ApplyError> {
        let tk = self.node(to)?.key;
        if self.id(tk) != to_id {
            return Err(refused(
                to,
                format!("node id is {}, not {to_id}", self.id(tk)),
            ));
        }
        let n = self.node(from)?;
        if n.owner(slot) == n.key {
            return Err(refused(
                from,
                format!("owns slot {slot}; its keys are not stray"),
            ));
        }
        if !n.importing.contains_key(&slot) {
            budget.step()?;
            self.setslot_importing(from, slot, tk)?;
        }
        while self.node(from)?.keys_in(slot) > 0 {
            budget.step()?;
            let moved = self.migrate_batch(from, to, slot)?;
            if !moved.is_empty() {
                self.mid_slot_point(budget, from, to)?;
            }
        }
        budget.step()?;
        self.setslot_guard(from)?;
        let n = self.node_mut(from)?;
        n.migrating.remove(&slot);
        n.importing.remove(&slot);
        n.markers_changed();
        n.touch();
        Ok(())
    }

    fn failover(&mut self, on: Ordinal, mode: FailoverMode) -> Result<(), ApplyError> {
        let n = self.node(on)?;
        let Some(mk) = n.master else {
            return Err(refused(
                on,
                "ERR You should send CLUSTER FAILOVER to a replica",
            ));
        };
        // Redis accepts the command, but a replica never runs an election for a master that
        // serves no slot (`clusterHandleSlaveFailover` returns first): only TAKEOVER, which
        // skips the election, promotes it.
        let master_serves = n.owners.contains(&mk);
        match mode {
            FailoverMode::Default => {
                let down = n.peers.get(&mk).is_none_or(|p| p.fail || p.pfail);
                let link = self.ordinal_of(mk).filter(|mo| self.can_talk(on, *mo));
                let Some(mo) = link.filter(|_| !down) else {
                    return Err(refused(
                        on,
                        "ERR Master is down or failed, please use CLUSTER FAILOVER FORCE",
                    ));
                };
                if !master_serves {
                    return Ok(());
                }
                // The master pauses writes, the replica catches up, then the election.
                let data = self
                    .members
                    .get(&mo)
                    .map(|m| (m.node.keys.clone(), m.node.repl_offset));
                if let (Some((keys, off)), Ok(n)) = (data, self.node_mut(on)) {
                    n.keys = keys;
                    n.repl_offset = off;
                }
                self.election(on, mk, false);
            }
            FailoverMode::Force => {
                if master_serves {
                    self.election(on, mk, false);
                }
            }
            FailoverMode::Takeover => {
                let epoch = self
                    .members
                    .values()
                    .map(|m| m.node.current_epoch)
                    .max()
                    .unwrap_or(0)
                    + 1;
                self.record_promotion_gap(on, mk);
                if let Ok(n) = self.node_mut(on) {
                    crate::gossip::promote(n, mk, epoch);
                }
                self.pending_pongs.insert(on);
            }
        }
        // Redis answers OK; an election that finds no majority just does not happen.
        Ok(())
    }

    fn forget(&mut self, on: Ordinal, node_id: &str) -> Result<(), ApplyError> {
        let now = self.now_ms;
        let k = self.known(on, node_id)?;
        let n = self.node_mut(on)?;
        if k == n.key {
            return Err(refused(on, "ERR I tried hard but I can't forget myself..."));
        }
        if n.master == Some(k) {
            return Err(refused(on, "ERR Can't forget my master!"));
        }
        n.peers.remove(&k);
        let owned: Vec<u16> = n.slots_of(k).iter().flat_map(|r| r.iter()).collect();
        for s in owned {
            n.set_owner(s, NONE);
        }
        n.blacklist.insert(k, now + FORGET_BLACKLIST_MS);
        n.touch();
        Ok(())
    }

    fn reset(&mut self, on: Ordinal, hard: bool) -> Result<(), ApplyError> {
        let n = self.node(on)?;
        if n.is_master() && n.key_count() > 0 {
            return Err(refused(
                on,
                "ERR CLUSTER RESET can't be called with master nodes containing keys",
            ));
        }
        let fresh = hard.then(|| self.new_node());
        let n = self.node_mut(on)?;
        match fresh {
            Some(node) => *n = node,
            None => {
                let key = n.key;
                let (config, current) = (n.config_epoch, n.current_epoch);
                *n = RedisNode::new(key);
                n.config_epoch = config;
                n.current_epoch = current;
            }
        }
        Ok(())
    }
}

/// Redis' `clusterBumpConfigEpochWithoutConsensus` (SETSLOT NODE on the importing node, and
/// CLUSTER BUMPEPOCH): a new epoch unless this node's is already the unique highest it knows.
/// Returns whether the epoch changed.
pub fn bump_epoch_without_consensus(n: &mut RedisNode) -> bool {
    let max = n
        .peers
        .values()
        .map(|p| p.config_epoch)
        .max()
        .unwrap_or(0)
        .max(n.current_epoch);
    if n.config_epoch == 0 || n.config_epoch != max {
        n.current_epoch = max + 1;
        n.config_epoch = n.current_epoch;
        n.touch();
        return true;
    }
    false
}
