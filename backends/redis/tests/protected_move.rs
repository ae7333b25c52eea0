//! The protected move (copy, confirm on the target's replica, delete what did not change)
//! under clients that keep writing and deleting the keys being moved: every key ends with the
//! last value a client was told was written, and no deleted key comes back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine::Effect;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a client was last told about a key: `Some(value)` written, `None` deleted. Keys whose
/// last command failed (its outcome unknown) are left out.
type Expected = BTreeMap<String, Option<String>>;

/// Writes, deletes and re-creates `keys` through a cluster client (which follows `ASK` and
/// `MOVED`) until `stop`, in a thread of its own.
fn churn(
    port: u16,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Expected, u64)> {
    std::thread::spawn(move || {
        let mut conn =
            redis::cluster::ClusterClient::builder(vec![format!("redis://127.0.0.1:{port}/")])
                .retries(30)
                .build()
                .unwrap()
                .get_connection()
                .unwrap();
        let mut expected = Expected::new();
        let mut ops = 0u64;
        let mut round = 0usize;
        while !stop.load(Ordering::Relaxed) {
            for (i, key) in keys.iter().enumerate().skip(round % 7).step_by(7) {
                let value = format!("r{round}-{i}");
                let result: redis::RedisResult<()> = if (i + round).is_multiple_of(3) {
                    redis::cmd("DEL").arg(key).query(&mut conn)
                } else {
                    redis::cmd("SET").arg(key).arg(&value).query(&mut conn)
                };
                ops += 1;
                match result {
                    Ok(()) if (i + round).is_multiple_of(3) => {
                        expected.insert(key.clone(), None);
                    }
                    Ok(()) => {
                        expected.insert(key.clone(), Some(value));
                    }
                    Err(_) => {
                        expected.remove(key);
                    }
                }
            }
            round += 1;
        }
        (expected, ops)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_written_and_deleted_during_a_protected_move_end_as_clients_left_them() {
    let c = Cluster::start(&[12180, 12181, 12182, 12183], 3, None).await;
    // #3 replicates #0, the target; the slot is #1's.
    let slot = c.first_slot_of(1).await;
    let keys = keys_in_slot(slot, 3000);
    fill(&mut c.client(1, None).await, &keys).await;
    c.wait_replica_online(0).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = churn(c.nodes[0].port, keys.clone(), stop.clone());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut ctx = c.ctx().await;
    ctx.protect_targets = true;
    let mv = Effect::MigrateSlots {
        from: 1,
        from_id: c.ids[1].clone(),
        to: 0,
        to_id: c.ids[0].clone(),
        slots: ranges(&[slot]),
    };
    c.adapter
        .execute(&mv, &ctx)
        .await
        .expect("the move finishes");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (expected, ops) = writer.join().unwrap();
    assert!(
        ops > 1000,
        "the writer kept writing during the move ({ops} commands)"
    );

    let mut target = c.client(0, None).await;
    let mut wrong = Vec::new();
    for (key, want) in &expected {
        let got: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut target)
            .await
            .unwrap();
        if &got != want {
            wrong.push(format!("{key}: expected {want:?}, found {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} keys differ: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let left: u64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut c.client(1, None).await)
        .await
        .unwrap();
    assert_eq!(left, 0, "no key stays on the source");
}
