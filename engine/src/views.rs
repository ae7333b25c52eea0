//! Indexes over the views of one observation, built in one pass over every entry.
//!
//! A cluster of N nodes gives N views of N entries: at 1,000 masters × 1 replica that is
//! 4 million entries. Each node id is numbered once ([`Ids`]); each view then maps a number
//! to its entry by array index ([`ViewIndex`]), so "how does member A see node B" is two array
//! reads instead of a string-keyed search, and the checks that compare every view with every
//! member cost one array read per pair.

use crate::model::{Addr, ClusterNode, NodeState};
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

/// One view (a node's `CLUSTER NODES`), indexed by id number.
pub(crate) struct ViewIndex<'a> {
    pub entries: &'a [ClusterNode],
    /// The node's own line: the first entry flagged `myself`.
    pub me: Option<&'a ClusterNode>,
    /// Id number of each entry, in view order.
    pub number: Vec<Pos>,
    /// Entry position per id number (the last entry wins when a view lists an id twice).
    pos: Vec<Pos>,
    /// Addresses this view holds an unfinished handshake with (usually none).
    pub handshakes: BTreeSet<&'a Addr>,
    /// It lists another node than itself, not in a handshake.
    pub knows_another: bool,
    /// It flags some node `fail` or `fail?`.
    pub flags_failure: bool,
    /// Ids it lists as masters with slots, by number.
    listed: Vec<Pos>,
}

impl<'a> ViewIndex<'a> {
    /// Numbers every entry of `state`'s view and notes, in the same pass, what the rules ask
    /// of every entry; `pos` is filled by [`ViewIndex::seal`] once every view is numbered.
    pub fn number(state: &'a NodeState, ids: &mut Ids<'a>) -> Self {
        let mut view = Self {
            entries: &state.nodes,
            me: None,
            number: Vec::with_capacity(state.nodes.len()),
            pos: Vec::new(),
            handshakes: BTreeSet::new(),
            knows_another: false,
            flags_failure: false,
            listed: Vec::new(),
        };
        for e in &state.nodes {
            let n = ids.intern(&e.id);
            view.number.push(n);
            let f = &e.flags;
            if f.myself && view.me.is_none() {
                view.me = Some(e);
            }
            if f.handshake {
                view.handshakes.extend(e.addr.as_ref());
            } else if !f.myself {
                view.knows_another = true;
            }
            view.flags_failure |= f.fail || f.pfail;
            if !e.slots.is_empty() && e.master_id.is_none() {
                view.listed.push(n);
            }
        }
        view
    }

    /// Counts this view's listings in `ids` (once it is known to be reachable).
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

    /// The entry for id number `n`.
    pub fn entry(&self, n: Pos) -> Option<&'a ClusterNode> {
        match self.pos.get(n as usize) {
            Some(&p) if p != NONE => self.entries.get(p as usize),
            _ => None,
        }
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
    pub fn agrees(&self, view: &ViewIndex<'a>, seen: &mut [u32], stamp: u32) -> bool {
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
    fn agrees_by_merging(&self, view: &ViewIndex<'a>) -> bool {
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

    fn state(nodes: Vec<ClusterNode>) -> NodeState {
        NodeState {
            id: String::new(),
            nodes,
            cluster_ok: true,
            current_epoch: 1,
            repl_offset: 0,
            master_link_up: false,
            keys: 0,
            open_slot_keys: Default::default(),
            ever_linked: true,
            serves_replicas: true,
            replicates_from: None,
            replid: None,
            config: Default::default(),
        }
    }

    /// Consensus: `a` owns 0-8191, `b` 8192-16382, slot 16383 unowned.
    fn both_ways(view: Vec<ClusterNode>) -> (bool, bool) {
        let consensus_view = state(vec![entry("a", &[]), entry("b", &[])]);
        let s = state(view);
        let mut ids = Ids::default();
        ViewIndex::number(&consensus_view, &mut ids);
        let mut v = ViewIndex::number(&s, &mut ids);
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
