//! The adapter against real redis-server processes. Each test owns its ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::Effect;
use redis_operator_redis::{AdapterError, MemberInfo, ServerKind};

#[test]
fn the_test_slot_hash_matches_redis() {
    // CLUSTER KEYSLOT foo is 12182 on every Redis.
    assert_eq!(crc16(b"foo") % 16384, 12182);
    let tag = tag_for_slot(12182);
    assert_eq!(crc16(tag.as_bytes()) % 16384, 12182);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meet_add_slots_and_replicate_build_a_three_master_cluster_that_observe_reports() {
    let c = Cluster::start(&[12000, 12001, 12002, 12003], 3, None).await;
    // The replica's link comes up asynchronously.
    eventually(200, "replica link up", || async {
        c.observe().await.members[&3]
            .redis
            .as_ref()
            .is_some_and(|s| s.master_link_up)
    })
    .await;
    let obs = c.observe().await;
    assert_eq!(obs.members.len(), 4);
    for (i, m) in obs.members.values().enumerate() {
        let s = m.redis.as_ref().expect("every node answers");
        assert_eq!(s.id, c.ids[i]);
        assert!(s.cluster_ok);
        assert_eq!(s.nodes.len(), 4);
    }
    let split = engine::slots::even_split(3);
    for (i, range) in split.iter().enumerate() {
        let me = obs.members[&(i as u32)]
            .redis
            .as_ref()
            .unwrap()
            .myself()
            .unwrap()
            .clone();
        assert!(me.flags.master);
        assert_eq!(me.slots, vec![*range]);
    }
    let replica = obs.members[&3].redis.as_ref().unwrap();
    let me = replica.myself().unwrap();
    assert!(me.flags.replica);
    assert_eq!(me.master_id.as_deref(), Some(c.ids[0].as_str()));
    assert!(replica.current_epoch >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_the_same_migration_twice_changes_nothing_the_second_time() {
    let c = Cluster::start(&[12020, 12021, 12022], 3, None).await;
    let keys = keys_in_slot(5, 500);
    fill(&mut c.client(0, None).await, &keys).await;
    let ctx = c.ctx().await;
    let mv = Effect::MigrateSlots {
        from: 0,
        from_id: c.ids[0].clone(),
        to: 2,
        to_id: c.ids[2].clone(),
        slots: ranges(&[5, 6]),
    };
    c.adapter.execute(&mv, &ctx).await.expect("first run");
    let before = c.observe().await;
    c.adapter
        .execute(&mv, &ctx)
        .await
        .expect("second run is a no-op");
    let after = c.observe().await;
    for (b, a) in before.members.values().zip(after.members.values()) {
        let (b, a) = (b.redis.as_ref().unwrap(), a.redis.as_ref().unwrap());
        assert_eq!(b.keys, a.keys);
        assert_eq!(b.myself().unwrap().slots, a.myself().unwrap().slots);
    }
    assert_eq!(after.members[&2].redis.as_ref().unwrap().keys, 500);
    assert_eq!(c.adapter.progress().keys_moved(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_is_finished_by_migrate_slots() {
    let c = Cluster::start(&[12030, 12031, 12032], 3, None).await;
    let slot = 7;
    let keys = keys_in_slot(slot, 1000);
    let mut src = c.client(0, None).await;
    fill(&mut src, &keys).await;
    let mut dst = c.client(1, None).await;
    // What a crashed operator leaves behind: both markers set, half the keys moved.
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&c.ids[0])
        .query_async(&mut dst)
        .await
        .unwrap();
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&c.ids[1])
        .query_async(&mut src)
        .await
        .unwrap();
    let _: String = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(12031)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys[..500])
        .query_async(&mut src)
        .await
        .unwrap();
    let obs = c.observe().await;
    assert_eq!(
        obs.members[&0]
            .redis
            .as_ref()
            .unwrap()
            .open_slot_keys
            .get(&slot),
        Some(&500)
    );
    assert_eq!(
        obs.members[&1]
            .redis
            .as_ref()
            .unwrap()
            .open_slot_keys
            .get(&slot),
        Some(&500)
    );

    let mv = Effect::MigrateSlots {
        from: 0,
        from_id: c.ids[0].clone(),
        to: 1,
        to_id: c.ids[1].clone(),
        slots: ranges(&[slot]),
    };
    c.adapter
        .execute(&mv, &c.ctx().await)
        .await
        .expect("finishes");
    for k in &keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut dst)
            .await
            .unwrap();
        assert_eq!(v, Some(format!("v-{k}")));
    }
    assert!(
        c.owners_of(slot)
            .await
            .iter()
            .all(|o| o.as_deref() == Some(c.ids[1].as_str()))
    );
}

/// Puts `key = value` on node `i` for a slot it is importing (ASKING lets it accept).
async fn set_while_importing(
    c: &Cluster,
    i: usize,
    slot: u16,
    source: usize,
    key: &str,
    value: &str,
) {
    let mut conn = c.client(i, None).await;
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&c.ids[source])
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    pipe.cmd("ASKING")
        .ignore()
        .cmd("SET")
        .arg(key)
        .arg(value)
        .ignore();
    let () = pipe.query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_with_the_same_value_on_both_sides_is_replaced_and_the_slot_moves() {
    let c = Cluster::start(&[12040, 12041, 12042], 3, None).await;
    let slot = 3;
    let keys = keys_in_slot(slot, 200);
    fill(&mut c.client(0, None).await, &keys).await;
    set_while_importing(&c, 1, slot, 0, &keys[17], &format!("v-{}", keys[17])).await;

    let mv = Effect::MigrateSlots {
        from: 0,
        from_id: c.ids[0].clone(),
        to: 1,
        to_id: c.ids[1].clone(),
        slots: ranges(&[slot]),
    };
    c.adapter
        .execute(&mv, &c.ctx().await)
        .await
        .expect("identical values are not a conflict");
    let mut dst = c.client(1, None).await;
    for k in &keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut dst)
            .await
            .unwrap();
        assert_eq!(v, Some(format!("v-{k}")));
    }
    assert!(
        c.owners_of(slot)
            .await
            .iter()
            .all(|o| o.as_deref() == Some(c.ids[1].as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_with_different_values_stops_the_migration_and_keeps_both_values() {
    let c = Cluster::start(&[12050, 12051, 12052], 3, None).await;
    let slot = 4;
    let keys = keys_in_slot(slot, 200);
    fill(&mut c.client(0, None).await, &keys).await;
    set_while_importing(&c, 1, slot, 0, &keys[42], "the target's own value").await;

    let mv = Effect::MigrateSlots {
        from: 0,
        from_id: c.ids[0].clone(),
        to: 1,
        to_id: c.ids[1].clone(),
        slots: ranges(&[slot]),
    };
    let err = c
        .adapter
        .execute(&mv, &c.ctx().await)
        .await
        .expect_err("conflict");
    assert_eq!(
        err,
        AdapterError::BusyKey {
            slot,
            key: keys[42].clone()
        }
    );

    let mut src = c.client(0, None).await;
    let v: Option<String> = redis::cmd("GET")
        .arg(&keys[42])
        .query_async(&mut src)
        .await
        .unwrap();
    assert_eq!(
        v,
        Some(format!("v-{}", keys[42])),
        "the source keeps its value"
    );
    let mut dst = c.client(1, None).await;
    let mut pipe = redis::pipe();
    pipe.cmd("ASKING").ignore().cmd("GET").arg(&keys[42]);
    let (v,): (Option<String>,) = pipe.query_async(&mut dst).await.unwrap();
    assert_eq!(
        v.as_deref(),
        Some("the target's own value"),
        "the target keeps its value"
    );
    // The slot stays open on both sides so the next observation shows the problem.
    let obs = c.observe().await;
    assert!(
        obs.members[&0]
            .redis
            .as_ref()
            .unwrap()
            .open_slot_keys
            .contains_key(&slot)
    );
    assert!(
        obs.members[&1]
            .redis
            .as_ref()
            .unwrap()
            .open_slot_keys
            .contains_key(&slot)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_stray_keys_sends_keys_left_on_an_importing_node_to_the_owner_and_closes_the_slot() {
    let c = Cluster::start(&[12060, 12061, 12062], 3, None).await;
    let slot = 9;
    let keys = keys_in_slot(slot, 300);
    fill(&mut c.client(0, None).await, &keys[..100]).await;
    // #1 was importing the slot from #0 and received keys, then the move was abandoned.
    for k in &keys[100..] {
        set_while_importing(&c, 1, slot, 0, k, &format!("v-{k}")).await;
    }
    let effect = Effect::MoveStrayKeys {
        from: 1,
        to: 0,
        to_id: c.ids[0].clone(),
        slot,
    };
    c.adapter
        .execute(&effect, &c.ctx().await)
        .await
        .expect("strays move");
    let mut owner = c.client(0, None).await;
    for k in &keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut owner)
            .await
            .unwrap();
        assert_eq!(v, Some(format!("v-{k}")));
    }
    let obs = c.observe().await;
    let stray = obs.members[&1].redis.as_ref().unwrap();
    assert!(stray.myself().unwrap().open_slots.is_empty());
    assert_eq!(stray.keys, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_an_unknown_node_counts_as_done_and_create_node_is_refused() {
    let node = Node::spawn(12070, None);
    let adapter = test_adapter(None);
    let a = node.addr();
    eventually(100, "node up", || {
        let (adapter, a) = (adapter.clone(), a.clone());
        async move { adapter.observe_node(&a).await.is_ok() }
    })
    .await;
    let ctx = redis_operator_redis::ExecContext::from_observation(
        &adapter
            .observe(vec![MemberInfo::new(0, Some(a), true)], 0)
            .await,
    );
    let forget = Effect::Forget {
        on: 0,
        node_id: "0123456789abcdef0123456789abcdef01234567".into(),
    };
    adapter
        .execute(&forget, &ctx)
        .await
        .expect("unknown node is already forgotten");
    let create = Effect::CreateNode { ordinal: 0 };
    assert_eq!(
        adapter.execute(&create, &ctx).await,
        Err(AdapterError::NotARedisEffect("create_node"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observing_a_port_nobody_listens_on_gives_no_redis_state() {
    let adapter = test_adapter(None);
    let members = vec![
        MemberInfo::new(0, Some(engine::Addr::new("127.0.0.1", 12499)), true),
        MemberInfo::new(1, Some(engine::Addr::new("127.0.0.1", 12498)), false),
        MemberInfo::new(2, None, false),
    ];
    let obs = adapter.observe(members, 42).await;
    assert_eq!(obs.now_ms, 42);
    assert_eq!(obs.members.len(), 3);
    assert!(obs.members.values().all(|m| m.redis.is_none()));
    assert!(obs.members[&0].running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_protected_nodes_are_built_observed_and_migrated() {
    let pw = Some(PASSWORD);
    let c = Cluster::start(&[12090, 12091, 12092, 12093], 3, pw).await;
    let keys = keys_in_slot(11, 400);
    fill(&mut c.client(0, pw).await, &keys).await;
    let mv = Effect::MigrateSlots {
        from: 0,
        from_id: c.ids[0].clone(),
        to: 2,
        to_id: c.ids[2].clone(),
        slots: ranges(&[11]),
    };
    c.adapter
        .execute(&mv, &c.ctx().await)
        .await
        .expect("MIGRATE carries AUTH");
    let mut dst = c.client(2, pw).await;
    for k in &keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut dst)
            .await
            .unwrap();
        assert_eq!(v, Some(format!("v-{k}")));
    }
    eventually(200, "replica link up with masterauth", || async {
        c.observe().await.members[&3]
            .redis
            .as_ref()
            .is_some_and(|s| s.master_link_up)
    })
    .await;
    // Without the password nothing is observed, and no panic either.
    let anon = test_adapter(None);
    let obs = anon.observe(members(&c.nodes), 0).await;
    assert!(obs.members.values().all(|m| m.redis.is_none()));
}

fn own_epoch(obs: &engine::Observation, ord: u32) -> u64 {
    obs.members[&ord]
        .redis
        .as_ref()
        .and_then(|s| s.myself())
        .map_or(0, |me| me.config_epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_epoch_gives_the_master_the_highest_epoch_and_is_idempotent() {
    let c = Cluster::start(&[12100, 12101, 12102], 3, None).await;
    // Fresh masters start on colliding epochs, which Redis settles over a few pings: bumping
    // before that is done can be overtaken by the settling itself. BUMPEPOCH also counts from
    // the node's own `cluster_current_epoch`, which lags until gossip brings the highest
    // epoch: a bump from a lagging node can land on an epoch another master already has.
    eventually(
        200,
        "every master on its own epoch, and every node knowing the highest",
        || async {
            let obs = c.observe().await;
            let epochs: std::collections::BTreeSet<u64> =
                (0..3u32).map(|o| own_epoch(&obs, o)).collect();
            let highest = epochs.last().copied().unwrap_or(0);
            epochs.len() == 3
                && obs
                    .members
                    .values()
                    .all(|m| m.redis.as_ref().is_some_and(|s| s.current_epoch == highest))
        },
    )
    .await;
    let obs = c.observe().await;
    let lowest = (0..3u32).min_by_key(|o| own_epoch(&obs, *o)).unwrap();
    let ctx = c.ctx().await;
    let bump = Effect::BumpEpoch { on: lowest };
    c.adapter.execute(&bump, &ctx).await.expect("bumped");
    let after = c.observe().await;
    let mine = own_epoch(&after, lowest);
    for o in (0..3u32).filter(|o| *o != lowest) {
        assert!(
            mine > own_epoch(&after, o),
            "#{lowest} epoch {mine} not the highest"
        );
    }
    // Already the unique highest: Redis answers STILL and nothing changes.
    c.adapter.execute(&bump, &ctx).await.expect("still");
    assert_eq!(own_epoch(&c.observe().await, lowest), mine);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_failover_swaps_a_master_and_its_replica() {
    let c = Cluster::start(&[12110, 12111, 12112, 12113], 3, None).await;
    eventually(200, "replica in sync", || async {
        c.observe().await.members[&3]
            .redis
            .as_ref()
            .is_some_and(|s| s.master_link_up)
    })
    .await;
    let failover = Effect::Failover {
        on: 3,
        mode: engine::FailoverMode::Default,
    };
    c.adapter
        .execute(&failover, &c.ctx().await)
        .await
        .expect("failover accepted");
    let range = engine::slots::even_split(3)[0];
    eventually(200, "replica promoted with the slots", || async {
        let obs = c.observe().await;
        let me = |o: u32| {
            obs.members[&o]
                .redis
                .as_ref()
                .and_then(|s| s.myself().cloned())
        };
        me(3).is_some_and(|m| m.flags.master && m.slots == vec![range])
            && me(0).is_some_and(|m| m.master_id.as_deref() == Some(c.ids[3].as_str()))
    })
    .await;
    // Sent again to the node that is now a master: already done, not an error.
    c.adapter
        .execute(&failover, &c.ctx().await)
        .await
        .expect("a repeated failover counts as done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_reset_makes_an_empty_node_forget_its_cluster_and_take_a_new_id() {
    let nodes = vec![Node::spawn(12120, None), Node::spawn(12121, None)];
    let adapter = test_adapter(None);
    eventually(100, "nodes up", || async {
        adapter
            .observe(members(&nodes), 0)
            .await
            .members
            .values()
            .all(|m| m.redis.is_some())
    })
    .await;
    let ctx = redis_operator_redis::ExecContext::from_observation(
        &adapter.observe(members(&nodes), 0).await,
    );
    let meet = Effect::Meet {
        on: 0,
        ip: "127.0.0.1".into(),
        port: 12121,
    };
    adapter.execute(&meet, &ctx).await.expect("meet");
    eventually(200, "node 0 knows node 1", || async {
        adapter.observe(members(&nodes), 0).await.members[&0]
            .redis
            .as_ref()
            .is_some_and(|s| s.nodes.len() == 2 && s.nodes.iter().all(|n| !n.flags.handshake))
    })
    .await;
    let before = adapter.observe(members(&nodes), 0).await.members[&0]
        .redis
        .clone()
        .unwrap();
    adapter
        .execute(&Effect::ResetNode { on: 0, hard: true }, &ctx)
        .await
        .expect("reset");
    let after = adapter.observe(members(&nodes), 0).await.members[&0]
        .redis
        .clone()
        .unwrap();
    assert_ne!(after.id, before.id, "a hard reset takes a new node id");
    assert_eq!(after.nodes.len(), 1, "and forgets every other node");
}

/// Redis shows `master_link_down_since_seconds:-1` for a replica whose link has not been up
/// since it last was a master or started, and `observe` reports that as `ever_linked: false`:
/// such a replica holds only what it had as a master. A replica moved to another master keeps
/// `ever_linked: true` (Redis counts from the old link's loss): the engine cannot tell its old
/// master's data from its new one's by this signal, see `World::takeover_candidates`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reports_whether_its_link_was_up_since_it_last_was_a_master() {
    let mut c = Cluster::start(&[12190, 12191, 12192], 3, None).await;
    // A fourth node, started empty: a master without slots until it replicates.
    c.nodes.push(Node::spawn(12193, None));
    let fresh = c.nodes[3].addr();
    eventually(100, "redis-server answers", || async {
        c.adapter.observe_node(&fresh).await.is_ok()
    })
    .await;
    let meet = Effect::Meet {
        on: 0,
        ip: fresh.ip.clone(),
        port: fresh.port,
    };
    c.adapter
        .execute(&meet, &c.ctx().await)
        .await
        .expect("meet");
    eventually(200, "the new node knows every node", || async {
        c.adapter
            .observe_node(&fresh)
            .await
            .is_ok_and(|s| s.nodes.len() == 4 && s.nodes.iter().all(|n| !n.flags.handshake))
    })
    .await;
    // Pointed at a master that answers nothing, it cannot link.
    let replicate_to = |master: usize| Effect::Replicate {
        on: 3,
        master_id: c.ids[master].clone(),
    };
    let ctx = c.ctx().await;
    c.nodes[1].freeze();
    let accepted = c.adapter.execute(&replicate_to(1), &ctx).await;
    let seen = c.adapter.observe_node(&fresh).await;
    c.nodes[1].thaw();
    accepted.expect("replicate accepted");
    let s = seen.expect("observed");
    assert_eq!(
        s.myself().and_then(|me| me.master_id.clone()).as_deref(),
        Some(c.ids[1].as_str())
    );
    assert!(!s.ever_linked, "never linked since it started");
    let own_stream = s.replid.clone();
    eventually(200, "linked once #1 answers", || async {
        c.adapter
            .observe_node(&fresh)
            .await
            .is_ok_and(|s| s.master_link_up && s.ever_linked)
    })
    .await;
    // Linked, it follows #1's replication stream: same replication id, not its own any more.
    let master_stream = c
        .adapter
        .observe_node(&c.nodes[1].addr())
        .await
        .unwrap()
        .replid;
    let replica_stream = c.adapter.observe_node(&fresh).await.unwrap().replid;
    assert!(master_stream.is_some());
    assert_eq!(replica_stream, master_stream);
    assert_ne!(own_stream, master_stream);
    // Moved to another master that answers nothing: the earlier link still counts.
    let ctx = c.ctx().await;
    c.nodes[2].freeze();
    let accepted = c.adapter.execute(&replicate_to(2), &ctx).await;
    let seen = c.adapter.observe_node(&fresh).await;
    c.nodes[2].thaw();
    accepted.expect("replicate accepted");
    let s = seen.expect("observed");
    assert!(!s.master_link_up);
    assert!(s.ever_linked, "Redis counts the link to #1");
}

/// `server_info` names the software and version the binary itself reports, and finds atomic
/// slot migration exactly where it exists (Valkey 9 and later): neither Redis 7.0 nor
/// Valkey 8.1, the servers CI runs, offers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_says_which_server_and_version_it_runs_whether_it_migrates_slots_atomically_and_hands_over_source_first()
 {
    let node = Node::spawn(12200, None);
    let adapter = test_adapter(None);
    let addr = node.addr();
    eventually(100, "the server answers", || async {
        adapter.observe_node(&addr).await.is_ok()
    })
    .await;
    let out = std::process::Command::new(server_binary())
        .arg("--version")
        .output()
        .expect("the server prints its version");
    // "Redis server v=7.0.15 sha=…" or "Valkey server v=8.1.8 sha=…"
    let banner = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .expect("a version in the banner");
    let info = adapter.server_info(&addr).await.expect("INFO server");
    let kind = if banner.starts_with("Valkey") {
        ServerKind::Valkey
    } else {
        ServerKind::Redis
    };
    assert_eq!(
        (info.kind, info.version.as_str()),
        (kind, version),
        "{banner}"
    );
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    assert_eq!(
        info.atomic_slot_migration,
        kind == ServerKind::Valkey && major >= 9,
        "{info}"
    );
    // The observation tells the engine the same, read once per connection: Valkey 8.1 hands
    // over source-first (the planner may make larger moves), Redis 7.0 does not.
    for pass in 0..2 {
        let state = adapter.observe_node(&addr).await.expect("observed");
        assert_eq!(
            state.hands_over_source_first,
            info.hands_over_source_first(),
            "pass {pass}: {info}"
        );
    }
}

/// While a master migrates a slot, its replica is observed with no open slot on either server
/// (Valkey shows the master's markers on the replica's own line; a replica takes no `SETSLOT`,
/// so the engine must not try to close them there), and the master with the marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_observed_without_its_masters_slot_markers() {
    let c = Cluster::start(&[12210, 12211, 12212, 12213], 3, None).await;
    // #3 replicates #0.
    let slot = c.first_slot_of(0).await;
    // Synced first: Valkey passes SETSLOT on through the replication stream.
    c.wait_replica_online(0).await;
    for (on, state, peer) in [(1, "IMPORTING", 0), (0, "MIGRATING", 1)] {
        let () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(&c.ids[peer])
            .query_async(&mut c.client(on, None).await)
            .await
            .unwrap();
    }
    let migrating = engine::OpenSlot::Migrating {
        slot,
        target: c.ids[1].clone(),
    };
    // Valkey answers SETSLOT once the replica has applied it; give Redis the same moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let obs = c.observe().await;
    let myself = |ord: u32| {
        obs.members[&ord]
            .redis
            .as_ref()
            .unwrap()
            .myself()
            .unwrap()
            .clone()
    };
    assert_eq!(myself(0).open_slots, [migrating]);
    assert!(myself(3).flags.replica);
    assert_eq!(myself(3).open_slots, []);
}

/// `SetSlotOwner` (and `SetSlotStable`) effects in a run go out as one pipeline per node:
/// every command is sent, and the first refusal (in input order) is what the call returns.
/// Ports 12290-12292.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_slot_owner_runs_go_out_as_one_pipeline_per_node_and_report_the_first_refusal() {
    let c = Cluster::start(&[12290, 12291, 12292], 3, None).await;
    let first = c.first_slot_of(0).await;
    let slots: Vec<u16> = (first..first + 10).collect();
    let mut effects = Vec::new();
    for on in [0u32, 1, 2] {
        for &slot in &slots {
            effects.push(Effect::SetSlotOwner {
                on,
                slot,
                owner_id: c.ids[1].clone(),
            });
        }
    }
    effects.push(Effect::SetSlotStable {
        on: 0,
        slot: first + 30,
    });
    let unknown = "0".repeat(40);
    effects.insert(
        5,
        Effect::SetSlotOwner {
            on: 2,
            slot: first + 20,
            owner_id: unknown,
        },
    );
    let err = c
        .adapter
        .execute_setslot_commands(&effects, &c.ctx().await)
        .await
        .expect_err("one command names an unknown node");
    assert!(err.to_string().contains("Unknown node"), "{err}");
    for &slot in &slots {
        c.wait_routed_to(slot, &c.ids[1], 0).await;
    }
    let not_one = Effect::Meet {
        on: 0,
        ip: "127.0.0.1".into(),
        port: 12291,
    };
    assert!(
        c.adapter
            .execute_setslot_commands(&[not_one], &c.ctx().await)
            .await
            .is_err()
    );
}
