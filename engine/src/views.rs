//! Indexes over the views of one observation, built in one pass over every entry.
//!
//! A cluster of N nodes gives N views of N entries: at 1,000 masters × 1 replica that is
//! 4 million entries. Each node id is numbered once ([`Ids`]); each view then maps a number
//! to its entry by array index ([`ViewIndex`]), so "how does member A see node B" is two array
//! reads instead of a string-keyed search, and the checks that compare every view with every
//! member cost one array read per pair.

use crate::model::{Addr, ClusterNode, View};
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Position of an entry in its view, or of an id in [`Ids`]; `NONE` where there is none.
pub(crate) type Pos = u32;
pub(crate) const NONE: Pos = Pos::MAX;

/// A fixed-key hasher for node ids (40 hex characters): a few multiply-rotate rounds over
/// 8-byte words. Fixed keys keep the engine deterministic (the map is only ever looked up,
/// never iterated, so its order reaches no output), and ids are not chosen by an adversary
/// who could aim at collisions: Redis draws them at random, and a collision costs time only.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.mix(u64::from_le_bytes(word));
        }
        for &b in words.remainder() {
            self.mix(u64::from(b));
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.mix(u64::from(b));
    }

    fn finish(&self) -> u64 {
        // Spread the high bits (where the multiply put the entropy) into the low ones too.
        self.0 ^ (self.0 >> 29) ^ (self.0 >> 47)
    }
}

/// Every node id any view mentions, numbered in the order first seen.
#[derive(Default)]
pub(crate) struct Ids<'a> {
    number: HashMap<&'a str, Pos, BuildHasherDefault<IdHasher>>,
    names: Vec<&'a str>,
    /// Per number: some reachable view lists the id as a master with slots (see
    /// `World::listed_with_slots`).
    pub listed: Vec<bool>,
}

impl<'a> Ids<'a> {
    pub fn intern(&mut self, id: &'a str) -> Pos {
        let next = self.names.len() as Pos;
        let n = *self.number.entry(id).or_insert(next);
        if n == next {
            self.names.push(id);
            self.listed.push(false);
        }
        n
    }

    pub fn get(&self, id: &str) -> Option<Pos> {
        self.number.get(id).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// One distinct base (the entries many views share, see [`View`]), indexed by id number: the
/// work per entry is done once per base, not once per view.
pub(crate) struct BaseIndex<'a> {
    pub entries: &'a [ClusterNode],
    /// Id number of each entry, in base order.
    pub number: Vec<Pos>,
    /// Entry position per id number (the last entry wins when a base lists an id twice; such
    /// a base is never shared and its view lists it in base order).
    pos: Vec<Pos>,
    /// Addresses its entries hold an unfinished handshake with (usually none). The flag is a
    /// shared field: every view of the base says the same.
    pub handshakes: BTreeSet<&'a Addr>,
    /// Entries not in a handshake (a base has no `myself` line).
    not_handshaking: usize,
    /// Positions of entries flagged `fail` or `fail?` in the base.
    failing: Vec<Pos>,
    /// Ids it lists as masters with slots, by number.
    listed: Vec<Pos>,
    /// Positions of the ids no member answered for (filled by [`BaseIndex::note_unanswered`]).
    pub unanswered: Vec<Pos>,
}

impl<'a> BaseIndex<'a> {
    /// Numbers every entry of `view`'s base and notes, in the same pass, what the rules ask of
    /// every entry; `pos` is filled by [`BaseIndex::seal`] once every base is numbered.
    pub fn number(view: &'a View, ids: &mut Ids<'a>) -> Self {
        let entries = view.base_entries();
        let mut base = Self {
            entries,
            number: Vec::with_capacity(entries.len()),
            pos: Vec::new(),
            handshakes: BTreeSet::new(),
            not_handshaking: 0,
            failing: Vec::new(),
            listed: Vec::new(),
            unanswered: Vec::new(),
        };
        for (p, e) in entries.iter().enumerate() {
            let n = ids.intern(&e.id);
            base.number.push(n);
            let f = &e.flags;
            if f.handshake {
                base.handshakes.extend(e.addr.as_ref());
            } else {
                base.not_handshaking += 1;
            }
            if f.fail || f.pfail {
                base.failing.push(p as Pos);
            }
            if !e.slots.is_empty() && e.master_id.is_none() {
                base.listed.push(n);
            }
        }
        base
    }

    /// Counts this base's listings in `ids` (once some view of it is known to be reachable).
    pub fn publish_listed(&self, ids: &mut Ids<'a>) {
        for &n in &self.listed {
            ids.listed[n as usize] = true;
        }
    }

    pub fn seal(&mut self, ids: usize) {
        self.pos = vec![NONE; ids];
        for (i, &n) in self.number.iter().enumerate() {
            self.pos[n as usize] = i as Pos;
        }
    }

    /// Notes the positions of the ids that no member answered for (`answered` by number).
    pub fn note_unanswered(&mut self, answered: &[bool]) {
        self.unanswered = (0..self.number.len() as Pos)
            .filter(|&p| !answered[self.number[p as usize] as usize])
            .collect();
    }

    /// The base position of id number `n`.
    pub fn position(&self, n: Pos) -> Option<Pos> {
        match self.pos.get(n as usize) {
            Some(&p) if p != NONE => Some(p),
            _ => None,
        }
    }
}

/// One view (a node's `CLUSTER NODES`): its base's index and what its own differences change.
pub(crate) struct ViewIndex<'a> {
    pub view: &'a View,
    /// Index of its base among the world's bases.
    pub base: usize,
    /// The node's own line: the first entry flagged `myself`.
    pub me: Option<&'a ClusterNode>,
    /// It lists another node than itself, not in a handshake.
    pub knows_another: bool,
    /// It flags some node `fail` or `fail?`.
    pub flags_failure: bool,
}

impl<'a> ViewIndex<'a> {
    /// What `view` says beyond its base (indexed as `index`, number `base`): read from its own
    /// differences only, which are usually its own line alone.
    pub fn new(view: &'a View, base: usize, index: &BaseIndex<'a>) -> Self {
        let own = view.own();
        // Differences keep the shared fields, so a `myself` difference is in a handshake
        // exactly when its base entry is.
        let selves = own
            .iter()
            .filter(|(_, e)| e.flags.myself && !e.flags.handshake)
            .count();
        let flags_failure = own.iter().any(|(_, e)| e.flags.fail || e.flags.pfail)
            || index.failing.iter().any(|&p| view.own_at(p).is_none());
        Self {
            view,
            base,
            me: view.myself(),
            knows_another: index.not_handshaking > selves,
            flags_failure,
        }
    }

    /// The entry for id number `n`, read through `index`, this view's base.
    pub fn entry(&self, index: &BaseIndex<'a>, n: Pos) -> Option<&'a ClusterNode> {
        index.position(n).map(|p| self.view.at(p))
    }
}

/// The consensus slot map as runs of one owner, with the run that holds each slot: a view
/// agrees when its claims are exactly these runs.
pub(crate) struct Consensus<'a> {
    runs: Vec<(u16, u16, Option<&'a str>)>,
    /// Id number of each run's owner (`NONE` for unowned runs).
    run_owner: Vec<Pos>,
    /// Index into `runs` per slot.
    run_of: Vec<u32>,
    /// Slots with an owner.
    owned: u32,
}

impl<'a> Consensus<'a> {
    pub fn new(owner: &[Option<&'a str>], ids: &Ids<'a>) -> Self {
        let mut runs: Vec<(u16, u16, Option<&str>)> = Vec::new();
        let mut run_of = Vec::with_capacity(owner.len());
        for (slot, o) in owner.iter().enumerate() {
            let slot = slot as u16;
            match runs.last_mut() {
                Some(last) if crate::world::same_owner(last.2, *o) => last.1 = slot,
                _ => runs.push((slot, slot, *o)),
            }
            run_of.push((runs.len() - 1) as u32);
        }
        let run_owner = runs
            .iter()
            .map(|(_, _, o)| o.and_then(|id| ids.get(id)).unwrap_or(NONE))
            .collect();
        Self {
            runs,
            run_owner,
            run_of,
            owned: owner.iter().filter(|o| o.is_some()).count() as u32,
        }
    }

    /// The view's masters claim exactly the consensus slot map: every slot owned in the
    /// consensus is claimed by its owner and by no one else, and no other slot is claimed.
    ///
    /// The usual view (each id listed once, each entry's ranges increasing) is checked range
    /// by range against the runs, with no sort; `seen` (one stamp per id number, `stamp`
    /// unique to this call) finds an id listed twice. Anything else goes through
    /// [`Consensus::agrees_by_merging`], the general comparison.
    pub fn agrees(&self, view: &BaseIndex<'a>, seen: &mut [u32], stamp: u32) -> bool {
        let mut claimed = 0u32;
        for (e, &n) in view.entries.iter().zip(&view.number) {
            if e.slots.is_empty() || !e.is_master() {
                continue;
            }
            if seen[n as usize] == stamp {
                return self.agrees_by_merging(view);
            }
            seen[n as usize] = stamp;
            let mut next = 0u32;
            for r in &e.slots {
                if u32::from(r.start) < next || r.start > r.end {
                    return self.agrees_by_merging(view);
                }
                next = u32::from(r.end) + 1;
                let Some(&run) = self.run_of.get(usize::from(r.start)) else {
                    return false;
                };
                let (_, end, _) = self.runs[run as usize];
                // Runs are maximal: a range that leaves its run, or lies in another owner's
                // run, routes a slot elsewhere than the consensus.
                if self.run_owner[run as usize] != n || r.end > end {
                    return false;
                }
                claimed += r.len();
            }
        }
        // Claims are disjoint (increasing within an entry, different owners' runs across
        // entries) and all match the consensus: they cover it exactly when they count as many.
        claimed == self.owned
    }

    /// The general comparison: the view's claims merged into runs, equal to the consensus.
    fn agrees_by_merging(&self, view: &BaseIndex<'a>) -> bool {
        let mut seen: Vec<(u16, u16, &str)> = view
            .entries
            .iter()
            .filter(|e| e.is_master())
            .flat_map(|e| e.slots.iter().map(move |r| (r.start, r.end, e.id.as_str())))
            .collect();
        seen.sort_unstable();
        let mut merged: Vec<(u16, u16, Option<&str>)> = Vec::new();
        let mut next = 0u32;
        for (start, end, id) in seen {
            if u32::from(start) < next {
                return false; // two owners claim one slot in this view
            }
            if u32::from(start) > next {
                merged.push((next as u16, start - 1, None));
            }
            match merged.last_mut() {
                Some(last) if last.2 == Some(id) && u32::from(last.1) + 1 == u32::from(start) => {
                    last.1 = end;
                }
                _ => merged.push((start, end, Some(id))),
            }
            next = u32::from(end) + 1;
        }
        if next < u32::from(crate::slots::SLOT_COUNT) {
            merged.push((next as u16, crate::slots::SLOT_COUNT - 1, None));
        }
        merged == self.runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LinkState, NodeFlags};
    use crate::slots::{SLOT_COUNT, SlotRange};

    fn entry(id: &str, slots: &[(u16, u16)]) -> ClusterNode {
        ClusterNode {
            id: id.to_string(),
            addr: None,
            hostname: None,
            flags: NodeFlags {
                master: true,
                ..NodeFlags::default()
            },
            master_id: None,
            ping_sent_ms: 0,
            pong_recv_ms: 0,
            config_epoch: 1,
            link: LinkState::Connected,
            slots: slots.iter().map(|&(a, b)| SlotRange::new(a, b)).collect(),
            open_slots: Vec::new(),
        }
    }

    /// Consensus: `a` owns 0-8191, `b` 8192-16382, slot 16383 unowned.
    fn both_ways(view: Vec<ClusterNode>) -> (bool, bool) {
        let consensus_view = View::new(vec![entry("a", &[]), entry("b", &[])]);
        let s = View::new(view);
        let mut ids = Ids::default();
        BaseIndex::number(&consensus_view, &mut ids);
        let mut v = BaseIndex::number(&s, &mut ids);
        v.seal(ids.len());
        let mut owner: Vec<Option<&str>> = vec![None; usize::from(SLOT_COUNT)];
        for (slot, o) in owner.iter_mut().enumerate().take(16383) {
            *o = Some(if slot < 8192 { "a" } else { "b" });
        }
        let c = Consensus::new(&owner, &ids);
        let mut seen = vec![u32::MAX; ids.len()];
        (c.agrees(&v, &mut seen, 0), c.agrees_by_merging(&v))
    }

    #[test]
    fn the_range_by_range_check_agrees_with_merging_on_usual_and_odd_views() {
        let cases: Vec<(Vec<ClusterNode>, bool)> = vec![
            // The usual agreeing view, in either order, split or not.
            (
                vec![entry("a", &[(0, 8191)]), entry("b", &[(8192, 16382)])],
                true,
            ),
            (
                vec![
                    entry("b", &[(8192, 16382)]),
                    entry("a", &[(0, 4000), (4001, 8191)]),
                ],
                true,
            ),
            // An id listed twice whose halves together agree (the general path decides).
            (
                vec![
                    entry("a", &[(0, 99)]),
                    entry("b", &[(8192, 16382)]),
                    entry("a", &[(100, 8191)]),
                ],
                true,
            ),
            // Ranges out of order within one entry.
            (
                vec![
                    entry("a", &[(4001, 8191), (0, 4000)]),
                    entry("b", &[(8192, 16382)]),
                ],
                true,
            ),
            // A gap, an extra slot, a slot given to the other owner, an overlap.
            (
                vec![entry("a", &[(0, 8190)]), entry("b", &[(8192, 16382)])],
                false,
            ),
            (
                vec![entry("a", &[(0, 8191)]), entry("b", &[(8192, 16383)])],
                false,
            ),
            (
                vec![entry("a", &[(0, 8192)]), entry("b", &[(8193, 16382)])],
                false,
            ),
            (
                vec![
                    entry("a", &[(0, 8191), (100, 200)]),
                    entry("b", &[(8192, 16382)]),
                ],
                false,
            ),
            (
                vec![
                    entry("a", &[(0, 8191)]),
                    entry("b", &[(8192, 16382)]),
                    entry("a", &[(5, 5)]),
                ],
                false,
            ),
            // An id the consensus does not know claims slots.
            (
                vec![entry("a", &[(0, 8191)]), entry("c", &[(8192, 16382)])],
                false,
            ),
        ];
        for (i, (view, expected)) in cases.into_iter().enumerate() {
            assert_eq!(both_ways(view), (expected, expected), "case {i}");
        }
    }
}
