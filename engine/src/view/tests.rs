use super::*;
use crate::model::{Addr, LinkState, NodeFlags, OpenSlot};
use crate::slots::SlotRange;

fn id(n: u32) -> String {
    format!("{n:040x}")
}

/// Node `n`'s line as any viewer sees it: a master with a slot range of its own.
fn entry(n: u32) -> ClusterNode {
    ClusterNode {
        id: id(n),
        addr: Some(Addr::new("10.0.0.1", 7000 + n as u16)),
        hostname: None,
        flags: NodeFlags {
            master: true,
            ..NodeFlags::default()
        },
        master_id: None,
        ping_sent_ms: 0,
        pong_recv_ms: 500,
        config_epoch: u64::from(n) + 1,
        link: LinkState::Connected,
        slots: vec![SlotRange::new(n as u16 * 10, n as u16 * 10 + 9)],
        open_slots: Vec::new(),
    }
}

/// Node `me`'s view of nodes `0..n`, in id order, its own line flagged `myself`.
fn view_of(me: u32, n: u32) -> Vec<ClusterNode> {
    (0..n)
        .map(|o| {
            let mut e = entry(o);
            e.flags.myself = o == me;
            e
        })
        .collect()
}

#[test]
fn a_view_reads_as_the_list_it_was_built_from() {
    let mut list = view_of(1, 4);
    list[1].open_slots.push(OpenSlot::Migrating {
        slot: 12,
        target: id(2),
    });
    let view = View::new(list.clone());
    assert_eq!(view.len(), 4);
    assert_eq!(view.to_vec(), list);
    assert!(view.iter().eq(list.iter()));
    assert_eq!(view.iter().len(), 4);
    for (i, e) in list.iter().enumerate() {
        assert_eq!(&view[i], e);
    }
    assert_eq!(view.get(4), None);
    assert_eq!(view.myself(), Some(&list[1]));
    assert_eq!(view.view_of(&id(3)), Some(&list[3]));
    assert_eq!(view, View::from(list));
}

#[test]
fn the_base_never_holds_the_own_line_flags_nor_open_slots() {
    let mut list = view_of(2, 3);
    list[2].open_slots.push(OpenSlot::Importing {
        slot: 3,
        source: id(0),
    });
    let view = View::new(list);
    assert!(
        view.base_entries()
            .iter()
            .all(|e| !e.flags.myself && e.open_slots.is_empty())
    );
    assert_eq!(view.differences().count(), 1, "the own line only");
}

#[test]
fn views_listing_the_same_nodes_alike_share_one_base_and_keep_only_their_own_line() {
    let mut interner = ViewInterner::default();
    let views: Vec<View> = (0..5).map(|me| interner.view(view_of(me, 5))).collect();
    for (me, v) in views.iter().enumerate() {
        assert!(v.shares_base_with(&views[0]), "view of {me}");
        assert_eq!(v.differences().count(), 1, "view of {me}");
        assert_eq!(v.myself().map(|e| e.id.clone()), Some(id(me as u32)));
        assert_eq!(
            v.to_vec(),
            view_of(me as u32, 5),
            "view of {me} reads as built"
        );
    }
}

#[test]
fn a_base_keeps_what_its_first_viewer_measured_on_its_own_line() {
    // Redis prints no pong time on a node's own line: the other viewers differ from the base
    // there too, one more entry each, still a handful per view.
    let silent_self = |me: u32| {
        let mut list = view_of(me, 4);
        list[me as usize].pong_recv_ms = 0;
        list
    };
    let mut interner = ViewInterner::default();
    let first = interner.view(silent_self(0));
    assert_eq!(first.differences().count(), 1);
    for me in 1..4 {
        let v = interner.view(silent_self(me));
        assert!(v.shares_base_with(&first));
        assert_eq!(v.differences().count(), 2, "view of {me}");
        assert_eq!(v.to_vec(), silent_self(me));
    }
}

#[test]
fn a_viewer_that_suspects_a_node_keeps_only_that_entry_and_its_own_line_apart() {
    let mut interner = ViewInterner::default();
    let first = interner.view(view_of(0, 4));
    let mut list = view_of(1, 4);
    list[3].flags.pfail = true;
    list[3].link = LinkState::Disconnected;
    list[2].pong_recv_ms = 900;
    let second = interner.view(list.clone());
    assert!(second.shares_base_with(&first));
    assert_eq!(second.differences().count(), 3);
    assert_eq!(second.to_vec(), list);
}

#[test]
fn a_view_in_another_order_shares_the_base_and_keeps_its_own_order() {
    let mut interner = ViewInterner::default();
    let first = interner.view(view_of(0, 6));
    // The simulator's order: its own line first, then the others in id order.
    let mut own_first = view_of(3, 6);
    let me = own_first.remove(3);
    own_first.insert(0, me);
    // Redis' order: whatever its hash table holds.
    let shuffled: Vec<ClusterNode> = [4, 1, 5, 0, 2, 3]
        .iter()
        .map(|&i| view_of(2, 6)[i].clone())
        .collect();
    for list in [own_first, shuffled] {
        let v = interner.view(list.clone());
        assert!(v.shares_base_with(&first));
        assert_eq!(v.to_vec(), list);
        assert!(v.iter().eq(list.iter()));
        for (i, e) in list.iter().enumerate() {
            assert_eq!(&v[i], e, "entry {i}");
        }
        assert_eq!(v, View::new(list));
    }
}

#[test]
fn a_view_that_differs_in_a_shared_field_gets_a_base_of_its_own() {
    let mut interner = ViewInterner::default();
    let first = interner.view(view_of(0, 3));
    let mut newer = view_of(1, 3);
    newer[2].config_epoch = 9;
    let second = interner.view(newer.clone());
    assert!(!second.shares_base_with(&first));
    assert_eq!(second.to_vec(), newer);
    let fewer = interner.view(view_of(0, 2));
    assert!(!fewer.shares_base_with(&first));
    // A third view like the second shares the second's base.
    let mut like_second = view_of(2, 3);
    like_second[2].config_epoch = 9;
    assert!(interner.view(like_second).shares_base_with(&second));
}

#[test]
fn a_view_listing_an_id_twice_is_never_shared_and_keeps_its_order() {
    let mut interner = ViewInterner::default();
    let mut twice = view_of(0, 3);
    twice.push(entry(1));
    let first = interner.view(twice.clone());
    let second = interner.view(twice.clone());
    assert!(!second.shares_base_with(&first));
    assert_eq!(second.to_vec(), twice);
}

#[test]
fn sharing_a_view_again_reuses_a_held_base_and_moves_a_lone_one_onto_a_known_base() {
    let mut interner = ViewInterner::default();
    let first = interner.view(view_of(0, 4));
    let again = interner.share(first.clone());
    assert!(again.shares_base_with(&first));
    let lone = View::new(view_of(2, 4));
    assert!(!lone.shares_base_with(&first));
    let moved = interner.share(lone.clone());
    assert!(moved.shares_base_with(&first));
    assert_eq!(moved, lone);
}

#[test]
fn a_shared_view_serializes_as_the_plain_list_myself_flag_included() {
    let mut interner = ViewInterner::default();
    let _first = interner.view(view_of(0, 3));
    let mut own_first = view_of(2, 3);
    own_first.rotate_right(1);
    own_first[1].flags.fail = true;
    let view = interner.view(own_first.clone());
    let json = serde_json::to_string(&view).expect("serializes");
    assert_eq!(json, serde_json::to_string(&own_first).expect("serializes"));
    assert!(json.contains("\"myself\":true"));
    let back: View = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, view);
    assert_eq!(back.to_vec(), own_first);
}

#[test]
fn editing_a_view_as_a_list_rebuilds_it_with_the_edit() {
    let mut interner = ViewInterner::default();
    let first = interner.view(view_of(0, 3));
    let mut second = interner.view(view_of(1, 3));
    second.entries_mut().retain(|e| e.id != id(2));
    assert_eq!(second.to_vec(), view_of(1, 2));
    assert!(!second.shares_base_with(&first));
    for e in second.entries_mut().iter_mut() {
        e.config_epoch = 7;
    }
    assert!(second.iter().all(|e| e.config_epoch == 7));
    assert_eq!(
        first.to_vec(),
        view_of(0, 3),
        "the shared base is untouched"
    );
}

#[test]
fn a_view_with_several_myself_lines_names_the_first_in_its_order() {
    let mut list = view_of(2, 4);
    list[3].flags.myself = true;
    list.swap(2, 3);
    let view = View::new(list.clone());
    assert_eq!(view.myself(), Some(&list[2]));
    assert_eq!(view.myself().map(|e| e.id.clone()), Some(id(3)));
}
