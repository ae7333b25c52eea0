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
    /// A fault made a node of the migration miss the executor's deadline (see
    /// `Victim::CollidingSource`); the effect stops there, as the executor does.
    #[error("#{ordinal} did not answer in time ({victim})")]
    NoAnswer { ordinal: Ordinal, victim: Victim },
}

/// Which end of a migration a mid-slot kill hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// The node sending the slot's keys (`MIGRATING`, or the stray keys' holder).
    Source,
    /// The node receiving them (`IMPORTING`, or the owner stray keys go home to).
    Target,
    /// Not a kill: the source stalls past the node timeout (a saturated machine, a long
    /// fork) and Redis' own election promotes its replica while it lives; the source then
    /// hears the claim, and the move goes on against it.
    StalledSource,
    /// Not a kill, and at the hand-over of a slot (between the two `SETSLOT NODE`s) rather
    /// than mid-slot: the source's config epoch rises above every other through a collision
    /// (under load its current epoch lagged the cluster's, caught up, and a tie with another
    /// master was settled against it), and the node to be told second does not answer in
    /// time, so the move stops half handed over. Seen at 100 masters under load, where it
    /// cost 1,853 keys while the target was told first (`docs/reliability.md`).
    CollidingSource,
    /// At the hand-over of a slot, right after the source was told: the target is killed
    /// before it takes the slot. Its replica holds the moved keys with no marker, and no
    /// master claims the slot.
    TargetAtHandover,
}

impl Victim {
    /// Due at the hand-over of a slot rather than at a mid-slot point.
    pub fn at_handover(self) -> bool {
        matches!(self, Victim::CollidingSource | Victim::TargetAtHandover)
    }

    /// The fault's name in `FaultCounts`.
    pub fn fault_kind(self) -> &'static str {
        match self {
            Victim::Source => "kill_migration_source",
            Victim::Target => "kill_migration_target",
            Victim::StalledSource => "stall_migration_source",
            Victim::CollidingSource => "collide_at_handover",
            Victim::TargetAtHandover => "kill_target_at_handover",
        }
    }
}

impl std::fmt::Display for Victim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Victim::Source => "the migration's source",
            Victim::Target => "the migration's target",
            Victim::StalledSource => "the migration's source, replaced while stalled",
            Victim::CollidingSource => "the source's epoch rose at the hand-over",
            Victim::TargetAtHandover => "the migration's target, at the hand-over",
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

pub(crate) fn refused(on: Ordinal, message: impl Into<String>) -> ApplyError {
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
    pub(crate) fn mid_slot(&mut self) -> Option<Victim> {
        let k = self.kill.as_mut().filter(|k| !k.victim.at_handover())?;
        if k.after == 0 {
            let victim = k.victim;
            self.kill = None;
            return Some(victim);
        }
        k.after -= 1;
        None
    }

    /// A slot is half handed over: the planned hand-over fault, if any, happens now (at the
    /// first hand-over of the effect).
    pub(crate) fn at_handover(&mut self) -> Option<Victim> {
        let victim = self.kill.map(|k| k.victim).filter(|v| v.at_handover())?;
        self.kill = None;
        Some(victim)
    }

    pub(crate) fn step(&mut self) -> Result<(), ApplyError> {
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
    pub(crate) fn node(&self, o: Ordinal) -> Result<&RedisNode, ApplyError> {
        let m = self.members.get(&o).ok_or(ApplyError::NoMember(o))?;
        if !m.running {
            return Err(ApplyError::NotRunning(o));
        }
        Ok(&m.node)
    }

    pub(crate) fn node_mut(&mut self, o: Ordinal) -> Result<&mut RedisNode, ApplyError> {
        let m = self.members.get_mut(&o).ok_or(ApplyError::NoMember(o))?;
        if !m.running {
            return Err(ApplyError::NotRunning(o));
        }
        Ok(&mut m.node)
    }

    /// A node id as the node `on` knows it (`ERR Unknown node` otherwise).
    pub(crate) fn known(&self, on: Ordinal, id: &str) -> Result<NodeKey, ApplyError> {
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
            // The process goes; its volume (dataset with persistence, `nodes.conf`) stays
            // until `DeleteData`.
            Effect::DeleteNode { ordinal } => {
                self.kill(*ordinal);
                Ok(())
            }
            Effect::DeleteData { ordinal } => {
                if self
                    .members
                    .get(ordinal)
                    .is_some_and(|m| m.running || m.paused.is_some())
                {
                    return Err(refused(
                        *ordinal,
                        "the member still runs: its storage is in use".to_string(),
                    ));
                }
                self.members.remove(ordinal);
                self.isolated.remove(ordinal);
                Ok(())
            }
            // A restart with the configuration a member started now gets: what survives is
            // what survives any restart (its volume), see `restart`.
            Effect::ReplaceNode { ordinal } => {
                self.kill(*ordinal);
                self.restart(*ordinal);
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
            Effect::RestoreDroppedKeys {
                from,
                to,
                to_id,
                slot,
            } => self.restore_dropped_keys(*from, *to, to_id, *slot),
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
            Effect::SetConfig { on, name, value } => {
                let n = self.node_mut(*on)?;
                match n.config.get_mut(name) {
                    Some(v) => {
                        *v = value.clone();
                        Ok(())
                    }
                    None => Err(refused(
                        *on,
                        format!(
                            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                        ),
                    )),
                }
            }
            Effect::Failover { on, mode } => self.failover(*on, *mode),
            Effect::Forget { on, node_id } => self.forget(*on, node_id),
            Effect::ResetNode { on, hard } => self.reset(*on, *hard),
            Effect::BumpEpoch { on } => {
                // Redis saves the new epoch; peers hear it with the next ping.
                bump_epoch_without_consensus(self.node_mut(*on)?);
                Ok(())
            }
            Effect::AllowReplicas { on } => {
                self.node_mut(*on)?.serves_replicas = true;
                Ok(())
            }
            Effect::SetConfigEpoch { on, epoch } => {
                let n = self.node_mut(*on)?;
                if !n.peers.is_empty() {
                    return Err(refused(
                        *on,
                        "ERR The user can assign a config epoch only when the node does not know any other node.",
                    ));
                }
                if n.config_epoch != 0 {
                    return Err(refused(*on, "ERR Node config epoch is already non-zero"));
                }
                n.config_epoch = *epoch;
                n.current_epoch = n.current_epoch.max(*epoch);
                n.touch();
                Ok(())
            }
        }
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

    pub(crate) fn setslot_guard(&self, on: Ordinal) -> Result<(), ApplyError> {
        if !self.node(on)?.is_master() {
            return Err(refused(on, "ERR Please use SETSLOT only with masters."));
        }
        Ok(())
    }

    pub(crate) fn setslot_importing(
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

    pub(crate) fn setslot_migrating(
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
    pub(crate) fn setslot_node(
        &mut self,
        on: Ordinal,
        slot: u16,
        owner: NodeKey,
    ) -> Result<(), ApplyError> {
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
                    .map(|m| (m.node.keys.clone(), m.node.repl_offset, m.node.replid));
                if let (Some((keys, off, replid)), Ok(n)) = (data, self.node_mut(on)) {
                    n.keys = keys;
                    n.repl_offset = off;
                    n.replid = replid;
                }
                self.election(on, mk, false);
            }
            FailoverMode::Force => {
                if master_serves {
                    self.election(on, mk, false);
                }
            }
            FailoverMode::Takeover => {
                self.take_over(on, mk);
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
                let keeps = n.keeps_stale_marks;
                *n = RedisNode::new(key);
                n.keeps_stale_marks = keeps;
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
