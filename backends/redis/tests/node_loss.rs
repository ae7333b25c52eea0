//! What Redis allows once a node of a slot move has died, proven on real servers: the orders
//! `engine::repair` relies on. Each test owns its ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::Effect;
use redis_operator_redis::{AdapterError, ExecContext, ServerKind};
use std::time::Duration;

async fn dbsize(c: &Cluster, i: usize) -> u64 {
    redis::cmd("DBSIZE")
        .query_async(&mut c.client(i, None).await)
        .await
        .unwrap()
}

async fn setslot(c: &Cluster, on: usize, slot: u16, rest: &[&str]) {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SETSLOT").arg(slot);
    for a in rest {
        cmd.arg(*a);
    }
    let () = cmd
        .query_async(&mut c.client(on, None).await)
        .await
        .unwrap();
}

async fn asking_set(c: &Cluster, on: usize, key: &str, value: &str) {
    let mut pipe = redis::pipe();
    pipe.cmd("ASKING")
        .ignore()
        .cmd("SET")
        .arg(key)
        .arg(value)
        .ignore();
    let () = pipe
        .query_async(&mut c.client(on, None).await)
        .await
        .unwrap();
}

async fn get(c: &Cluster, on: usize, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut c.client(on, None).await)
        .await
        .unwrap()
}

/// Redis' importer after its source died: it still names the dead source as owner, reports
/// `cluster_state:fail` and refuses to send keys (`CLUSTERDOWN`).
async fn importer_stuck_with_the_dead_source(
    c: &Cluster,
    slot: u16,
    keys: &[String],
    old: &str,
    new: &str,
) {
    eventually(
        100,
        "#2 sees the dead source fail and its replica promoted",
        || async {
            let obs = c.observe().await;
            let s = obs.members[&2].redis.clone().unwrap();
            !s.cluster_ok
                && s.view_of(old).is_some_and(|n| n.flags.fail)
                && s.view_of(new).is_some_and(|n| n.master_id.is_none())
        },
    )
    .await;
    assert_eq!(c.owners_of(slot).await[2].as_deref(), Some(old));

    // Sending the keys now is refused: the node's cluster is down.
    let mut direct = redis::cmd("MIGRATE");
    direct
        .arg("127.0.0.1")
        .arg(c.nodes[3].port)
        .arg("")
        .arg(0)
        .arg(1000)
        .arg("KEYS")
        .arg(&keys[150]);
    let refused: Result<String, _> = direct.query_async(&mut c.client(2, None).await).await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("cluster is down"), "{message}");

    // So is every key sent to it, for every slot: a move from a healthy master into it stops
    // at once, saying why, instead of waiting (seconds, a little longer each turn) for a
    // `CLUSTERDOWN` that only telling it the new owner ends (chaos soak, a source frozen
    // mid-move). Nothing left #1; its markers are closed again for the rest of the test.
    let other = c.first_slot_of(1).await;
    let others = keys_in_slot(other, 5);
    fill(&mut c.client(1, None).await, &others).await;
    let into_stuck = Effect::MigrateSlots {
        from: 1,
        from_id: c.ids[1].clone(),
        to: 2,
        to_id: c.ids[2].clone(),
        slots: vec![engine::SlotRange::single(other)],
    };
    let err = c
        .adapter
        .execute(&into_stuck, &c.ctx().await)
        .await
        .expect_err("a move into a node whose cluster is down fails");
    assert!(
        matches!(&err, AdapterError::ImporterStuck { slot: s, .. } if *s == slot),
        "{err}"
    );
    assert_eq!(c.count_in_slot(1, other).await, 5);
    for on in [1, 2] {
        setslot(c, on, other, &["STABLE"]).await;
    }
}

/// Three masters and #3 replicating #0; slot 9 half moved from #0 to #2 (100 keys each
/// side, #3 holding #0's), then #0 killed.
async fn source_killed_mid_slot(ports: &[u16]) -> (Cluster, u16, Vec<String>) {
    let mut c = Cluster::start(ports, 3, None).await;
    let slot = 9; // #0's; #3 replicates #0
    let keys = keys_in_slot(slot, 200);
    fill(&mut c.client(0, None).await, &keys[..100]).await;
    setslot(&c, 2, slot, &["IMPORTING", &c.ids[0]]).await;
    setslot(&c, 0, slot, &["MIGRATING", &c.ids[2]]).await;
    for k in &keys[100..] {
        asking_set(&c, 2, k, &format!("v-{k}")).await;
    }
    // A replica's first full sync waits out the server's diskless-sync delay (5 s by default,
    // which these test servers keep), so allow 20 s on a loaded machine.
    eventually(400, "the replica has the source's keys", || async {
        dbsize(&c, 3).await == 100
    })
    .await;
    c.nodes[0].kill();
    (c, slot, keys)
}

/// Valkey passes `SETSLOT MIGRATING` on to the source's replica, so the promoted replica
/// carries the move on (`[slot->-importer]`): nothing needs repairing, and moving the slot
/// from it finishes with every key on the importer.
async fn move_intact_after_failover(c: &Cluster, slot: u16, keys: &[String]) {
    let new = c.ids[3].clone();
    let obs = c.observe().await;
    let promoted = obs.members[&3].redis.as_ref().unwrap().myself().unwrap();
    assert_eq!(
        promoted.open_slots,
        [engine::OpenSlot::Migrating {
            slot,
            target: c.ids[2].clone(),
        }]
    );
    let finish = Effect::MigrateSlots {
        from: 3,
        from_id: new,
        to: 2,
        to_id: c.ids[2].clone(),
        slots: ranges(&[slot]),
    };
    c.adapter
        .execute(&finish, &ExecContext::from_observation(&obs))
        .await
        .expect("the move finishes");
    for k in keys {
        assert_eq!(
            get(c, 2, k).await.as_deref(),
            Some(format!("v-{k}").as_str()),
            "{k}"
        );
    }
}

/// The source of a move dies, its replica takes the slot over, and the importing node keeps
/// the dead source as owner (Redis applies no update to a slot a node imports): its
/// `cluster_state` is `fail` and it refuses `MIGRATE` with `CLUSTERDOWN`. `SETSLOT NODE
/// <new owner>` fixes its view and keeps its importing marker, so the keys can then be sent
/// home; the engine's own path, finishing the move from the new owner towards the importer,
/// works from the same state (next test). Valkey (8.0 and later) spares the importer that
/// state: it follows the failover, giving the slot to the promoted replica and importing from
/// it, and keeps serving, while the promoted replica carries the move on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_importing_node_whose_source_died_sends_its_keys_once_told_the_new_owner() {
    let (c, slot, keys) = source_killed_mid_slot(&[12120, 12121, 12122, 12123]).await;
    let (old, new) = (c.ids[0].clone(), c.ids[3].clone());
    let server = c.adapter.server_info(&c.nodes[1].addr()).await.unwrap();
    eventually(300, "the replica owns the slot in #1's view", || async {
        c.owners_of(slot).await[1].as_deref() == Some(new.as_str())
    })
    .await;
    match server.kind {
        ServerKind::Redis => importer_stuck_with_the_dead_source(&c, slot, &keys, &old, &new).await,
        ServerKind::Valkey => {
            eventually(
                200,
                "#2 follows the failover and imports from the new owner",
                || async {
                    let obs = c.observe().await;
                    let s = obs.members[&2].redis.clone().unwrap();
                    s.cluster_ok
                        && s.myself().is_some_and(|me| {
                            me.open_slots
                                == [engine::OpenSlot::Importing {
                                    slot,
                                    source: new.clone(),
                                }]
                        })
                        && c.owners_of(slot).await[2].as_deref() == Some(new.as_str())
                },
            )
            .await;
            return move_intact_after_failover(&c, slot, &keys).await;
        }
    }

    let ctx = c.ctx().await;
    for effect in [
        Effect::SetSlotOwner {
            on: 2,
            slot,
            owner_id: new.clone(),
        },
        Effect::MoveStrayKeys {
            from: 2,
            to: 3,
            to_id: new.clone(),
            slot,
        },
    ] {
        c.adapter.execute(&effect, &ctx).await.expect("repair step");
    }
    for k in &keys {
        assert_eq!(
            get(&c, 3, k).await.as_deref(),
            Some(format!("v-{k}").as_str()),
            "{k}"
        );
    }
    let obs = c.observe().await;
    let importer = obs.members[&2].redis.as_ref().unwrap();
    assert!(importer.myself().unwrap().open_slots.is_empty());
    assert_eq!(importer.keys, 0);
    eventually(100, "#2 serves again", || async {
        c.observe().await.members[&2]
            .redis
            .as_ref()
            .is_some_and(|s| s.cluster_ok)
    })
    .await;
}

/// Keys of a slot on a master with no marker for it (the promoted replica of a target that
/// died mid-slot), while another node has the slot open: the observer counts them, and
/// `MoveStrayKeys` opens an import on the holder (Redis answers `MOVED` otherwise) to send
/// them home, then closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_a_node_with_no_marker_are_counted_and_brought_home() {
    let c = Cluster::start(&[12130, 12131, 12132], 3, None).await;
    let slot = 9;
    let keys = keys_in_slot(slot, 150);
    fill(&mut c.client(0, None).await, &keys[..50]).await;
    setslot(&c, 1, slot, &["IMPORTING", &c.ids[0]]).await;
    for k in &keys[50..] {
        asking_set(&c, 1, k, &format!("v-{k}")).await;
    }
    setslot(&c, 1, slot, &["STABLE"]).await;
    setslot(&c, 2, slot, &["IMPORTING", &c.ids[0]]).await;

    let obs = c.observe().await;
    let holder = obs.members[&1].redis.as_ref().unwrap();
    assert!(holder.myself().unwrap().open_slots.is_empty());
    assert_eq!(holder.open_slot_keys.get(&slot), Some(&100));
    assert_eq!(
        obs.members[&2]
            .redis
            .as_ref()
            .unwrap()
            .open_slot_keys
            .get(&slot),
        Some(&0),
        "a node counts its own open slots, empty or not"
    );

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
    for k in &keys {
        assert_eq!(
            get(&c, 0, k).await.as_deref(),
            Some(format!("v-{k}").as_str()),
            "{k}"
        );
    }
    let obs = c.observe().await;
    let holder = obs.members[&1].redis.as_ref().unwrap();
    assert!(holder.myself().unwrap().open_slots.is_empty());
    assert_eq!(holder.keys, 0);
}

/// The owner still migrates the slot towards a target that died, and the keys that had moved
/// sit on another master with no marker: the owner would answer their `RESTORE` with `ASK`
/// (proven here), so the move is finished towards the holder instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_target_died_is_finished_towards_the_node_holding_the_moved_keys() {
    let c = Cluster::start(&[12140, 12141, 12142], 3, None).await;
    let slot = 9;
    let keys = keys_in_slot(slot, 150);
    fill(&mut c.client(0, None).await, &keys[..50]).await;
    setslot(&c, 1, slot, &["IMPORTING", &c.ids[0]]).await;
    for k in &keys[50..] {
        asking_set(&c, 1, k, &format!("v-{k}")).await;
    }
    setslot(&c, 1, slot, &["STABLE"]).await;
    setslot(&c, 0, slot, &["MIGRATING", &c.ids[2]]).await;

    let home = Effect::MoveStrayKeys {
        from: 1,
        to: 0,
        to_id: c.ids[0].clone(),
        slot,
    };
    let err = c
        .adapter
        .execute(&home, &c.ctx().await)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ASK"), "{err}");

    let finish = Effect::MigrateSlots {
        from: 0,
        from_id: c.ids[0].clone(),
        to: 1,
        to_id: c.ids[1].clone(),
        slots: ranges(&[slot]),
    };
    c.adapter
        .execute(&finish, &c.ctx().await)
        .await
        .expect("the move finishes");
    for k in &keys {
        assert_eq!(
            get(&c, 1, k).await.as_deref(),
            Some(format!("v-{k}").as_str()),
            "{k}"
        );
    }
    eventually(100, "every node gives the slot to the holder", || async {
        c.owners_of(slot)
            .await
            .iter()
            .all(|o| o.as_deref() == Some(c.ids[1].as_str()))
    })
    .await;
    let obs = c.observe().await;
    assert!(obs.members.values().all(|m| {
        m.redis
            .as_ref()
            .is_some_and(|s| s.myself().unwrap().open_slots.is_empty())
    }));
}

/// The engine's path when the importer has a replica and the new owner has none: after the
/// view fix, the move is finished from the promoted replica towards the importing node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_source_died_is_finished_from_the_promoted_replica_towards_the_importer() {
    let (c, slot, keys) = source_killed_mid_slot(&[12150, 12151, 12152, 12153]).await;
    let new = c.ids[3].clone();
    eventually(300, "the replica owns the slot in #1's view", || async {
        c.owners_of(slot).await[1].as_deref() == Some(new.as_str())
    })
    .await;
    eventually(100, "#2 knows the replica was promoted", || async {
        c.observe().await.members[&2]
            .redis
            .as_ref()
            .and_then(|s| s.view_of(&new).map(|n| n.master_id.is_none()))
            .unwrap_or(false)
    })
    .await;
    let ctx = c.ctx().await;
    for effect in [
        Effect::SetSlotOwner {
            on: 2,
            slot,
            owner_id: new.clone(),
        },
        Effect::MigrateSlots {
            from: 3,
            from_id: new.clone(),
            to: 2,
            to_id: c.ids[2].clone(),
            slots: ranges(&[slot]),
        },
    ] {
        c.adapter.execute(&effect, &ctx).await.expect("repair step");
    }
    for k in &keys {
        assert_eq!(
            get(&c, 2, k).await.as_deref(),
            Some(format!("v-{k}").as_str()),
            "{k}"
        );
    }
    c.wait_routed_to(slot, &c.ids[2], 1).await;
}

/// Keys moved by `MIGRATE` leave the source at once; until the target's replica applies them
/// they would exist only on the target. Towards a protected target a batch is therefore copied,
/// and leaves the source only once a replica has it: with the replica frozen, nothing leaves
/// the source and the move pauses with `TargetUnprotected`; thawed, it finishes and the
/// replica holds every key. On Redis the first batch (100 keys) is copied before the pause;
/// Valkey already refuses the target's `SETSLOT IMPORTING` (`NOREPLICAS`: it passes the
/// command on to the frozen replica), so nothing is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_leaves_the_source_before_a_replica_of_the_target_has_it() {
    let c = Cluster::start(&[12160, 12161, 12162, 12163], 3, None).await;
    // #3 replicates #0, the target.
    let slot = c.first_slot_of(1).await;
    let keys = keys_in_slot(slot, 500);
    fill(&mut c.client(1, None).await, &keys).await;
    c.wait_replica_online(0).await;
    let mut ctx = c.ctx().await;
    ctx.protect_targets = true;
    let mv = Effect::MigrateSlots {
        from: 1,
        from_id: c.ids[1].clone(),
        to: 0,
        to_id: c.ids[0].clone(),
        slots: ranges(&[slot]),
    };

    let server = c.adapter.server_info(&c.nodes[0].addr()).await.unwrap();
    let copied_before_the_pause = match server.kind {
        ServerKind::Redis => 100,
        ServerKind::Valkey => 0,
    };
    c.nodes[3].freeze();
    let paused = c.adapter.execute(&mv, &ctx).await;
    assert!(
        matches!(paused, Err(AdapterError::TargetUnprotected { .. })),
        "{paused:?}"
    );
    assert_eq!(
        dbsize(&c, 0).await,
        copied_before_the_pause,
        "what {server} copied to the target before pausing"
    );
    assert_eq!(dbsize(&c, 1).await, 500, "no key left the source");

    c.nodes[3].thaw();
    c.adapter
        .execute(&mv, &ctx)
        .await
        .expect("the move resumes");
    assert_eq!(dbsize(&c, 0).await, 500);
    eventually(100, "the replica holds every moved key", || async {
        dbsize(&c, 3).await == 500
    })
    .await;
}

/// The order the engine relies on when a replica takes over a master whose last slot it never
/// heard of: `CLUSTER FAILOVER TAKEOVER` is complete when the command returns (the replica is a
/// master at a bumped epoch), so a `SETSLOT <slot> NODE <itself>` sent right after is accepted
/// and wins in every view, and the dead master's member restarted empty gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_took_over_claims_a_slot_its_view_never_gave_its_master() {
    let mut c = Cluster::start(&[12170, 12171, 12172, 12173], 3, None).await;
    // #3 replicates #0.
    let slot = c.first_slot_of(1).await;
    // The slot (empty) is given to #0 in the views of #1 and #2 only, and #0 dies: #0 never
    // claimed it itself, so its replica #3 never hears of it, as when a target dies right
    // after `SETSLOT NODE` and before its next ping.
    for on in [1, 2] {
        setslot(&c, on, slot, &["NODE", &c.ids[0]]).await;
    }
    c.nodes[0].kill();
    let view_of_3 = c.observe().await.members[&3].redis.clone().unwrap();
    let master_in_view_of_3 = view_of_3.nodes.iter().find(|n| n.id == c.ids[0]).unwrap();
    assert!(
        !engine::slots::expand(&master_in_view_of_3.slots).any(|s| s == slot),
        "#3 never heard that #0 took the slot"
    );

    let ctx = c.ctx().await;
    for effect in [
        Effect::Failover {
            on: 3,
            mode: engine::FailoverMode::Takeover,
        },
        Effect::SetSlotOwner {
            on: 3,
            slot,
            owner_id: c.ids[3].clone(),
        },
    ] {
        c.adapter.execute(&effect, &ctx).await.expect("accepted");
    }
    let new = c.ids[3].clone();
    eventually(100, "every live view gives the slot to #3", || async {
        c.owners_of(slot)
            .await
            .iter()
            .skip(1)
            .all(|o| o.as_deref() == Some(new.as_str()))
    })
    .await;
}

/// Node `on` takes `slot` over the way a replica promoted in its master's place does: with a
/// copy of the slot's keys and a claim at a config epoch above every other.
async fn claim_with_copies(c: &Cluster, on: usize, from: usize, slot: u16, keys: &[String]) {
    setslot(c, on, slot, &["IMPORTING", &c.ids[from]]).await;
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.cmd("ASKING")
            .ignore()
            .cmd("SET")
            .arg(k)
            .arg(format!("v-{k}"))
            .ignore();
    }
    let () = pipe
        .query_async(&mut c.client(on, None).await)
        .await
        .unwrap();
    setslot(c, on, slot, &["NODE", &c.ids[on]]).await;
}

/// What a slot migration must never do once a failover took its slot mid-move, proven on real
/// servers. A master that hears another claim its slot at a higher epoch while it still serves
/// other slots deletes its own keys of that slot (a promoted replica's claim reaches a source
/// that stalled past the node timeout this way): the source then counts 0 keys although they
/// exist on the new owner. Handing the slot to the target at that point (`SETSLOT NODE` on the
/// target, which outbids the new owner) makes the new owner delete its copies in turn: only the
/// keys that had moved survive. The chaos soak lost 116 acknowledged writes this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_claimed_away_mid_move_is_dropped_by_the_source_and_would_be_lost_if_handed_over() {
    let c = Cluster::start(&[12220, 12221, 12222], 3, None).await;
    // Valkey's importer gives an imported slot to whoever claims it and drops the keys it had
    // received, unless the claimant is the source's promoted replica (which carries the move
    // on: `an_importing_node_whose_source_died_...`). This stand-in for a failover is not one,
    // so the sequence below is Redis' only.
    let server = c.adapter.server_info(&c.nodes[0].addr()).await.unwrap();
    if server.kind == ServerKind::Valkey {
        eprintln!("{server}: the importer follows a claim by a non-replica; Redis-only sequence");
        return;
    }
    let slot = c.first_slot_of(0).await;
    let keys = keys_in_slot(slot, 100);
    fill(&mut c.client(0, None).await, &keys).await;
    setslot(&c, 2, slot, &["IMPORTING", &c.ids[0]]).await;
    setslot(&c, 0, slot, &["MIGRATING", &c.ids[2]]).await;
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(c.nodes[2].port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys[..40]);
    let _: redis::Value = migrate
        .query_async(&mut c.client(0, None).await)
        .await
        .unwrap();
    assert_eq!(c.count_in_slot(2, slot).await, 40);

    claim_with_copies(&c, 1, 0, slot, &keys[40..]).await;
    let new_owner = c.ids[1].clone();
    eventually(
        100,
        "the source hears the claim and drops its keys",
        || async {
            c.owners_of(slot).await[0].as_deref() == Some(new_owner.as_str())
                && c.count_in_slot(0, slot).await == 0
        },
    )
    .await;
    assert_eq!(c.count_in_slot(1, slot).await, 60, "the new owner has them");

    // What a migration that trusted the source's count of 0 would do next.
    setslot(&c, 2, slot, &["NODE", &c.ids[2]]).await;
    eventually(
        100,
        "the new owner hears the target's claim and drops its copies",
        || async { c.count_in_slot(1, slot).await == 0 },
    )
    .await;
    let left: u64 = c.count_in_slot(0, slot).await
        + c.count_in_slot(1, slot).await
        + c.count_in_slot(2, slot).await;
    assert_eq!(left, 40, "only the keys that had moved are left");
}

/// The same takeover while `MigrateSlots` runs (one key per `MIGRATE`, so the move is in
/// flight), timed so the source drops the slot's keys between two looks of the mover: the
/// executor finds none left but does not hand the slot to the target, since the source no
/// longer owns it; the node that took it over keeps every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_slot_is_claimed_away_midway_is_not_finished_and_loses_no_key() {
    let c = Cluster::start(&[12225, 12226, 12227], 3, None).await;
    let slot = c.first_slot_of(0).await;
    let keys = keys_in_slot(slot, 2000);
    fill(&mut c.client(0, None).await, &keys).await;
    let slow = redis_operator_redis::RedisAdapter::new(redis_operator_redis::AdapterConfig {
        migrate_batch: 1,
        keys_per_round_trip: 1,
        // Longer than the target's stall below.
        migrate_timeout: Duration::from_secs(10),
        response_timeout: Duration::from_secs(10),
        ..redis_operator_redis::AdapterConfig::default()
    });
    let ctx = c.ctx().await;
    let mv = Effect::MigrateSlots {
        from: 0,
        from_id: c.ids[0].clone(),
        to: 2,
        to_id: c.ids[2].clone(),
        slots: ranges(&[slot]),
    };
    let running = tokio::spawn(async move { slow.execute(&mv, &ctx).await });
    eventually(200, "the move is under way", || async {
        c.count_in_slot(2, slot).await >= 50
    })
    .await;
    // The target stalls, so the source sits inside a `MIGRATE` to it; meanwhile #1 takes the
    // slot over, and its claim waits in the source's cluster bus until that `MIGRATE` returns:
    // the source drops the slot's keys right after it, before the mover's next look.
    c.nodes[2].freeze();
    tokio::time::sleep(Duration::from_millis(200)).await;
    claim_with_copies(&c, 1, 0, slot, &keys).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.nodes[2].thaw();
    let outcome = running.await.unwrap();
    assert!(
        outcome.is_err(),
        "the source lost the slot before its keys had all moved, yet the move finished"
    );

    let new_owner = c.ids[1].clone();
    eventually(
        100,
        "the source and the new owner agree on the owner",
        || async {
            let owners = c.owners_of(slot).await;
            owners[0] == owners[1]
        },
    )
    .await;
    assert_eq!(
        c.owners_of(slot).await[1].as_deref(),
        Some(new_owner.as_str()),
        "the slot stays with the node that took it over"
    );
    for k in &keys {
        assert_eq!(
            get(&c, 1, k).await.as_deref(),
            Some(format!("v-{k}").as_str()),
            "{k}"
        );
    }
}
