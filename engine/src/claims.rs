//! Slot claims the views disagree on and will not settle by themselves: a claim some view can
//! never accept (an older owner's equal or higher epoch). Slots nobody claims: `unclaimed`.
//! And the config epochs two masters share, settled before any slot moves (`tied_epochs`).

use crate::effect::Effect;
use crate::model::Ordinal;
use crate::restart::epoch_bump_for;
use crate::work::{Kind, Work};
use crate::world::World;
use std::collections::BTreeSet;

/// Views that will never accept a claim: master X alone claims slot s, but some view still
/// gives s to Y, a live node that gave it away or a ghost, under an epoch at least X's. Redis takes a
/// slot only for a strictly newer epoch, so that view never changes (it happens when Y's
/// epoch rose, through a collision or another move, before the view heard X's claim), and
/// the UPDATE it sends back can even take the slot from X. X bumps its epoch, as `redis-cli
/// --cluster fix` does for a slot with several owners. Never when two live masters claim a
/// slot, nor in favour of a stale claim over a node that is down: that could undo a failover.
pub(crate) fn outdated_claims(w: &World) -> Option<Work> {
    if w.slots_agreed {
        return None;
    }
    let mut claimant: Vec<Option<(&str, u64)>> = vec![None; usize::from(crate::slots::SLOT_COUNT)];
    for (_, _, state) in w.reachable.values() {
        let me = state.myself()?;
        if !me.open_slots.is_empty() {
            return None; // an interrupted move: `repair_open_slots` first
        }
        if me.master_id.is_some() || me.flags.replica {
            continue;
        }
        for s in crate::slots::expand(&me.slots) {
            let c = claimant.get_mut(usize::from(s))?;
            if c.is_some() {
                return None; // two live claimants: epochs decide, not the operator
            }
            *c = Some((me.id.as_str(), me.config_epoch));
        }
    }
    // With persistence, a node that is down may come back with its data and may be the
    // rightful owner (a replica that won an election): its listings are left alone. A ghost, an id no member runs any more (its
    // member came back under a new id), never returns; but while some member is down and
    // unrecognisable, any unknown id might be that member.
    let down: BTreeSet<&str> = w
        .id_of
        .iter()
        .filter(|(o, _)| !w.reachable.contains_key(o))
        .map(|(_, id)| *id)
        .collect();
    let unidentified = w
        .obs
        .members
        .keys()
        .any(|o| !w.reachable.contains_key(o) && !w.id_of.contains_key(o));
    let known: BTreeSet<&str> = w.id_of.values().copied().collect();
    // A member whose process runs but does not answer (paused, stuck, cut off from the
    // operator) comes back as it was, with its data, persistence or not (simulator seeds 18
    // and 76 with paused masters: bumped over, they came back to follow an empty claim).
    let silent: BTreeSet<Ordinal> = w
        .obs
        .members
        .iter()
        .filter(|(o, m)| m.running && !w.reachable.contains_key(o))
        .map(|(o, _)| *o)
        .collect();
    let silent_ids: BTreeSet<&str> = silent
        .iter()
        .filter_map(|o| w.id_of.get(o).copied())
        .collect();
    let silent_unidentified = silent.iter().any(|o| !w.id_of.contains_key(o));
    // Without persistence a node that is down (its process gone) comes back empty: its
    // claims protect nothing.
    let may_return = |id: &str| {
        silent_ids.contains(id)
            || (silent_unidentified && !known.contains(id))
            || (w.desired.persistent
                && (down.contains(id) || (unidentified && !known.contains(id))))
    };
    let mut bump: BTreeSet<&str> = BTreeSet::new();
    for (_, _, state) in w.reachable.values() {
        for e in &state.nodes {
            if e.flags.myself || e.flags.replica || may_return(&e.id) {
                continue;
            }
            for s in crate::slots::expand(&e.slots) {
                if let Some(Some((x, epoch))) = claimant.get(usize::from(s))
                    && *x != e.id
                    && e.config_epoch >= *epoch
                {
                    bump.insert(x);
                }
            }
        }
    }
    // Through `epoch_bump_for`: a claimant already at the current epoch would answer STILL.
    let effects: Vec<Effect> = bump
        .iter()
        .filter_map(|id| w.ordinal_of(id))
        .filter_map(|holder| epoch_bump_for(w, holder))
        .collect::<BTreeSet<Ordinal>>()
        .into_iter()
        .map(|on| Effect::BumpEpoch { on })
        .collect();
    if effects.is_empty() {
        return None;
    }
    let n = effects.len();
    Some(Work::new(
        Kind::Recover,
        effects,
        format!("giving {n} master(s) a newer epoch: some views still hold an older owner's claim"),
    ))
}

/// Holds a rebalance back while two masters that own slots share a config epoch, and gives the
/// one Redis would move (the lower node id) a newer epoch now.
///
/// Redis settles such a tie by itself when the two next exchange a ping: the lower id takes
/// its current epoch plus one. Settled in the middle of a migration, that jump can lift a
/// source above the target it is handing a slot to, whose claim then loses and whose copies
/// of the slot's keys Redis deletes. It happened at 100 -> 110 masters on Redis 7.0: two old
/// masters tied at epoch 95 since the cluster's creation (at 100 masters the collisions of a
/// new cluster take minutes to settle) met 20 s into the scale-out; the source jumped to 145,
/// then to 148 through ties with targets bumping at once, and 369 keys of 3 slots were lost.
/// Settled first, the old masters' epochs stay below every target's bump for the whole move.
///
/// One master per pass: several bumped at once, with the same current epoch, would tie again.
/// A master already at the highest epoch it knows would answer `BUMPEPOCH` with STILL; then
/// the wait is for Redis, which settles it on the pair's next ping.
pub(crate) fn tied_epochs(w: &World) -> Option<Work> {
    // Masters that own slots only: a drained master (no slots, leaving) tied with one is left
    // to Redis, as it may never ping again once its removal starts (simulator seed 40027).
    let mut by_epoch: std::collections::BTreeMap<u64, Vec<(&str, Ordinal, u64)>> =
        std::collections::BTreeMap::new();
    for (o, (_, _, state)) in &w.reachable {
        let Some(me) = state.myself() else { continue };
        if me.flags.replica || me.master_id.is_some() || me.config_epoch == 0 || me.slots.is_empty()
        {
            continue;
        }
        by_epoch.entry(me.config_epoch).or_default().push((
            me.id.as_str(),
            *o,
            state.current_epoch,
        ));
    }
    let (epoch, tied) = by_epoch.into_iter().find(|(_, tied)| tied.len() > 1)?;
    let names: Vec<String> = tied.iter().map(|(_, o, _)| format!("#{o}")).collect();
    let (_, loser, current) = *tied.iter().min_by_key(|(id, ..)| *id)?;
    let what = format!(
        "masters {} share config epoch {epoch}; settling it before moving slots",
        names.join(", ")
    );
    if current > epoch {
        Some(Work::new(
            Kind::Wait,
            vec![Effect::BumpEpoch { on: loser }],
            format!("{what} (#{loser} takes a newer one)"),
        ))
    } else {
        Some(Work::wait(format!(
            "{what} (Redis will, on their next ping)"
        )))
    }
}
