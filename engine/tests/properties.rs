//! Properties of `decide` over random observations: it never panics, it is deterministic, and
//! whatever it decides respects the safety rules that do not depend on timing.
#![allow(clippy::unwrap_used)]

mod fixture;

use proptest::prelude::*;
use redis_operator_engine::model::*;
use redis_operator_engine::slots::SlotRange;
use redis_operator_engine::*;
use std::collections::{BTreeMap, BTreeSet};

fn arb_flags() -> impl Strategy<Value = NodeFlags> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(replica, pfail, fail, handshake, noaddr)| NodeFlags {
            myself: false,
            master: !replica,
            replica,
            pfail,
            fail,
            handshake,
            noaddr,
            nofailover: false,
        })
}

fn arb_entry(n: u32) -> impl Strategy<Value = ClusterNode> {
    (
        0..n,
        proptest::option::of(0..n),
        arb_flags(),
        0u64..5,
        proptest::collection::vec((0u16..16384, 0u16..200), 0..3),
        proptest::collection::vec((0u16..16384, 0..n, any::<bool>()), 0..2),
    )
        .prop_map(|(who, master, flags, epoch, ranges, open)| ClusterNode {
            id: fixture::id(who),
            addr: (!flags.noaddr).then(|| fixture::addr(who)),
            hostname: None,
            flags,
            master_id: master.map(fixture::id),
            ping_sent_ms: 0,
            pong_recv_ms: 10,
            config_epoch: epoch,
            link: LinkState::Connected,
            slots: ranges
                .into_iter()
                .map(|(s, l)| SlotRange::new(s, s.saturating_add(l).min(16383)))
                .collect(),
            open_slots: open
                .into_iter()
                .map(|(slot, peer, mig)| {
                    if mig {
                        OpenSlot::Migrating {
                            slot,
                            target: fixture::id(peer),
                        }
                    } else {
                        OpenSlot::Importing {
                            slot,
                            source: fixture::id(peer),
                        }
                    }
                })
                .collect(),
        })
}

/// Random, often contradictory, worlds of up to 8 members.
fn arb_observation() -> impl Strategy<Value = Observation> {
    (1u32..8).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                any::<bool>(),
                any::<bool>(),
                arb_entry(n),
                proptest::collection::vec(arb_entry(n), 0..6),
                any::<bool>(),
                0u64..3,
                0usize..3,
            ),
            n as usize,
        )
        .prop_map(move |members| {
            let mut out = BTreeMap::new();
            for (ord, (running, answers, mut me, others, ok, keys, fingerprint)) in
                members.into_iter().enumerate()
            {
                let ord = ord as u32;
                me.id = fixture::id(ord);
                me.flags.myself = true;
                let mut nodes = vec![me];
                nodes.extend(others.into_iter().filter(|o| o.id != fixture::id(ord)));
                let open_slot_keys = nodes[0]
                    .open_slots
                    .iter()
                    .map(|o| (o.slot(), keys))
                    .collect();
                out.insert(
                    ord,
                    Member {
                        ordinal: ord,
                        addr: Some(fixture::addr(ord)),
                        running,
                        host: None,
                        fingerprint: fingerprint_of(fingerprint),
                        redis: answers.then(|| NodeState {
                            id: fixture::id(ord),
                            nodes: nodes.into(),
                            cluster_ok: ok,
                            current_epoch: 1,
                            repl_offset: keys,
                            master_link_up: ok,
                            keys,
                            open_slot_keys,
                            ever_linked: true,
                            serves_replicas: true,
                            replicates_from: None,
                            hands_over_source_first: false,
                            replid: None,
                            config: Default::default(),
                        }),
                    },
                );
            }
            Observation {
                now_ms: 100_000,
                members: out,
                ..Observation::default()
            }
        })
    })
}

/// Random worlds where the views mostly list the same table, each in its own order, with
/// per-viewer differences (suspicions, links, pong times, open slots on the own line) and now
/// and then a shared field of its own (an epoch): the shapes views are shared in.
fn arb_alike_observation() -> impl Strategy<Value = Observation> {
    (1u32..7, 0u32..3).prop_flat_map(|(n, ghosts)| {
        let table = proptest::collection::vec(arb_entry(n + ghosts), (n + ghosts) as usize);
        let viewers = proptest::collection::vec(
            (
                any::<bool>(),
                0usize..8,
                proptest::collection::vec((0u8..6, 0u64..3), (n + ghosts) as usize),
                proptest::option::of(0usize..8),
                0u64..3,
            ),
            n as usize,
        );
        (table, viewers).prop_map(move |(table, viewers)| {
            let table: Vec<ClusterNode> = table
                .into_iter()
                .enumerate()
                .map(|(i, mut e)| {
                    e.id = fixture::id(i as u32);
                    e.addr = e.addr.map(|_| fixture::addr(i as u32));
                    e
                })
                .collect();
            let mut members = BTreeMap::new();
            for (ord, (answers, shift, tweaks, newer, keys)) in viewers.into_iter().enumerate() {
                let mut list: Vec<ClusterNode> = table
                    .iter()
                    .zip(&tweaks)
                    .enumerate()
                    .map(|(i, (e, &(tweak, pong)))| {
                        let mut e = e.clone();
                        e.flags.myself = i == ord;
                        if i != ord {
                            e.open_slots.clear();
                        }
                        e.flags.pfail = tweak == 1;
                        e.flags.fail = tweak == 2;
                        if tweak == 3 {
                            e.link = LinkState::Disconnected;
                        }
                        e.pong_recv_ms = 10 + pong;
                        e
                    })
                    .collect();
                if let Some(e) = newer.and_then(|i| list.get_mut(i)) {
                    e.config_epoch += 1;
                }
                let len = list.len();
                list.rotate_left(shift % len);
                members.insert(
                    ord as u32,
                    Member {
                        ordinal: ord as u32,
                        addr: Some(fixture::addr(ord as u32)),
                        running: true,
                        host: None,
                        fingerprint: None,
                        redis: answers.then(|| NodeState {
                            id: fixture::id(ord as u32),
                            nodes: list.into(),
                            cluster_ok: true,
                            current_epoch: 1,
                            repl_offset: keys,
                            master_link_up: keys > 0,
                            keys,
                            open_slot_keys: BTreeMap::new(),
                            ever_linked: true,
                            serves_replicas: true,
                            replicates_from: None,
                            hands_over_source_first: false,
                            replid: None,
                            config: Default::default(),
                        }),
                    },
                );
            }
            Observation {
                now_ms: 100_000,
                members,
                ..Observation::default()
            }
        })
    })
}

/// `obs` with its views on shared bases: equal to it, serialized alike.
fn shared(obs: &Observation) -> Observation {
    let mut out = obs.clone();
    out.share_views();
    out
}

/// No fingerprint, or one of two configurations.
fn fingerprint_of(pick: usize) -> Option<String> {
    [None, Some("a"), Some("b")]
        .get(pick)
        .copied()
        .flatten()
        .map(str::to_string)
}

fn arb_desired() -> impl Strategy<Value = Desired> {
    (
        3u32..6,
        0u32..3,
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(m, r, deleting, invalid, fingerprint, persistent)| {
            let mut d = Desired::new(m, r);
            d.fingerprint = fingerprint_of(fingerprint);
            d.persistent = persistent;
            d.deleting = deleting && !invalid;
            if invalid {
                d.problems.push("spec.masters: bad".into());
            }
            d
        })
}

fn arb_phase() -> impl Strategy<Value = Phase> {
    proptest::sample::select(Phase::ALL.to_vec())
}

/// Per observation: which nodes hold slots or keys (as masters).
fn holders(obs: &Observation) -> BTreeSet<u32> {
    obs.members
        .iter()
        .filter_map(|(o, m)| {
            let s = m.redis.as_ref()?;
            let me = s.myself()?;
            (me.master_id.is_none() && (!me.slots.is_empty() || s.keys > 0)).then_some(*o)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decide_never_panics_and_is_deterministic(
        d in arb_desired(), phase in arb_phase(), obs in arb_observation()
    ) {
        let a = decide(&d, phase, &obs);
        let b = decide(&d, phase, &obs);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn sharing_the_views_changes_neither_the_observation_nor_the_decision(
        d in arb_desired(), phase in arb_phase(), obs in arb_alike_observation()
    ) {
        let alike = shared(&obs);
        prop_assert_eq!(&alike, &obs);
        prop_assert_eq!(
            serde_json::to_string(&alike).unwrap(),
            serde_json::to_string(&obs).unwrap()
        );
        prop_assert_eq!(decide(&d, phase, &alike), decide(&d, phase, &obs));
    }

    #[test]
    fn sharing_contradictory_views_changes_no_decision_either(
        d in arb_desired(), phase in arb_phase(), obs in arb_observation()
    ) {
        let alike = shared(&obs);
        prop_assert_eq!(&alike, &obs);
        prop_assert_eq!(decide(&d, phase, &alike), decide(&d, phase, &obs));
    }

    #[test]
    fn an_invalid_spec_never_yields_an_effect(
        d in arb_desired(), phase in arb_phase(), obs in arb_observation()
    ) {
        let decision = decide(&d, phase, &obs);
        if !d.problems.is_empty() {
            prop_assert!(decision.effects.is_empty());
            prop_assert_eq!(decision.phase, phase);
        }
    }

    #[test]
    fn a_node_holding_slots_or_keys_is_never_deleted_or_forgotten_unless_the_cluster_is_deleted(
        d in arb_desired(), phase in arb_phase(), obs in arb_observation()
    ) {
        prop_assume!(!d.deleting);
        let decision = decide(&d, phase, &obs);
        let holding = holders(&obs);
        for e in &decision.effects {
            match e {
                Effect::DeleteNode { ordinal } | Effect::DeleteData { ordinal } => {
                    prop_assert!(!holding.contains(ordinal), "{}", e)
                }
                Effect::Forget { node_id, .. } => {
                    let owner = obs.members.iter().find(|(_, m)| {
                        m.redis.as_ref().is_some_and(|s| &s.id == node_id)
                    });
                    if let Some((o, _)) = owner { prop_assert!(!holding.contains(o), "{}", e) }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn at_most_one_member_is_replaced_at_a_time_and_never_a_master_holding_data_without_persistence(
        d in arb_desired(), phase in arb_phase(), obs in arb_observation()
    ) {
        let decision = decide(&d, phase, &obs);
        let replaced: Vec<u32> = decision.effects.iter().filter_map(|e| match e {
            Effect::ReplaceNode { ordinal } => Some(*ordinal),
            _ => None,
        }).collect();
        prop_assert!(replaced.len() <= 1, "{:?}", decision.effects);
        if !d.persistent {
            let holding = holders(&obs);
            for o in &replaced {
                prop_assert!(!holding.contains(o), "{:?}", decision.effects);
            }
        }
    }

    #[test]
    fn no_bootstrap_ever_touches_a_node_that_knows_others_or_owns_slots(
        d in arb_desired(), phase in arb_phase(), obs in arb_observation()
    ) {
        let decision = decide(&d, phase, &obs);
        let claimed: BTreeSet<u16> = obs.members.values()
            .filter_map(|m| m.redis.as_ref())
            .flat_map(|s| s.nodes.iter().flat_map(|n| slots::expand(&n.slots).collect::<Vec<_>>()))
            .collect();
        for e in &decision.effects {
            if let Effect::AddSlots { slots, .. } = e {
                for s in slots::expand(slots) {
                    prop_assert!(!claimed.contains(&s), "slot {} is claimed but was added again", s);
                }
            }
        }
    }
}
