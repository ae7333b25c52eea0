//! A password given to local mode never shows: a cluster with one goes through creation,
//! scale-out, a master's failover and refused commands, and then every operator log line
//! (at debug level), the recorded trace, every command's output, every HTTP answer
//! (metrics included) and every node's own log are searched for it. Ports 19000-19099.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::*;

const PASSWORD: &str = "pw-7f3c9e1b-never-shown";

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn http(port: u16, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_password_never_appears_in_logs_traces_status_metrics_or_http_answers() {
    let mut c = LocalCluster::new("secret", 19000, 3, 1).with_password(PASSWORD);
    let mut seen: Vec<(String, String)> = Vec::new();
    seen.push((
        "local up --until-ready".into(),
        output_text(&c.up_until_ready()),
    ));

    let trace = c.dir.join("trace.jsonl").to_string_lossy().into_owned();
    c.start_operator_with(&["--record", &trace], "debug");
    c.scale(4, 1);
    c.wait_ready(4, 1, Duration::from_secs(180));

    // A master dies: its replica takes over and the member comes back as a replica.
    let pid = pid_of(&c.state_dir(), 1);
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    c.wait_ready(4, 1, Duration::from_secs(120));

    // Refusals: an invalid scale, and a second `up` for a cluster already run.
    let name = ["--name", "secret", "--dir"];
    let dir = c.state_dir().to_string_lossy().into_owned();
    let bad_scale = c.run(&[&["local", "scale"][..], &name, &[&dir, "--masters", "0"]].concat());
    assert!(!bad_scale.status.success());
    seen.push(("an invalid local scale".into(), output_text(&bad_scale)));
    let manifest = c.manifest.to_string_lossy().into_owned();
    let second = c.run(&[
        "local", "up", "-f", &manifest, "--dir", &dir, "--listen", "off",
    ]);
    assert!(!second.status.success());
    seen.push(("a second local up".into(), output_text(&second)));
    let status = c.run(&[&["local", "status"][..], &name, &[&dir]].concat());
    seen.push(("local status".into(), output_text(&status)));

    for path in [
        "/cluster/nodes?clusterName=secret",
        "/cluster/nodes/detail?clusterName=secret",
        "/cluster/nodes?clusterName=nope",
        "/metrics",
        "/healthz",
        "/readyz",
        "/no/such/path",
    ] {
        seen.push((format!("GET {path}"), http(c.http_port, path)));
    }
    c.kill_operator();
    seen.push(("the operator log".into(), c.operator_log()));
    seen.push((
        "the trace".into(),
        std::fs::read_to_string(&trace).unwrap_or_default(),
    ));
    for ordinal in 0..8 {
        let log = c.state_dir().join(format!("node-{ordinal}/redis.log"));
        seen.push((
            format!("node {ordinal}'s log"),
            std::fs::read_to_string(log).unwrap_or_default(),
        ));
    }

    // The search means something only if the places searched hold what they should.
    let text_of = |what: &str| &seen.iter().find(|(w, _)| w == what).unwrap().1;
    assert!(text_of("GET /metrics").contains("redis_operator_"));
    assert!(text_of("GET /cluster/nodes/detail?clusterName=secret").contains("\"role\""));
    assert!(text_of("the trace").lines().count() > 3);
    assert!(text_of("the operator log").contains("DEBUG"));
    assert!(text_of("an invalid local scale").contains("nothing changed"));
    assert!(text_of("a second local up").contains("already running"));
    for (place, text) in &seen {
        assert!(!text.contains(PASSWORD), "{place} shows the password");
    }
}
