//! The bodies of the fuzz targets.

use engine::invariants::check_decision;
use engine::{Desired, Observation, Phase, SLOT_COUNT};
use http_body_util::BodyExt;
use std::sync::OnceLock;

/// A target: its name (the cargo-fuzz binary and the seed directory) and its body.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the harness and the docs list them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "cluster_nodes",
        run: cluster_nodes,
    },
    Target {
        name: "cluster_info",
        run: cluster_info,
    },
    Target {
        name: "manifest",
        run: manifest,
    },
    Target {
        name: "http_request",
        run: http_request,
    },
    Target {
        name: "trace_replay",
        run: trace_replay,
    },
    Target {
        name: "decide",
        run: decide,
    },
];

/// `CLUSTER NODES` replies: an error or nodes whose ids, slots and open slots are in range,
/// never a panic. Invalid UTF-8 is read the way the adapter would never see it (lossily), so
/// every byte string reaches the parser.
pub fn cluster_nodes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(nodes) = engine::parse::parse_cluster_nodes(&text) else {
        return;
    };
    for n in &nodes {
        assert!(
            n.id.len() == 40 && n.id.bytes().all(|b| b.is_ascii_hexdigit()),
            "parsed a node id that is not 40 hex digits: {:?}",
            n.id
        );
        for r in &n.slots {
            assert!(
                r.start <= r.end && r.end < SLOT_COUNT,
                "parsed slot range {}-{} outside 0-16383",
                r.start,
                r.end
            );
        }
        for o in &n.open_slots {
            assert!(o.slot() < SLOT_COUNT, "parsed open slot {}", o.slot());
        }
    }
}

/// A well-formed `CLUSTER NODES` reply, so that `cluster_info` inputs reach the INFO readers.
const MYSELF: &str = "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-16383\n";

/// `CLUSTER INFO` and `INFO replication` replies, as the observer turns them into a node's
/// state (input: the two replies separated by a NUL byte). Fields that are missing or not
/// numbers read as 0; nothing panics, and a key never swallows a line break or a colon (a
/// lone carriage return is not a line break: Redis ends lines with CRLF, never CR alone).
pub fn cluster_info(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (info, repl) = text.split_once('\0').unwrap_or((&text, ""));
    for map in [
        engine::parse::parse_info(info),
        engine::parse::parse_info(repl),
    ] {
        for key in map.keys() {
            assert!(
                !key.contains([':', '\n']),
                "INFO key {key:?} holds a separator"
            );
        }
    }
    let state = redis_backend::node_state_from_replies(MYSELF, info, repl, 7);
    let state = match state {
        Ok(s) => s,
        Err(e) => panic!("a valid CLUSTER NODES reply was refused because of INFO: {e}"),
    };
    assert_eq!(state.keys, 7, "the key count is DBSIZE's, not INFO's");
    // The same bytes as a CLUSTER NODES reply: an error or a state, never a panic.
    let _ = redis_backend::node_state_from_replies(&text, info, repl, 0);
}

/// A `RedisCluster` manifest as `validate`, `local up` and the controller read it: parsing,
/// validation (alone and as a change from itself), warnings, and the engine's view of it.
/// A spec with no problem must give the engine a [`Desired`] with no problem, that it can
/// decide on from nothing without breaking an invariant.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cluster) = spec::parse_manifest(text) else {
        return;
    };
    let problems = spec::validate(&cluster.spec, None);
    let _ = spec::validate(&cluster.spec, Some(&cluster.spec));
    let _ = spec::warnings(&cluster.spec);
    let desired = controller::desired::desired_from(&cluster.spec, None);
    assert_eq!(
        desired.problems.len(),
        problems.len(),
        "the engine must hear of every validation problem"
    );
    if problems.is_empty() {
        assert!(
            desired.masters >= spec::defaults::MIN_MASTERS,
            "a valid spec gave {} masters",
            desired.masters
        );
        if desired.total_nodes() <= MAX_DECIDE_NODES {
            let obs = Observation::default();
            let d = engine::decide(&desired, Phase::default(), &obs);
            let v = check_decision(&desired, &obs, &d);
            assert!(v.is_empty(), "deciding a valid spec from nothing: {v:?}");
        }
    }
}

/// The HTTP API as a client reaches it: the bytes go through the server's own connection
/// handling (hyper's parser, limits and the router) on an in-memory pipe, and the request
/// line alone through the router. No input may get a server error (500) or a panic; every
/// error the router gives is a JSON object with an `error` field.
pub fn http_request(data: &[u8]) {
    let state = http_state();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let reply = rt.block_on(over_the_wire(state.clone(), data));
    if let Some(status) = reply
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| std::str::from_utf8(s).ok())
    {
        assert_ne!(
            status,
            "500",
            "a server error for {:?}",
            String::from_utf8_lossy(data)
        );
    }
    // The request line through the router directly, for every input whose method and target
    // would pass hyper's parser.
    let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = line.trim_ascii().splitn(3, |b| *b == b' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let Ok(req) = hyper::Request::builder()
        .method(method)
        .uri(target)
        .body(())
    else {
        return;
    };
    let resp = controller::http::respond(state, &req);
    let status = resp.status();
    assert!(
        !status.is_server_error() || status.as_u16() == 503,
        "{status} for {req:?}"
    );
    if status.is_client_error() {
        let body = rt
            .block_on(resp.into_body().collect())
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => panic!("{status} body is not JSON ({e}): {body:?}"),
        };
        assert!(
            json.get("error").is_some_and(|e| e.is_string()),
            "{status} without an error: {json}"
        );
    }
}

/// One state for every input: two clusters, one name in two namespaces.
fn http_state() -> &'static controller::http::HttpState {
    static STATE: OnceLock<controller::http::HttpState> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = controller::http::Directory::new();
        let node = |ip: &str, port| controller::http::NodeEntry {
            ip: ip.to_string(),
            port,
            role: "master".into(),
            node_id: "07c37dfeb235213a872192d90877d0cd55635b91".into(),
            master_id: None,
            slots: "0-16383".into(),
            healthy: true,
        };
        dir.set_cluster("default", "cache", vec![node("10.0.0.1", 6379)]);
        dir.set_cluster("a", "shared", vec![node("10.0.0.2", 6379)]);
        dir.set_cluster("b", "shared", vec![node("::1", 7000)]);
        let state = controller::http::HttpState::new(dir, None);
        state.set_ready(true);
        state
    })
}

/// Writes `data` as a client that then closes its side, and returns all the server answered.
async fn over_the_wire(state: controller::http::HttpState, data: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (mut rd, mut wr) = tokio::io::split(client);
    let serve = controller::http::serve_connection(server, "fuzz", state, stop);
    let write = async move {
        // The server may close first (after an error answer): a broken pipe is expected.
        let _ = wr.write_all(data).await;
        let _ = wr.shutdown().await;
    };
    let read = async move {
        let mut reply = Vec::new();
        let _ = rd.read_to_end(&mut reply).await;
        reply
    };
    let ((), (), reply) = tokio::join!(serve, write, read);
    reply
}

/// A JSON Lines trace through `simulate replay`'s reader: a summary or an error naming the
/// line, never a panic; the summary is the last line written.
pub fn trace_replay(data: &[u8]) {
    let mut out = Vec::new();
    if let Ok(summary) = sim::replay::replay(data, &mut out, false) {
        let last = String::from_utf8_lossy(&out);
        let expected = format!("{} record(s),", summary.records);
        assert!(
            last.lines()
                .last()
                .is_some_and(|l| l.starts_with(&expected)),
            "the replay did not end with its summary"
        );
    }
}

/// Larger clusters than this are valid but make a single decision slow enough to starve the
/// fuzzer; the simulator covers them.
const MAX_DECIDE_NODES: u32 = 256;

/// A desired shape a valid spec could produce (see `controller::desired::desired_from`);
/// the engine is only ever handed those.
fn plausible(d: &Desired) -> bool {
    d.masters >= spec::defaults::MIN_MASTERS
        && d.replicas <= spec::defaults::MAX_REPLICAS
        && d.total_nodes() <= MAX_DECIDE_NODES
        && spec::validation::CLUSTER_NODE_TIMEOUT_MS.contains(&d.node_timeout_ms)
        && spec::validation::REBALANCE_THRESHOLD_PERCENT.contains(&d.rebalance_threshold_pct)
}

/// `decide` on an arbitrary observation (JSON `[desired, phase, observation]`; the
/// observation's own deserialisation refuses slots out of range): no panic, the same decision
/// twice, and no invariant of `engine::invariants` broken by it.
pub fn decide(data: &[u8]) {
    let Ok((desired, phase, obs)) = serde_json::from_slice::<(Desired, Phase, Observation)>(data)
    else {
        return;
    };
    if !plausible(&desired) {
        return;
    }
    let d = engine::decide(&desired, phase, &obs);
    assert_eq!(
        d,
        engine::decide(&desired, phase, &obs),
        "decide is not deterministic"
    );
    let v = check_decision(&desired, &obs, &d);
    assert!(
        v.is_empty(),
        "the decision breaks an invariant: {v:?}\ndecision: {d:?}"
    );
}
