//! A master SIGKILLed in the middle of a slot migration (issue 15), against real redis-server
//! processes: the source of an open slot, its target, and a source killed after the operator
//! itself died mid-migration (both markers left behind). After each, the operator must bring
//! the cluster back to 4 masters x 1 replica, healthy for `redis-cli --cluster check`, with
//! every key written before the scale-out readable.
//!
//! The moment of the kill is made exact by pausing the operator (SIGSTOP) while the cluster is
//! inspected: a node is killed only in the state the test asks for (e.g. a slot whose keys
//! are already split between source and target), then the operator resumes (SIGCONT) — to
//! it, a pause of a few milliseconds is only a slow pass. `bench/migration_node_loss.py` runs
//! the larger, unpaused scenario repeatedly.
//!
//! A source frozen (SIGSTOP) past the node timeout mid-slot is the other way a source is lost:
//! Redis promotes its replica while the source is alive, and the source comes back as that
//! replica's replica, with the slot's markers and keys where the freeze left them.
//!
//! Ports: 18000-18399 (one block of 100 per test; bus ports +10000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// How long the cluster gets to heal, and to reach the state a test kills in.
const WAIT: Duration = Duration::from_secs(180);
const KEYS: usize = 30_000;

/// A 3 x 1 cluster with small MIGRATE batches, loaded with `KEYS` keys `k:{i}` = `v{i}`.
fn loaded_cluster(name: &str, base_port: u16) -> LocalCluster {
    let c = LocalCluster::new(name, base_port, 3, 1);
    let mut manifest = std::fs::read_to_string(&c.manifest).unwrap();
    manifest.push_str("  migrationBatchKeys: 20\n");
    std::fs::write(&c.manifest, manifest).unwrap();
    c.up_until_ready();
    load_keys(&mut c.cluster_client(), "k", KEYS);
    c
}

/// One node's `CLUSTER NODES`, or None when it does not answer.
fn nodes_text(port: u16) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(300))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    redis::cmd("CLUSTER").arg("NODES").query(&mut conn).ok()
}

fn query_u64(port: u16, cmd: &redis::Cmd) -> Option<u64> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(300))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    cmd.query(&mut conn).ok()
}

fn keys_in_slot(port: u16, slot: u16) -> u64 {
    query_u64(port, redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot)).unwrap_or(0)
}

fn dbsize(port: u16) -> u64 {
    query_u64(port, &redis::cmd("DBSIZE")).unwrap_or(0)
}

/// What one node says of itself: its id and its open slots.
#[derive(Debug, Clone)]
struct Myself {
    port: u16,
    id: String,
    /// slot -> id of the node it is being migrated to (`[slot->-id]`)
    migrating: BTreeMap<u16, String>,
    /// slot -> id of the node it is being imported from (`[slot-<-id]`)
    importing: BTreeMap<u16, String>,
}

fn myself(port: u16) -> Option<Myself> {
    let text = nodes_text(port)?;
    let line = text.lines().find(|l| {
        l.split_whitespace()
            .nth(2)
            .is_some_and(|f| f.contains("myself"))
    })?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let mut me = Myself {
        port,
        id: f[0].to_string(),
        migrating: BTreeMap::new(),
        importing: BTreeMap::new(),
    };
    for tok in f.iter().skip(8) {
        let body = tok.trim_start_matches('[').trim_end_matches(']');
        if let Some((s, peer)) = body.split_once("->-") {
            me.migrating.insert(s.parse().unwrap(), peer.to_string());
        } else if let Some((s, peer)) = body.split_once("-<-") {
            me.importing.insert(s.parse().unwrap(), peer.to_string());
        }
    }
    Some(me)
}

/// Every node of the 4 x 1 cluster that answers (ordinals 0-7).
fn all_myself(c: &LocalCluster) -> Vec<(u16, Myself)> {
    (0..8u16)
        .filter_map(|o| myself(c.port(o)).map(|m| (o, m)))
        .collect()
}

fn operator_pid(c: &LocalCluster) -> Option<String> {
    let text = std::fs::read_to_string(c.state_dir().join("operator.pid")).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

fn signal(sig: &str, pid: &str) {
    let _ = Command::new("kill").args([sig, pid]).status();
}

/// SIGKILL node `ordinal` (its pid from `node-<n>/redis.pid`).
fn kill_node(c: &LocalCluster, ordinal: u16) {
    let pid = pid_of(&c.state_dir(), ordinal);
    let ok = Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -9 {pid} (node {ordinal})");
}

/// Polls until `found` returns Some with the operator paused (SIGSTOP) — the cluster cannot
/// change under `found` and whatever the caller does next — and returns it with the operator
/// still paused; the caller resumes it with `resume`. Panics after `WAIT`.
fn pause_when<T>(c: &LocalCluster, what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        // A cheap look first; the operator is paused only when a slot is open somewhere.
        let open = all_myself(c)
            .iter()
            .any(|(_, m)| !m.migrating.is_empty() || !m.importing.is_empty());
        if open && let Some(pid) = operator_pid(c) {
            signal("-STOP", &pid);
            if let Some(t) = found() {
                return t;
            }
            signal("-CONT", &pid);
        }
        assert!(
            start.elapsed() < WAIT,
            "never saw {what} within {WAIT:?}\n{}\noperator log tail:\n{}",
            c.status(),
            tail(&c.operator_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn resume(c: &LocalCluster) {
    if let Some(pid) = operator_pid(c) {
        signal("-CONT", &pid);
    }
}

/// A slot whose keys are split between its source and its target: the source still owns it
/// and marks it MIGRATING to the target, the target marks it IMPORTING from the source and
/// already holds some of its keys. Returns (source ordinal, target ordinal, slot, keys there).
fn split_slot(c: &LocalCluster) -> Option<(u16, u16, u16, u64)> {
    let nodes = all_myself(c);
    for (t_ord, target) in &nodes {
        for (slot, from_id) in &target.importing {
            let Some((s_ord, source)) = nodes.iter().find(|(_, m)| &m.id == from_id) else {
                continue;
            };
            if source.migrating.get(slot) != Some(&target.id) {
                continue;
            }
            let moved = keys_in_slot(target.port, *slot);
            if moved > 0 {
                return Some((*s_ord, *t_ord, *slot, moved));
            }
        }
    }
    None
}

/// Waits until the operator reports 4 x 1 ready, then checks the cluster with redis-cli and
/// reads every preloaded key.
fn assert_healed_without_loss(c: &LocalCluster, what: &str) {
    c.wait_ready(4, 1, WAIT);
    if let Err(report) = c.redis_cli_check() {
        panic!("{what}: redis-cli --cluster check fails:\n{report}");
    }
    let missing = missing_keys(c, "k", KEYS);
    assert!(
        missing.is_empty(),
        "{what}: {} of the {KEYS} keys written before the scale-out are gone (e.g. {:?})\n\
         operator log tail:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)]
            .iter()
            .map(|i| format!("k:{i}"))
            .collect::<Vec<_>>(),
        tail(&c.operator_log(), 20)
    );
}

#[test]
fn a_source_master_killed_mid_slot_heals_and_loses_no_key() {
    let mut c = loaded_cluster("nl-source", 18000);
    c.start_operator();
    c.scale(4, 1);
    let (source, target, slot, moved) =
        pause_when(&c, "a slot split between source and target", || {
            split_slot(&c)
        });
    kill_node(&c, source);
    resume(&c);
    assert_healed_without_loss(
        &c,
        &format!(
            "source #{source} killed while slot {slot} was moving to #{target} \
             ({moved} of its keys already there)"
        ),
    );
}

#[test]
fn a_target_master_killed_mid_slot_loses_no_key_that_existed_before_the_scale_out() {
    let mut c = loaded_cluster("nl-target", 18100);
    c.start_operator();
    c.scale(4, 1);
    // The target has received keys (finished slots and the open ones) and still imports.
    let (target, slot, held) = pause_when(&c, "a target importing with keys moved in", || {
        all_myself(&c).into_iter().find_map(|(o, m)| {
            let slot = *m.importing.keys().next()?;
            let held = dbsize(m.port);
            (held >= 200).then_some((o, slot, held))
        })
    });
    kill_node(&c, target);
    resume(&c);
    assert_healed_without_loss(
        &c,
        &format!("target #{target} killed while importing slot {slot}, holding {held} keys"),
    );
}

#[test]
fn an_operator_killed_mid_migration_then_a_source_master_killed_heals_and_loses_no_key() {
    let mut c = loaded_cluster("nl-both", 18200);
    c.start_operator();
    c.scale(4, 1);
    let (source, target, slot, moved) =
        pause_when(&c, "a slot split between source and target", || {
            split_slot(&c)
        });
    // The operator dies (paused, so with both markers of `slot` still set), then the source.
    c.kill_operator();
    let still = split_slot(&c);
    assert!(
        still.is_some(),
        "both markers of a split slot are left after the operator died"
    );
    kill_node(&c, source);
    c.start_operator();
    assert_healed_without_loss(
        &c,
        &format!(
            "operator killed, then source #{source} of slot {slot} (split with #{target}, \
             {moved} keys there)"
        ),
    );
}

/// The id of the replica of `master_id` in the view of the node at `port`.
fn replica_of(port: u16, master_id: &str) -> Option<String> {
    nodes_text(port)?.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 3 && f[3] == master_id && !f[2].contains("fail")).then(|| f[0].to_string())
    })
}

/// True when the node at `port` sees `id` as a master.
fn is_master_in_view_of(port: u16, id: &str) -> bool {
    nodes_text(port).is_some_and(|t| {
        t.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[0] == id && f[2].contains("master")
        })
    })
}

/// Freezes the source of a split slot until Redis has promoted its replica (seen by a node
/// other than the source and the target), then thaws it. The operator runs through the freeze
/// (its commands to the source time out, as in the chaos soak).
fn freeze_source_until_its_replica_is_promoted(c: &LocalCluster) -> (u16, u16, u16, u64) {
    let (source, target, slot, moved) =
        pause_when(c, "a slot split between source and target", || {
            split_slot(c)
        });
    let source_id = myself(c.port(source)).unwrap().id;
    let witness = (0..8u16)
        .find(|o| *o != source && *o != target && myself(c.port(*o)).is_some())
        .unwrap();
    let replica = replica_of(c.port(witness), &source_id).expect("the source has a replica");
    let pid = pid_of(&c.state_dir(), source);
    signal("-STOP", &pid);
    resume(c);
    let start = Instant::now();
    while !is_master_in_view_of(c.port(witness), &replica) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the frozen source's replica was never promoted\n{}",
            tail(&c.operator_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal("-CONT", &pid);
    (source, target, slot, moved)
}

#[test]
fn a_source_master_frozen_mid_slot_while_the_operator_runs_heals_and_loses_no_key() {
    let mut c = loaded_cluster("nl-frozen", 18300);
    c.start_operator();
    c.scale(4, 1);
    let (source, target, slot, moved) = freeze_source_until_its_replica_is_promoted(&c);
    assert_healed_without_loss(
        &c,
        &format!(
            "source #{source} frozen past the node timeout, the operator running, while slot \
             {slot} was moving to #{target} ({moved} of its keys already there)"
        ),
    );
}
