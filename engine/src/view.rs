//! One node's view of the cluster (its parsed `CLUSTER NODES`), stored so that the views of
//! many nodes share what they have in common.
//!
//! Why: in a settled cluster of N nodes every view lists the same N nodes with the same
//! addresses, roles, epochs and slots; only a few fields belong to the viewer (its `myself`
//! flag and open slots on its own line, and, per entry, what it suspects, its bus link and its
//! ping and pong times). Stored as N independent lists, an observation of 2,000 nodes is
//! 4 million entries (~1.2 GB), and anything that reads every view pays for every entry even
//! though 1,999 of every 2,000 are copies. A [`View`] is therefore a shared *base* (behind an
//! [`Arc`], the entries common to many viewers) plus the viewer's own differences, sparse:
//! only the entries whose fields differ from the base, each kept whole so that every fact a
//! view held before is still there with the same meaning. The engine indexes each distinct
//! base once and applies each viewer's differences on top (see `views.rs`).
//!
//! Rejected alternative: keeping a plain `Vec<ClusterNode>` per node with a fingerprint of
//! its shared part. The engine could then skip repeated work, but every observer would still
//! build (and every trace replay still parse into) 4 million entries; sharing at construction
//! removes that cost where it arises.
//!
//! Invariants (kept by the constructors, which are the only way to build a view):
//! - a difference has the same id and the same *shared* fields (address, hostname, role
//!   flags, master, config epoch, slots) as the base entry it replaces: only per-viewer
//!   fields (`myself`, `fail?`, `fail`, ping and pong times, link, open slots) differ;
//! - no base entry is flagged `myself` or lists open slots: those are always differences;
//! - a view may list its entries in another order than its base (Redis prints them in hash
//!   order, the simulator its own line first): `front` names the base positions it lists
//!   first, the others follow in base order. A base that lists an id twice is never shared,
//!   and its view lists it in base order, so "the last entry for an id" means the same in
//!   base order and in the view's.
//!
//! A view reads, compares, prints and serializes exactly as the plain list it stands for.

use crate::model::ClusterNode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

mod interner;
pub use interner::ViewInterner;

/// Position of an entry in a view's base.
type Pos = u32;

/// The entries many views have in common. Never flagged `myself`, never with open slots.
#[derive(Debug, Default)]
struct Base {
    entries: Vec<ClusterNode>,
}

/// One node's view: a shared base and this viewer's differences from it. See the module doc.
#[derive(Clone, Default)]
pub struct View {
    base: Arc<Base>,
    /// This viewer's entries that differ from the base, by base position (sorted, unique).
    /// Shared too: a view is never edited in place, and a remembered view handed to a later
    /// pass (the steady-state observer reuses ~190 of 200 views a pass at 100 × 1) is then
    /// a few reference counts, not a copy of every entry its viewer timed differently.
    own: Arc<[(Pos, ClusterNode)]>,
    /// Base positions this view lists first, in its order; the others follow in base order.
    front: Arc<[Pos]>,
    /// `front` sorted, to skip those positions among the others.
    front_sorted: Arc<[Pos]>,
}

/// The fields every viewer of a node sees alike: two entries that agree on these describe the
/// same node in the same role, and differ only in what one viewer suspects or measures.
pub(crate) fn same_shared_fields(a: &ClusterNode, b: &ClusterNode) -> bool {
    a.id == b.id
        && a.addr == b.addr
        && a.hostname == b.hostname
        && a.flags.master == b.flags.master
        && a.flags.replica == b.flags.replica
        && a.flags.handshake == b.flags.handshake
        && a.flags.noaddr == b.flags.noaddr
        && a.flags.nofailover == b.flags.nofailover
        && a.master_id == b.master_id
        && a.config_epoch == b.config_epoch
        && a.slots == b.slots
}

/// Only a viewer's own line says `myself` or shows open slots: such an entry is never shared.
fn own_line_only(e: &ClusterNode) -> bool {
    e.flags.myself || !e.open_slots.is_empty()
}

/// `e` as a base entry: its `myself` flag and open slots removed (they stay a difference).
fn as_base_entry(e: &ClusterNode) -> ClusterNode {
    let mut b = e.clone();
    b.flags.myself = false;
    b.open_slots = Vec::new();
    b
}

impl View {
    /// A view with a base of its own (shared with nothing yet): what a deserialized trace or
    /// a hand-built test view is. [`ViewInterner`] builds views that share bases.
    pub fn new(entries: Vec<ClusterNode>) -> Self {
        let mut own = Vec::new();
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                if own_line_only(&e) {
                    let b = as_base_entry(&e);
                    own.push((i as Pos, e));
                    b
                } else {
                    e
                }
            })
            .collect();
        Self {
            base: Arc::new(Base { entries }),
            own: own.into(),
            front: Arc::default(),
            front_sorted: Arc::default(),
        }
    }

    /// How many entries the view lists.
    pub fn len(&self) -> usize {
        self.base.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.base.entries.is_empty()
    }

    /// The entries in the order the node listed them.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            view: self,
            front: 0,
            rest: 0,
            skip: 0,
        }
    }

    /// The `i`-th entry in the order the node listed them.
    pub fn get(&self, i: usize) -> Option<&ClusterNode> {
        if let Some(&p) = self.front.get(i) {
            return Some(self.at(p));
        }
        // The others follow in base order: the `k`-th base position not in the front.
        let mut p = i - self.front.len();
        for &f in self.front_sorted.iter() {
            if f as usize <= p {
                p += 1;
            } else {
                break;
            }
        }
        (p < self.len()).then(|| self.at(p as Pos))
    }

    /// The entries as a plain list (a copy).
    pub fn to_vec(&self) -> Vec<ClusterNode> {
        self.iter().cloned().collect()
    }

    /// The node's own line: the first entry flagged `myself`. Only differences carry the flag,
    /// so this reads the base only when a view has several such lines.
    pub fn myself(&self) -> Option<&ClusterNode> {
        let mut selves = self.own.iter().filter(|(_, e)| e.flags.myself);
        let first = selves.next()?;
        if selves.next().is_none() {
            return Some(&first.1);
        }
        self.iter().find(|e| e.flags.myself)
    }

    /// The first entry for `id`, as this node sees it.
    pub fn view_of(&self, id: &str) -> Option<&ClusterNode> {
        self.iter().find(|n| n.id == id)
    }

    /// Edits the entries as a plain list; the view is rebuilt when the guard drops, with a
    /// base of its own (it shares nothing afterwards). For tests and fault injection.
    pub fn entries_mut(&mut self) -> ViewMut<'_> {
        let entries = self.to_vec();
        ViewMut {
            view: self,
            entries,
        }
    }

    /// The entries of the shared base, in base order (`myself` and open slots removed).
    pub fn base_entries(&self) -> &[ClusterNode] {
        &self.base.entries
    }

    /// This viewer's entries that differ from the base (its own line at least).
    pub fn differences(&self) -> impl Iterator<Item = &ClusterNode> {
        self.own.iter().map(|(_, e)| e)
    }

    /// Both views stand on the same shared base.
    pub fn shares_base_with(&self, other: &View) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// Identifies the base while the view lives: equal for views sharing one.
    pub fn base_id(&self) -> usize {
        Arc::as_ptr(&self.base) as usize
    }

    /// This viewer's differences, by base position (sorted).
    pub(crate) fn own(&self) -> &[(Pos, ClusterNode)] {
        &self.own
    }

    /// This viewer's entry at base position `p`: its difference, or the base entry.
    ///
    /// Panics when `p` is not a position of the base: callers take positions from the base.
    pub(crate) fn at(&self, p: Pos) -> &ClusterNode {
        match self.own.binary_search_by_key(&p, |(q, _)| *q) {
            Ok(i) => &self.own[i].1,
            Err(_) => &self.base.entries[p as usize],
        }
    }

    /// This viewer's difference at base position `p`, if it has one.
    pub(crate) fn own_at(&self, p: Pos) -> Option<&ClusterNode> {
        self.own
            .binary_search_by_key(&p, |(q, _)| *q)
            .ok()
            .map(|i| &self.own[i].1)
    }
}

/// The entries of a [`View`] in the order the node listed them.
pub struct Iter<'a> {
    view: &'a View,
    /// Next index into `front`.
    front: usize,
    /// Next base position to consider after the front.
    rest: usize,
    /// Next index into `front_sorted` (positions to skip among the rest).
    skip: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a ClusterNode;

    fn next(&mut self) -> Option<&'a ClusterNode> {
        let v = self.view;
        if let Some(&p) = v.front.get(self.front) {
            self.front += 1;
            return Some(v.at(p));
        }
        let n = v.base.entries.len();
        while self.rest < n {
            let p = self.rest as Pos;
            self.rest += 1;
            if v.front_sorted.get(self.skip) == Some(&p) {
                self.skip += 1;
                continue;
            }
            return Some(v.at(p));
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let v = self.view;
        let left = (v.front.len() - self.front) + (v.base.entries.len() - self.rest)
            - (v.front_sorted.len() - self.skip);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a View {
    type Item = &'a ClusterNode;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<usize> for View {
    type Output = ClusterNode;

    /// The `i`-th entry in the order the node listed them; panics past the end, as a list does.
    fn index(&self, i: usize) -> &ClusterNode {
        match self.get(i) {
            Some(e) => e,
            None => panic!(
                "index {i} out of range for a view of {} entries",
                self.len()
            ),
        }
    }
}

impl From<Vec<ClusterNode>> for View {
    fn from(entries: Vec<ClusterNode>) -> Self {
        View::new(entries)
    }
}

impl FromIterator<ClusterNode> for View {
    fn from_iter<I: IntoIterator<Item = ClusterNode>>(iter: I) -> Self {
        View::new(iter.into_iter().collect())
    }
}

impl PartialEq for View {
    /// Equal when they list the same entries in the same order, however they are stored.
    fn eq(&self, other: &Self) -> bool {
        if self.shares_base_with(other) && self.own == other.own && self.front == other.front {
            return true;
        }
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for View {}

impl fmt::Debug for View {
    /// As the plain list it stands for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for View {
    /// As the plain list it stands for: traces keep the shape they had before views were
    /// shared, `myself` flag and all.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for View {
    /// From the plain list, with a base of its own ([`ViewInterner::share`] shares it).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<ClusterNode>::deserialize(deserializer).map(View::new)
    }
}

/// A view being edited as a plain list (see [`View::entries_mut`]).
pub struct ViewMut<'a> {
    view: &'a mut View,
    entries: Vec<ClusterNode>,
}

impl std::ops::Deref for ViewMut<'_> {
    type Target = Vec<ClusterNode>;

    fn deref(&self) -> &Vec<ClusterNode> {
        &self.entries
    }
}

impl std::ops::DerefMut for ViewMut<'_> {
    fn deref_mut(&mut self) -> &mut Vec<ClusterNode> {
        &mut self.entries
    }
}

impl Drop for ViewMut<'_> {
    fn drop(&mut self) {
        *self.view = View::new(std::mem::take(&mut self.entries));
    }
}

#[cfg(test)]
mod tests;
