//! A master that is merely silent (SIGSTOP: its process runs, it answers nobody) is never
//! failed over by the operator: the early failover (`engine::failover`, a replica forced at
//! once) is for masters whose process is gone. Real redis-server processes on ports
//! 21000-21005 (bus ports 31000-31005), HTTP on 21099.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(180);

fn signal(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The node timeout is 15 s and the pause 6 s: Redis does not fail the master over, and the
/// operator, which looks at least every 2 s while the cluster is ready, sees it silent
/// several times. Forced early, the replica would have been promoted within a pass.
#[test]
fn a_paused_master_is_not_failed_over_and_serves_its_keys_again_when_resumed() {
    let mut c = LocalCluster::new("pause", 21000, 3, 1).with_node_timeout(15_000);
    c.up_until_ready();
    let mut client = c.cluster_client();
    load_keys(&mut client, "p", 5_000);
    c.start_operator();
    let paused_port = c.port(1);
    let before = c.topology();
    let (paused_id, _) = before
        .iter()
        .find(|(_, (p, _, _))| *p == paused_port)
        .map(|(id, v)| (id.clone(), v.clone()))
        .unwrap();
    let pid = pid_of(&c.state_dir(), 1);
    signal(&pid, "-STOP");
    std::thread::sleep(Duration::from_secs(6));
    signal(&pid, "-CONT");

    c.wait_ready(3, 1, WAIT);
    let after = c.topology();
    let (_, (port, flags, slots)) = after
        .get_key_value(&paused_id)
        .expect("the paused master keeps its id");
    assert_eq!(*port, paused_port);
    assert!(
        flags.contains("master") && *slots > 0,
        "the paused master is still a master with its slots: {flags}, {slots} slots\n{}",
        tail(&c.operator_log(), 40)
    );
    let log = c.operator_log();
    assert!(
        !log.contains("CLUSTER FAILOVER"),
        "the operator ordered a failover while the master was only paused:\n{}",
        tail(&log, 40)
    );
    let missing = missing_keys(&c, "p", 5_000);
    assert!(missing.is_empty(), "{} keys lost", missing.len());
}
