//! `redis-operator local` against real redis-server processes: creation, scaling with data,
//! replica changes, a killed master, a killed operator mid-migration, and a client writing
//! throughout. Each test owns a port range (14000-15999) and stops everything it started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(180);

#[test]
fn a_3x1_cluster_is_created_and_redis_cli_finds_it_healthy() {
    let mut c = LocalCluster::new("create", 14000, 3, 1);
    let out = c.up_until_ready();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("127.0.0.1:14000"),
        "prints node addresses: {stdout}"
    );
    c.redis_cli_check().unwrap();
    let t = c.topology();
    assert_eq!(t.len(), 6);
    assert_eq!(master_slot_counts(&t).len(), 3);
    // Every master was given an epoch of its own before meeting anyone (left at 0, the one
    // with the highest id would still be at 0: Redis only ever moves the lower id of a tie).
    let mut conn = redis::Client::open(c.url(c.port(0)))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).unwrap();
    let mut epochs: Vec<u64> = nodes
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.len() > 8 && f[2].contains("master"))
        .map(|f| f[6].parse().unwrap())
        .collect();
    epochs.sort_unstable();
    assert_eq!(epochs, vec![1, 2, 3], "{nodes}");

    // The HTTP API answers with the seed's shape.
    c.start_operator();
    let url = format!(
        "http://127.0.0.1:{}/cluster/nodes?clusterName=create",
        c.http_port
    );
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(out) = std::process::Command::new("curl")
            .args(["-sf", &url])
            .output()
            && out.status.success()
        {
            body = String::from_utf8_lossy(&out.stdout).into_owned();
            if body.matches("\"port\"").count() == 6 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        body.starts_with("[{\"ip\":\"127.0.0.1\",\"port\":14000}"),
        "{body}"
    );
    assert_eq!(body.matches("\"port\"").count(), 6, "{body}");

    // `simulate record` writes a trace of the running cluster that `simulate replay` accepts.
    let trace = c.dir.join("trace.jsonl");
    let state = c.state_dir().to_string_lossy().into_owned();
    let out = c.run(&[
        "simulate",
        "record",
        "--name",
        "create",
        "--dir",
        &state,
        "-o",
        &trace.to_string_lossy(),
        "--samples",
        "3",
        "--interval-ms",
        "100",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.run(&["simulate", "replay", &trace.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("3 record(s), 0 difference(s), 0 violation(s)")
    );

    // Starting again adopts the running cluster instead of creating a new one.
    c.kill_operator();
    let ids_before: Vec<String> = c.topology().into_keys().collect();
    c.up_until_ready();
    let ids_after: Vec<String> = c.topology().into_keys().collect();
    assert_eq!(ids_before, ids_after);
}

#[test]
fn scaling_out_and_in_keeps_every_key_and_every_acknowledged_write() {
    let mut c = LocalCluster::new("scale", 14100, 3, 1);
    c.up_until_ready();
    let mut client = c.cluster_client();
    load_keys(&mut client, "k", 100_000);
    c.start_operator();

    // A client writes throughout, recording which writes Redis acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut client = c.cluster_client();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 200_000 {
                let ok: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(format!("w:{i}"))
                    .arg(i)
                    .query(&mut client);
                if ok.is_ok() {
                    acked.push(i);
                }
                i += 1;
                if i.is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            acked
        })
    };

    c.scale(5, 1);
    c.wait_ready(5, 1, WAIT);
    c.redis_cli_check().unwrap();
    let counts = master_slot_counts(&c.topology());
    assert_eq!(counts.len(), 5);
    let share = 16384.0 / 5.0;
    assert!(
        counts
            .iter()
            .all(|n| (*n as f64 - share).abs() <= share * 0.02),
        "balanced within 2%: {counts:?}"
    );
    assert_eq!(missing_keys(&c, "k", 100_000), Vec::<usize>::new());

    c.scale(3, 1);
    c.wait_ready(3, 1, WAIT);
    c.redis_cli_check().unwrap();
    assert_eq!(missing_keys(&c, "k", 100_000), Vec::<usize>::new());
    // Removed nodes are gone from every remaining node's view.
    let ports: Vec<u16> = (0..6).map(|o| c.port(o)).collect();
    for view in views(&c, &ports) {
        assert_eq!(view.len(), 6, "{view:?}");
    }

    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    assert!(
        acked.len() > 100,
        "the writer made progress ({})",
        acked.len()
    );
    let mut lost = Vec::new();
    for i in &acked {
        let v: Option<u64> = redis::cmd("GET")
            .arg(format!("w:{i}"))
            .query(&mut client)
            .unwrap();
        if v != Some(*i) {
            lost.push(*i);
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn replicas_go_from_one_to_two_to_zero_and_back_to_one() {
    let mut c = LocalCluster::new("replicas", 14200, 3, 1);
    c.up_until_ready();
    let mut client = c.cluster_client();
    load_keys(&mut client, "r", 10_000);
    c.start_operator();
    for replicas in [2, 0, 1] {
        c.scale(3, replicas);
        c.wait_ready(3, replicas, WAIT);
        c.redis_cli_check().unwrap();
        let t = c.topology();
        let replica_count = t.values().filter(|(_, f, _)| f.contains("slave")).count();
        assert_eq!(replica_count, 3 * replicas as usize, "{t:?}");
        assert_eq!(missing_keys(&c, "r", 10_000), Vec::<usize>::new());
    }
}

#[test]
fn a_killed_master_is_replaced_by_its_replica_and_its_member_comes_back_as_a_replica() {
    let mut c = LocalCluster::new("failover", 14300, 3, 1);
    c.up_until_ready();
    let mut client = c.cluster_client();
    load_keys(&mut client, "f", 20_000);
    c.start_operator();
    let before = c.topology();
    let killed_port = c.port(1);
    let killed_id = before
        .iter()
        .find(|(_, (p, _, _))| *p == killed_port)
        .map(|(id, _)| id.clone())
        .unwrap();
    let pid = pid_of(&c.state_dir(), 1);
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();

    c.wait_ready(3, 1, WAIT);
    c.redis_cli_check().unwrap();
    let after = c.topology();
    // Without persistence the replaced master returns as a new node on its port (its old
    // config could otherwise win its slots back empty), and its old id is forgotten.
    let (_, (_, flags, _)) = after
        .iter()
        .find(|(_, (p, _, _))| *p == killed_port)
        .unwrap();
    assert!(
        flags.contains("slave"),
        "the member of the killed master came back as a replica: {flags}"
    );
    assert!(
        !after.contains_key(&killed_id),
        "the killed master's old id is forgotten"
    );
    let missing = missing_keys(&c, "f", 20_000);
    assert!(
        missing.is_empty(),
        "{} keys lost\n{}",
        missing.len(),
        tail(&c.operator_log(), 40)
    );
}

#[test]
fn an_operator_killed_mid_migration_repairs_open_slots_on_restart_without_losing_keys() {
    let mut c = LocalCluster::new("crash", 14400, 3, 0);
    c.up_until_ready();
    let mut client = c.cluster_client();
    load_keys(&mut client, "c", 100_000);
    c.start_operator();
    c.scale(4, 0);
    // Kill the operator as soon as a slot is open somewhere (a migration is under way).
    let mut killed_with_open_slot = false;
    for _ in 0..400 {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut c.conn(c.port(0)))
            .unwrap_or_default();
        let open = (0..4u16).any(|o| {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{}/", c.port(o)))
            else {
                return false;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(300))
            else {
                return false;
            };
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut conn)
                .unwrap_or_default();
            text.lines()
                .any(|l| l.contains("myself") && (l.contains("->-") || l.contains("-<-")))
        });
        if open {
            c.kill_operator();
            killed_with_open_slot = true;
            break;
        }
        let _ = nodes;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        killed_with_open_slot,
        "saw a migration in flight\n{}",
        tail(&c.operator_log(), 20)
    );
    c.up_until_ready();
    c.wait_ready(4, 0, WAIT);
    c.redis_cli_check().unwrap();
    assert_eq!(missing_keys(&c, "c", 100_000), Vec::<usize>::new());
}

#[test]
fn an_invalid_scale_is_refused_and_changes_nothing() {
    let c = LocalCluster::new("invalid", 14500, 3, 0);
    c.up_until_ready();
    let out = c.run(&[
        "local",
        "scale",
        "--name",
        "invalid",
        "--dir",
        &c.state_dir().to_string_lossy(),
        "--masters",
        "2",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.masters") || err.contains("masters"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
    assert_eq!(master_slot_counts(&c.topology()).len(), 3);
}

#[test]
fn down_with_the_default_relative_state_dir_stops_every_node() {
    // Run from the test's own directory with no --dir: the state dir is relative.
    let c = LocalCluster::new("relative", 14600, 3, 0);
    let manifest = c.manifest.to_string_lossy().into_owned();
    let out = c.run(&[
        "local",
        "up",
        "-f",
        &manifest,
        "--listen",
        "off",
        "--until-ready",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.run(&["local", "down", "--name", "relative", "--purge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for port in [14600, 14601, 14602] {
        let alive = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        assert!(!alive, "node on {port} still running after down --purge");
    }
}

/// With no replica and no persistence a killed master comes back empty: that may be right for
/// a cache, but it is never silent. Local mode warns at start, prints the loss with the
/// master, its slots and the keys it held, and keeps reporting it.
#[test]
fn a_master_that_comes_back_empty_is_reported_as_data_lost() {
    let mut c = LocalCluster::new("dataloss", 14700, 3, 0);
    c.up_until_ready();
    let mut client = c.cluster_client();
    load_keys(&mut client, "d", 3_000);
    c.start_operator();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = pid_of(&c.state_dir(), 1);
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut log = String::new();
    while std::time::Instant::now() < deadline {
        log = c.operator_log();
        if log.contains("DATA LOST") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        log.contains("warning: spec.replicas: 0 replicas without persistence"),
        "{}",
        tail(&log, 20)
    );
    let line = log
        .lines()
        .find(|l| l.contains("DATA LOST"))
        .unwrap_or_else(|| panic!("no data loss reported:\n{}", tail(&log, 30)));
    assert!(line.contains("master #1"), "{line}");
    assert!(line.contains("5462-10922"), "{line}");
    let held: u64 = line
        .split("the ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (900..=1100).contains(&held),
        "about a third of 3000 keys: {line}"
    );
    // The condition stays while the cluster serves again.
    c.wait_ready(3, 0, WAIT);
    let log = c.operator_log();
    assert!(log.contains("DEGRADED: master #1"), "{}", tail(&log, 20));
}

/// `maxMemory` and a live-settable `redisConfig` entry edited in the manifest of a running
/// cluster reach every node with `CONFIG SET`: same processes (pids), new values.
#[test]
fn editing_max_memory_and_a_live_setting_reconfigures_running_nodes_without_a_restart() {
    let mut c = LocalCluster::new("liveconf", 14800, 3, 1);
    c.up_until_ready();
    let pids: Vec<String> = (0..6).map(|o| pid_of(&c.state_dir(), o)).collect();
    c.start_operator();
    let text = std::fs::read_to_string(&c.manifest).unwrap();
    let edited = text.replace("maxMemory: 256mb", "maxMemory: 128mb")
        + "  redisConfig:\n    maxmemory-policy: allkeys-lru\n";
    std::fs::write(&c.manifest, edited).unwrap();
    let config = |port: u16, name: &str| -> String {
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query(&mut c.conn(port))
            .unwrap();
        reply.get(1).cloned().unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let applied = (0..6).all(|o| {
            let port = c.port(o);
            config(port, "maxmemory") == "134217728"
                && config(port, "maxmemory-policy") == "allkeys-lru"
        });
        if applied {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "settings not applied; operator log:\n{}",
            tail(&c.operator_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after: Vec<String> = (0..6).map(|o| pid_of(&c.state_dir(), o)).collect();
    assert_eq!(pids, after, "no node was restarted");
    c.wait_ready(3, 1, WAIT);
}
