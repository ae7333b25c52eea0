//! Real HTTP over loopback (ephemeral ports), plus direct calls to the router for volume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    addr: SocketAddr,
    state: HttpState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(metrics: Option<PrometheusHandle>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = HttpState::new(Directory::new(), metrics);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Server {
            addr,
            state,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn call(addr: SocketAddr, method: &str, target: &str) -> Reply {
    let req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    raw(addr, req.as_bytes()).await
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    call(addr, "GET", target).await
}

fn node(ip: &str, port: u16, role: &str, id: &str, master: Option<&str>) -> NodeEntry {
    NodeEntry {
        ip: ip.to_owned(),
        port,
        role: role.to_owned(),
        node_id: id.to_owned(),
        master_id: master.map(str::to_owned),
        slots: if role == "master" {
            "0-16383".into()
        } else {
            String::new()
        },
        healthy: true,
    }
}

#[tokio::test]
async fn the_nodes_endpoint_returns_exactly_ip_and_port_sorted_by_address() {
    let srv = Server::start(None).await;
    srv.state.directory.set_cluster(
        "cache",
        "c1",
        vec![
            node("10.0.0.10", 10001, "replica", "b", Some("a")),
            node("10.0.0.9", 10002, "master", "c", None),
            node("10.0.0.9", 10000, "master", "a", None),
        ],
    );
    let r = get(srv.addr, "/cluster/nodes?clusterName=c1").await;
    assert_eq!(r.status, 200);
    assert!(
        r.head
            .to_lowercase()
            .contains("content-type: application/json")
    );
    assert_eq!(
        r.body,
        r#"[{"ip":"10.0.0.9","port":10000},{"ip":"10.0.0.9","port":10002},{"ip":"10.0.0.10","port":10001}]"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_known_cluster_without_nodes_answers_an_empty_list() {
    let srv = Server::start(None).await;
    srv.state.directory.set_cluster("default", "empty", vec![]);
    let r = get(srv.addr, "/cluster/nodes?clusterName=empty").await;
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    srv.stop().await;
}

#[tokio::test]
async fn a_missing_or_empty_cluster_name_is_a_400_that_names_the_parameter() {
    let srv = Server::start(None).await;
    for target in [
        "/cluster/nodes",
        "/cluster/nodes?",
        "/cluster/nodes?clusterName=",
        "/cluster/nodes?clustername=x",
        "/cluster/nodes/detail?namespace=a",
    ] {
        let r = get(srv.addr, target).await;
        assert_eq!(r.status, 400, "{target}");
        assert!(
            r.json()["error"].as_str().unwrap().contains("clusterName"),
            "{target}"
        );
    }
    let r = get(srv.addr, "/cluster/nodes?clusterName=%FF").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("UTF-8"));
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_cluster_is_a_404_json_error() {
    let srv = Server::start(None).await;
    srv.state.directory.set_cluster("a", "known", vec![]);
    let r = get(srv.addr, "/cluster/nodes?clusterName=nope").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    let r = get(srv.addr, "/cluster/nodes?clusterName=known&namespace=b").await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("namespace \"b\"")
    );
    srv.state.directory.remove_cluster("a", "known");
    assert_eq!(
        get(srv.addr, "/cluster/nodes?clusterName=known")
            .await
            .status,
        404
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_name_in_several_namespaces_is_a_409_listing_them_until_one_is_chosen() {
    let srv = Server::start(None).await;
    let d = &srv.state.directory;
    d.set_cluster(
        "prod",
        "shared",
        vec![node("10.0.0.1", 7000, "master", "p", None)],
    );
    d.set_cluster(
        "dev",
        "shared",
        vec![node("10.0.0.2", 7000, "master", "d", None)],
    );
    let r = get(srv.addr, "/cluster/nodes?clusterName=shared").await;
    assert_eq!(r.status, 409);
    assert!(
        r.json()["error"].as_str().unwrap().contains("dev, prod"),
        "{}",
        r.body
    );
    let r = get(srv.addr, "/cluster/nodes?clusterName=shared&namespace=prod").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"[{"ip":"10.0.0.1","port":7000}]"#)
    );
    srv.stop().await;
}

#[tokio::test]
async fn percent_encoded_names_and_namespaces_are_decoded() {
    let srv = Server::start(None).await;
    srv.state
        .directory
        .set_cluster("ns x", "é/1", vec![node("::1", 7000, "master", "a", None)]);
    let r = get(
        srv.addr,
        "/cluster/nodes?namespace=ns+x&clusterName=%C3%A9%2F1",
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"[{"ip":"::1","port":7000}]"#)
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_detail_view_carries_role_ids_slots_and_health() {
    let srv = Server::start(None).await;
    let mut replica = node("10.0.0.2", 7001, "replica", "r1", Some("m1"));
    replica.healthy = false;
    srv.state.directory.set_cluster(
        "default",
        "c",
        vec![node("10.0.0.1", 7000, "master", "m1", None), replica],
    );
    let r = get(srv.addr, "/cluster/nodes/detail?clusterName=c").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v[0],
        serde_json::json!({"ip":"10.0.0.1","port":7000,"role":"master","nodeId":"m1",
            "masterId":null,"slots":"0-16383","healthy":true})
    );
    assert_eq!(v[1]["masterId"], "m1");
    assert_eq!(v[1]["healthy"], false);
    // The contract endpoint is unchanged beside it.
    let r = get(srv.addr, "/cluster/nodes?clusterName=c").await;
    assert_eq!(
        r.body,
        r#"[{"ip":"10.0.0.1","port":7000},{"ip":"10.0.0.2","port":7001}]"#
    );
    srv.stop().await;
}

#[tokio::test]
async fn healthz_is_ok_and_readyz_turns_200_only_once_flagged() {
    let srv = Server::start(None).await;
    let r = get(srv.addr, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(get(srv.addr, "/readyz").await.status, 503);
    srv.state.set_ready(true);
    assert_eq!(get(srv.addr, "/readyz").await.status, 200);
    srv.state.set_ready(false);
    assert_eq!(get(srv.addr, "/readyz").await.status, 503);
    srv.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_from_the_handle_and_503_without_one() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("redis_operator_test_total").increment(3);
    });
    let srv = Server::start(Some(handle)).await;
    let r = get(srv.addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.head.contains("text/plain; version=0.0.4"));
    assert!(r.body.contains("redis_operator_test_total 3"), "{}", r.body);
    srv.stop().await;

    let srv = Server::start(None).await;
    let r = get(srv.addr, "/metrics").await;
    assert_eq!(r.status, 503);
    assert!(r.json()["error"].is_string());
    srv.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_json_and_other_methods_405_json() {
    let srv = Server::start(None).await;
    let r = get(srv.addr, "/cluster").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("/cluster"));
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let r = call(srv.addr, method, "/cluster/nodes?clusterName=x").await;
        assert_eq!(r.status, 405, "{method}");
        assert!(r.head.to_lowercase().contains("allow: get"), "{method}");
        if method != "HEAD" {
            assert!(r.json()["error"].as_str().unwrap().contains("GET"));
        }
    }
    assert_eq!(call(srv.addr, "POST", "/nope").await.status, 404);
    srv.stop().await;
}

/// Sends `request` while reading the answer (the server may answer and close before it has
/// read everything); returns the status, or 0 when the server closed without answering.
async fn status_of_oversized(addr: SocketAddr, request: &[u8]) -> u16 {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let body = request.to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&body).await;
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut buf))
        .await
        .expect("the server answers or closes");
    writer.abort();
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_huge_query_or_header_is_refused_with_a_4xx_and_a_long_name_is_a_plain_404() {
    let srv = Server::start(None).await;
    // Long but within the 16 KiB head limit: reaches the router, which answers as for any
    // name.
    let r = get(
        srv.addr,
        &format!("/cluster/nodes?clusterName={}", "x".repeat(8_000)),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let mb = 1 << 20;
    let query = format!(
        "GET /cluster/nodes?clusterName={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "y".repeat(mb)
    );
    let header = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "z".repeat(mb)
    );
    for (what, req) in [("query", query), ("header", header)] {
        let status = status_of_oversized(srv.addr, req.as_bytes()).await;
        assert!((400..500).contains(&status), "a 1 MiB {what} gave {status}");
    }
    // The server still answers afterwards.
    assert_eq!(get(srv.addr, "/healthz").await.status, 200);
    srv.stop().await;
}

#[tokio::test]
async fn raw_bytes_that_are_not_utf8_in_the_request_line_or_a_header_are_a_400_or_ignored() {
    let srv = Server::start(None).await;
    srv.state.directory.set_cluster("ns", "c1", vec![]);
    let line =
        b"GET /cluster/nodes?clusterName=\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(srv.addr, line).await.status, 400);
    // Header values may carry any byte (obs-text); the API reads none, so the answer is the
    // one without the header.
    let header =
        b"GET /cluster/nodes?clusterName=c1 HTTP/1.1\r\nHost: t\r\nX-Name: \xff\xfe\r\nConnection: close\r\n\r\n";
    let r = raw(srv.addr, header).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "[]");
    srv.stop().await;
}

/// xorshift64*: reproducible "random" input without another dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn random_query(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "clusterName",
        "namespace",
        "=",
        "&",
        "%",
        "%2",
        "%FF",
        "%C3",
        "%A9",
        "%00",
        "+",
        "c1",
        "ns",
        "a",
        "%3D",
        "%26",
        "é",
        "🦀",
        "?",
        "#",
        " ",
        "\\",
        "\"",
        ";",
        "%%",
        "..",
        "/",
        "",
    ];
    let len = rng.next() % 12;
    (0..len).map(|_| rng.pick(PIECES)).collect()
}

#[test]
fn arbitrary_query_strings_never_give_a_server_error_from_the_router() {
    let state = HttpState::new(Directory::new(), None);
    state
        .directory
        .set_cluster("ns", "c1", vec![node("10.0.0.1", 1, "master", "a", None)]);
    state.directory.set_cluster("a", "c1", vec![]);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    for _ in 0..20_000 {
        let q = random_query(&mut rng);
        let path = rng.pick(&["/cluster/nodes", "/cluster/nodes/detail"]);
        // Strings that are not a valid request target never reach the router: hyper refuses
        // them with its own 400 (checked over the network below).
        let Ok(req) = Request::get(format!("{path}?{q}")).body(()) else {
            continue;
        };
        let r = respond(&state, &req);
        assert!(!r.status().is_server_error(), "{q:?} gave {}", r.status());
        checked += 1;
    }
    assert!(checked > 5_000, "too few valid targets ({checked})");
}

#[tokio::test]
async fn arbitrary_query_strings_never_give_a_server_error_over_the_wire() {
    let srv = Server::start(None).await;
    srv.state.directory.set_cluster("ns", "c1", vec![]);
    let mut rng = Rng(42);
    for _ in 0..150 {
        let q = random_query(&mut rng);
        let req =
            format!("GET /cluster/nodes?{q} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let r = raw(srv.addr, req.as_bytes()).await;
        assert!(r.status < 500, "{q:?} gave {}", r.status);
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let srv = Server::start(None).await;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(HEADER_READ_TIMEOUT * 4, s.read_to_end(&mut buf))
        .await
        .expect("the server hung up on the slow client")
        .ok();
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_lets_serve_return_and_stops_accepting() {
    let srv = Server::start(None).await;
    let addr = srv.addr;
    // An idle keep-alive connection must not hold shutdown up.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    tokio::time::timeout(Duration::from_secs(3), srv.stop())
        .await
        .expect("serve returned promptly");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn the_metrics_recorder_installs_once_per_process() {
    let handle = install_metrics_recorder().expect("first install succeeds");
    metrics::counter!("redis_operator_install_check_total").increment(1);
    assert!(
        handle
            .render()
            .contains("redis_operator_install_check_total 1")
    );
    assert!(install_metrics_recorder().is_err());
}

/// `n` nodes as a scale-out leaves them: the first `n / 2` masters, the rest their replicas.
fn cluster_of(n: u16) -> Vec<NodeEntry> {
    (0..n)
        .map(|i| {
            let id = format!("{i:040x}");
            if i < n / 2 {
                node(
                    &format!("10.1.{}.{}", i / 200, i % 200),
                    6379,
                    "master",
                    &id,
                    None,
                )
            } else {
                let master = format!("{:040x}", i - n / 2);
                node(
                    &format!("10.1.{}.{}", i / 200, i % 200),
                    6379,
                    "replica",
                    &id,
                    Some(&master),
                )
            }
        })
        .collect()
}

fn addresses_body(entries: &[NodeEntry]) -> String {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::json!({ "ip": e.ip, "port": e.port }))
        .collect();
    serde_json::to_string(&list).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_scale_out_every_answer_is_the_whole_old_list_or_the_whole_new_one() {
    let srv = Server::start(None).await;
    let before = cluster_of(200);
    let after = cluster_of(220);
    // What each list must look like on the wire, computed apart from the server's cache (the
    // directory sorts by address; these addresses already are in that order once parsed).
    let mut sorted_before = before.clone();
    let mut sorted_after = after.clone();
    for l in [&mut sorted_before, &mut sorted_after] {
        l.sort_by_key(|e| (e.ip.parse::<std::net::IpAddr>().ok(), e.port));
    }
    let (old_body, new_body) = (
        addresses_body(&sorted_before),
        addresses_body(&sorted_after),
    );
    srv.state
        .directory
        .set_cluster("default", "grow", before.clone());

    // The writer flips between the two shapes as fast as it can, as passes during a scale-out
    // would (only far faster), and ends on the new one.
    let directory = srv.state.directory.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..400 {
            let list = if i % 2 == 0 { &after } else { &before };
            directory.set_cluster("default", "grow", list.clone());
        }
        directory.set_cluster("default", "grow", after);
    });
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (addr, old_body, new_body) = (srv.addr, old_body.clone(), new_body.clone());
        readers.push(tokio::spawn(async move {
            let (mut old, mut new) = (0, 0);
            for _ in 0..50 {
                let r = get(addr, "/cluster/nodes?clusterName=grow").await;
                assert_eq!(r.status, 200);
                if r.body == old_body {
                    old += 1;
                } else if r.body == new_body {
                    new += 1;
                } else {
                    panic!(
                        "a mixed or partial list of {} bytes: {}",
                        r.body.len(),
                        r.body
                    );
                }
            }
            (old, new)
        }));
    }
    for r in readers {
        r.await.unwrap();
    }
    writer.join().unwrap();
    // Once the writer is done, the new list is what everyone gets: the cache was rebuilt.
    let r = get(srv.addr, "/cluster/nodes?clusterName=grow").await;
    assert_eq!(r.body, new_body);
    let detail = get(srv.addr, "/cluster/nodes/detail?clusterName=grow").await;
    assert_eq!(detail.json().as_array().map(Vec::len), Some(220));
    srv.stop().await;
}

#[test]
fn setting_the_same_nodes_again_keeps_the_published_answer() {
    let directory = Directory::new();
    directory.set_cluster("default", "c", cluster_of(10));
    let Lookup::Found(first) = directory.lookup("c", None) else {
        panic!("the cluster is known");
    };
    directory.set_cluster("default", "c", cluster_of(10));
    let Lookup::Found(again) = directory.lookup("c", None) else {
        panic!("the cluster is known");
    };
    assert!(
        Arc::ptr_eq(&first, &again),
        "unchanged nodes are not serialised again"
    );
    directory.set_cluster("default", "c", cluster_of(12));
    let Lookup::Found(changed) = directory.lookup("c", None) else {
        panic!("the cluster is known");
    };
    assert_eq!(changed.entries.len(), 12);
    assert_eq!(
        std::str::from_utf8(&changed.addresses_json).unwrap(),
        addresses_body(&changed.entries)
    );
}

#[tokio::test]
async fn connections_over_the_limit_get_a_503_and_the_api_serves_again_once_they_close() {
    let srv = Server::start(None).await;
    // Idle clients holding every connection the server serves at once.
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(srv.addr).await.unwrap());
    }
    // Let the server accept them all before the next one arrives.
    let mut refused = None;
    for _ in 0..50 {
        let r = get(srv.addr, "/healthz").await;
        if r.status == 503 {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("a connection over the limit is refused");
    assert!(
        refused.body.contains("too many connections"),
        "{}",
        refused.body
    );
    drop(idle);
    let mut served = None;
    for _ in 0..100 {
        let r = get(srv.addr, "/healthz").await;
        if r.status == 200 {
            served = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served.is_some(),
        "the API serves again once the idle clients left"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_request_head_over_the_size_limit_is_refused_without_routing() {
    let srv = Server::start(None).await;
    let huge = "a".repeat(MAX_REQUEST_HEAD * 2);
    let req = format!(
        "GET /cluster/nodes?clusterName={huge} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    // The server may hang up before reading all of it; only its answer matters.
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "an oversized head is refused with 431: {text:?}"
    );
    assert!(
        !text.contains("clusterName"),
        "nothing was routed: {text:?}"
    );
    // The server is unharmed.
    assert_eq!(get(srv.addr, "/healthz").await.status, 200);
    srv.stop().await;
}
