//! Builds views that share their bases: whoever observes many nodes at once (the Redis
//! observer, the simulator, test fixtures) passes every view of one observation through one
//! [`ViewInterner`], and views that list the same nodes with the same shared fields, in any
//! order, end up on one base.

use super::{Base, Pos, View, same_shared_fields};
use crate::model::ClusterNode;
use crate::views::IdHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

/// A base views may share, with each id's position (a shared base lists each id once).
struct Known {
    base: Arc<Base>,
    position: HashMap<String, Pos, BuildHasherDefault<IdHasher>>,
}

/// Interns the bases of the views it builds. Deterministic: fixed-key hashing, and the same
/// views in the same order give the same sharing.
#[derive(Default)]
pub struct ViewInterner {
    /// Known bases by the fingerprint of their shared fields (collisions are told apart by
    /// comparing the entries).
    known: BTreeMap<u64, Vec<Known>>,
    /// The addresses of the known bases (held by `known`, so never reused meanwhile): a view
    /// already on one is shared as it is, without reading its entries.
    held: BTreeSet<usize>,
}

/// A fingerprint of what every viewer sees alike of one entry (see `same_shared_fields`).
fn entry_fingerprint(e: &ClusterNode) -> u64 {
    let mut h = IdHasher::default();
    e.id.hash(&mut h);
    e.addr.hash(&mut h);
    e.hostname.hash(&mut h);
    let f = &e.flags;
    [f.master, f.replica, f.handshake, f.noaddr, f.nofailover].hash(&mut h);
    e.master_id.hash(&mut h);
    e.config_epoch.hash(&mut h);
    e.slots.hash(&mut h);
    h.finish()
}

/// A fingerprint of a whole view's shared fields that ignores the order of its entries (a sum
/// of the entries' fingerprints): Redis prints each node's view in its own hash order.
fn view_fingerprint(entries: &[ClusterNode]) -> u64 {
    entries.iter().fold(entries.len() as u64, |acc, e| {
        acc.wrapping_add(entry_fingerprint(e))
    })
}

impl ViewInterner {
    /// The view listing `entries`, on a base shared with earlier views of this interner when
    /// one lists the same nodes with the same shared fields.
    pub fn view(&mut self, entries: Vec<ClusterNode>) -> View {
        let key = view_fingerprint(&entries);
        for known in self.known.get(&key).into_iter().flatten() {
            if let Some(order) = placement(known, &entries) {
                return on_base(known, entries, &order);
            }
        }
        let view = View::new(entries);
        self.remember(key, &view);
        view
    }

    /// `view` again, on a base shared with earlier views when one fits (a view read from a
    /// trace, or remembered from an earlier pass, has a base of its own or an older one).
    pub fn share(&mut self, view: View) -> View {
        if self.held.contains(&view.base_id()) {
            return view;
        }
        let key = view_fingerprint(&view.base.entries);
        let entries = view.to_vec();
        for known in self.known.get(&key).into_iter().flatten() {
            if let Some(order) = placement(known, &entries) {
                return on_base(known, entries, &order);
            }
        }
        self.remember(key, &view);
        view
    }

    /// Offers `view`'s base for sharing, unless it lists an id twice (positions by id would
    /// be ambiguous, and the view's order would decide which entry is "the last").
    fn remember(&mut self, key: u64, view: &View) {
        let mut position = HashMap::with_capacity_and_hasher(view.len(), Default::default());
        for (p, e) in view.base.entries.iter().enumerate() {
            if position.insert(e.id.clone(), p as Pos).is_some() {
                return;
            }
        }
        self.held.insert(view.base_id());
        self.known.entry(key).or_default().push(Known {
            base: Arc::clone(&view.base),
            position,
        });
    }
}

/// Where each of `entries` sits in `known`'s base, in the view's order, when the view lists
/// exactly the base's nodes with the same shared fields.
fn placement(known: &Known, entries: &[ClusterNode]) -> Option<Vec<Pos>> {
    let base = &known.base.entries;
    if base.len() != entries.len() {
        return None;
    }
    let mut taken = vec![false; base.len()];
    let mut order = Vec::with_capacity(entries.len());
    for e in entries {
        let p = *known.position.get(e.id.as_str())?;
        let slot = taken.get_mut(p as usize)?;
        if *slot || !same_shared_fields(e, &base[p as usize]) {
            return None;
        }
        *slot = true;
        order.push(p);
    }
    Some(order)
}

/// The view listing `entries` (placed at `order` in `known`'s base) on that base.
fn on_base(known: &Known, entries: Vec<ClusterNode>, order: &[Pos]) -> View {
    let base = &known.base.entries;
    let mut own: Vec<(Pos, ClusterNode)> = entries
        .into_iter()
        .zip(order)
        .filter(|(e, p)| *e != base[**p as usize])
        .map(|(e, p)| (*p, e))
        .collect();
    own.sort_unstable_by_key(|(p, _)| *p);
    // The base positions listed before the longest run, at the end, that follows base order.
    let mut first_in_order = order.len();
    while first_in_order > 0
        && (first_in_order == order.len() || order[first_in_order - 1] < order[first_in_order])
    {
        first_in_order -= 1;
    }
    let front = order[..first_in_order].to_vec();
    let mut front_sorted = front.clone();
    front_sorted.sort_unstable();
    debug_assert!(
        own.iter()
            .all(|(p, e)| same_shared_fields(e, &base[*p as usize]))
    );
    View {
        base: Arc::clone(&known.base),
        own: own.into(),
        front: front.into(),
        front_sorted: front_sorted.into(),
    }
}
