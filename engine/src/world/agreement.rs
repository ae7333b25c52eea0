//! What the views agree on: who knows whom at which address, who plays which role, which slot
//! owners each view knows. Addresses, roles and the list of ids are shared fields of a view
//! (see [`crate::model::View`]), so each answer is computed once per distinct base, and views
//! on one base pass or fail together.

use super::World;
use crate::model::Ordinal;
use crate::views::{Pos, ViewIndex};
use std::collections::{BTreeMap, BTreeSet};

impl World<'_> {
    /// How many of the ids numbered `numbers` each reachable member's view lists. Which ids a
    /// view lists is its base's: counted once per base, not once per member.
    pub fn known_in_views(&self, numbers: &[Pos]) -> BTreeMap<Ordinal, usize> {
        let mut per_base: BTreeMap<usize, usize> = BTreeMap::new();
        self.views
            .iter()
            .map(|(ord, view)| {
                let known = *per_base.entry(view.base).or_insert_with(|| {
                    let base = &self.bases[view.base];
                    numbers
                        .iter()
                        .filter(|n| base.position(**n).is_some())
                        .count()
                });
                (*ord, known)
            })
            .collect()
    }

    /// Every reachable node knows every other reachable member, with its current address and
    /// no handshake pending.
    pub fn gossip_settled(&self) -> bool {
        // Leaving members are on their way out (and forgotten one node at a time): only the
        // members that stay must know each other. Each staying member's id number is found
        // once; then every view is checked by array reads.
        let mut staying = Vec::new();
        for (ord, (_, addr, _)) in &self.reachable {
            if !self.in_range(*ord) {
                continue;
            }
            let Some(n) = self.id_of.get(ord).and_then(|id| self.ids.get(id)) else {
                return false;
            };
            staying.push((n, *addr));
        }
        // Addresses and flags are shared fields: views on one base pass or fail together.
        let in_range = self.views.iter().filter(|(o, _)| self.in_range(**o));
        distinct_bases(in_range.map(|(_, v)| v))
            .into_iter()
            .all(|b| {
                let base = &self.bases[b];
                staying.iter().all(|&(n, addr)| {
                    // The port first: it is in the entry, the ip behind a pointer.
                    base.position(n)
                        .map(|p| &base.entries[p as usize])
                        .is_some_and(|e| {
                            !e.flags.handshake
                                && !e.flags.noaddr
                                && e.addr.as_ref().is_some_and(|a| {
                                    a.port == addr.port && same_ip(&a.ip, &addr.ip)
                                })
                        })
                })
            })
    }

    /// Every reachable node sees every reachable member in the role (and with the master) that
    /// member reports for itself: replicas attached a moment ago are known everywhere.
    pub fn roles_agreed(&self) -> bool {
        *self.roles_agreed.get_or_init(|| self.roles_agreed_now())
    }

    fn roles_agreed_now(&self) -> bool {
        // Each member's own line and its id number, found once.
        let mut selves = Vec::with_capacity(self.views.len());
        for view in self.views.values() {
            let Some(me) = view.me else { return false };
            let Some(n) = self.ids.get(&me.id) else {
                return false;
            };
            selves.push((n, me));
        }
        // Roles are shared fields: views on one base agree or not together.
        distinct_bases(self.views.values()).into_iter().all(|b| {
            let base = &self.bases[b];
            selves.iter().all(|&(n, me)| {
                base.position(n)
                    .map(|p| &base.entries[p as usize])
                    .is_some_and(|e| {
                        e.master_id == me.master_id && e.flags.replica == me.flags.replica
                    })
            })
        })
    }
}

/// The distinct bases of `views`, each once, in the order first met.
pub(super) fn distinct_bases<'v, 'a: 'v>(
    views: impl Iterator<Item = &'v ViewIndex<'a>>,
) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    views.map(|v| v.base).filter(|b| seen.insert(*b)).collect()
}

/// `a == b` for short strings such as addresses, compared in line: a call to `memcmp` per
/// entry costs more than the few bytes it compares, and gossip checks one per view entry.
fn same_ip(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}
