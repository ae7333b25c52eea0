//! Slot migration as Redis runs it: `MIGRATE` batches, key routing on half-moved slots,
//! replicas mirroring their master, the executor's `MigrateSlots` and `MoveStrayKeys`, and the
//! mid-slot points where a fault may kill the source or the target.

use crate::apply::{ApplyError, StepBudget, Victim, refused};
use crate::cluster::Cluster;
use crate::cluster::ServerModel;
use crate::node::{NONE, NodeKey};
use engine::{Ordinal, slots};

impl Cluster {
    /// Copies one slot of a master's dataset to its replicas whose link is up.
    pub fn mirror_slot(&mut self, master: Ordinal, slot: u16) {
        let Some(m) = self.members.get(&master) else {
            return;
        };
        let data = m.node.keys.get(&slot).cloned();
        let (offset, replid) = (m.node.repl_offset, m.node.replid);
        for r in self.synced_replicas(master) {
            if let Some(rm) = self.members.get_mut(&r) {
                match &data {
                    Some(d) => rm.node.keys.insert(slot, d.clone()),
                    None => rm.node.keys.remove(&slot),
                };
                rm.node.repl_offset = offset;
                rm.node.replid = replid;
            }
        }
    }

    /// The node member `o` runs, refused unless its id is `id` (the effect was decided for
    /// a node that may have been replaced since).
    fn key_named(&self, o: Ordinal, id: &str) -> Result<NodeKey, ApplyError> {
        let key = self.node(o)?.key;
        if self.id(key) != id {
            return Err(refused(o, format!("node id is {}, not {id}", self.id(key))));
        }
        Ok(key)
    }

    /// The executor's `RestoreDroppedKeys`: every key of `slot` on the replica `from` is read
    /// (`READONLY`: the replica serves it only while its view routes the slot to its master),
    /// the master `to` claims the slot, and the keys it lacks are restored there, replicated
    /// as any write.
    pub(crate) fn restore_dropped_keys(
        &mut self,
        from: Ordinal,
        to: Ordinal,
        to_id: &str,
        slot: u16,
    ) -> Result<(), ApplyError> {
        let mk = self.key_named(to, to_id)?;
        let r = self.node(from)?;
        if r.master != Some(mk) || r.owner(slot) != mk {
            return Err(refused(
                from,
                format!("MOVED {slot}: not a replica serving the slot for {to_id}"),
            ));
        }
        let copy = r.keys.get(&slot).cloned().unwrap_or_default();
        self.setslot_node(to, slot, mk)?;
        let m = self.node_mut(to)?;
        let held = m.keys.entry(slot).or_default();
        let before = held.len();
        held.extend(copy);
        let restored = (held.len() - before) as u64;
        m.repl_offset += restored;
        m.touch();
        self.mirror_slot(to, slot);
        Ok(())
    }

    /// How node `o` routes a keyed command for `slot` before running it (Redis'
    /// `getNodeByQuery`, in its order): an unbound slot and a cluster that is down refuse it
    /// first; `MIGRATE` (and `RESTORE-ASKING`, which carries `ASKING`) then runs locally on a
    /// slot the node imports, or migrates while owning it; anything else is redirected.
    /// A replica never owns a slot, so it answers MOVED (Redis redirects in cluster mode
    /// before it would check `replica-read-only`).
    pub(crate) fn route_keyed(&mut self, o: Ordinal, slot: u16) -> Result<(), String> {
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
    pub(crate) fn mid_slot_point(
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
            Victim::StalledSource => {
                self.replace_stalled_source(from);
                return Ok(());
            }
            // Never due mid-slot (`StepBudget::mid_slot`).
            Victim::CollidingSource | Victim::TargetAtHandover => return Ok(()),
        };
        self.kill(ordinal);
        Err(ApplyError::Killed { ordinal, victim })
    }

    /// `Victim::CollidingSource`: `o`'s current epoch catches up with the cluster's highest and
    /// a collision settled against it gives it the next one (Redis'
    /// `clusterHandleConfigEpochCollision`), above every config epoch there is. Nobody hears
    /// of it before the effect stops; gossip spreads it afterwards.
    fn collide(&mut self, o: Ordinal) {
        let highest = self
            .members
            .values()
            .filter(|m| m.running)
            .map(|m| m.node.current_epoch.max(m.node.config_epoch))
            .max()
            .unwrap_or(0);
        if let Some(m) = self.members.get_mut(&o) {
            m.node.current_epoch = highest + 1;
            m.node.config_epoch = highest + 1;
            m.node.touch();
        }
    }

    /// Redis' own failover of a source that stalled past the node timeout: its most advanced
    /// running replica wins the election under a new epoch and claims the slots it knew its
    /// master to own, and the source, awake again, hears the claim (it turns replica, or, still
    /// owning other slots, drops its keys of the slots it lost). Nothing happens to a source
    /// without a running replica.
    fn replace_stalled_source(&mut self, from: Ordinal) {
        let Ok(fk) = self.node(from).map(|n| n.key) else {
            return;
        };
        let Some(r) = self
            .members
            .values()
            .filter(|m| m.running && m.node.master == Some(fk) && self.can_talk(m.ordinal, from))
            .max_by_key(|m| (m.node.repl_offset, std::cmp::Reverse(m.ordinal)))
            .map(|m| m.ordinal)
        else {
            return;
        };
        self.stalled_sources += 1;
        self.take_over(r, fk);
        self.broadcast_pong(r);
    }

    /// `SETSLOT slot NODE <target>` on both ends of a move whose keys have all moved, in the
    /// executor's order for the server (`broadcast_owner`): on Valkey 8 the source first (it
    /// stops claiming a slot it has no key of before the target claims it); on Redis 7.0 the
    /// target first, once its bump will land above its source's epoch and every slot owner's
    /// (the executor's epoch gate, which waits for gossip to bring the target those epochs:
    /// the model gives them at once where the two can talk, and refuses otherwise). A fault
    /// may strike between the two commands (`StepBudget::at_handover`).
    fn hand_over(
        &mut self,
        from: Ordinal,
        to: Ordinal,
        slot: u16,
        tk: NodeKey,
        budget: &mut StepBudget,
    ) -> Result<(), ApplyError> {
        let (first, second) = match self.server {
            ServerModel::Valkey8 => (from, to),
            ServerModel::Redis70 => {
                self.epoch_gate(from, to)?;
                (to, from)
            }
        };
        self.setslot_node(first, slot, tk)?;
        match budget.at_handover() {
            Some(victim @ Victim::CollidingSource) => {
                self.collide(from);
                return Err(ApplyError::NoAnswer {
                    ordinal: second,
                    victim,
                });
            }
            Some(victim) => {
                self.kill(to);
                return Err(ApplyError::Killed {
                    ordinal: to,
                    victim,
                });
            }
            None => {}
        }
        budget.step()?;
        self.setslot_node(second, slot, tk)
    }

    /// The executor's `wait_target_outranks` on Redis 7.0: the target must know an epoch at
    /// least as high as its source's and every slot owner's before it is told, so that its
    /// bump lands above them.
    fn epoch_gate(&mut self, from: Ordinal, to: Ordinal) -> Result<(), ApplyError> {
        let floor = self
            .members
            .values()
            // Every running master, slot owner or not: a little stricter than the executor.
            .filter(|m| m.running && m.node.is_master())
            .map(|m| m.node.config_epoch)
            .chain(std::iter::once(self.node(from)?.config_epoch))
            .max()
            .unwrap_or(0);
        if !self.can_talk(from, to) {
            return Err(refused(
                to,
                format!("does not know epoch {floor} yet: not telling it the new owner"),
            ));
        }
        let n = self.node_mut(to)?;
        n.current_epoch = n.current_epoch.max(floor);
        Ok(())
    }

    pub(crate) fn migrate_slots(
        &mut self,
        from: Ordinal,
        from_id: &str,
        to: Ordinal,
        to_id: &str,
        ranges: &[engine::SlotRange],
        budget: &mut StepBudget,
    ) -> Result<(), ApplyError> {
        let fk = self.key_named(from, from_id)?;
        let tk = self.key_named(to, to_id)?;
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
                self.confirm_source_still_migrates(from, slot, tk)?;
                self.hand_over(from, to, slot, tk, budget)?;
            } else {
                budget.step()?;
                self.setslot_node(from, slot, tk)?;
            }
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

    /// The real executor's last look before handing a slot over (`handover.rs`,
    /// `confirm_source_still_migrates`): the source must still be a master owning the slot,
    /// migrating it to the target, with none of its keys.
    fn confirm_source_still_migrates(
        &self,
        from: Ordinal,
        slot: u16,
        tk: NodeKey,
    ) -> Result<(), ApplyError> {
        let n = self.node(from)?;
        let why = if !n.is_master() {
            "it is a replica now"
        } else if n.owner(slot) != n.key {
            "another node owns it now"
        } else if n.migrating.get(&slot) != Some(&tk) {
            "its migrating marker is gone"
        } else if n.keys_in(slot) > 0 {
            "keys of it arrived on the source"
        } else {
            return Ok(());
        };
        Err(refused(
            from,
            format!("slot {slot}: the source no longer migrates it ({why}); not handing it over"),
        ))
    }

    /// Moves the keys of `slot` that `from` holds without owning the slot to its owner `to`,
    /// as the real executor does: a node that does not import the slot first gets
    /// `SETSLOT slot IMPORTING <owner>` (Redis runs `MIGRATE` only for a slot the node owns or
    /// imports, and a `MIGRATING` marker on a node that no longer owns the slot does not
    /// count; on a replica `SETSLOT` is refused), then `MIGRATE` batches, then `SETSLOT
    /// STABLE`.
    pub(crate) fn move_stray_keys(
        &mut self,
        from: Ordinal,
        to: Ordinal,
        to_id: &str,
        slot: u16,
        budget: &mut StepBudget,
    ) -> Result<(), ApplyError> {
        let tk = self.key_named(to, to_id)?;
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
}
