//! Serves a synthetic cluster through the operator's real HTTP server, for `bench/http_api.py`:
//! `cargo run --release -p redis-operator-controller --example serve_directory -- PORT NODES BODY_OUT`
//!
//! Binds 127.0.0.1:PORT, publishes one cluster named `bench` (namespace `default`) of NODES
//! nodes (half masters with slots, half replicas; addresses 10.0.x.y:6379 are never dialled),
//! writes the exact `GET /cluster/nodes?clusterName=bench` body to BODY_OUT (what nginx serves
//! as the peer) and serves until SIGINT.
#![forbid(unsafe_code)]

use controller::http::{Directory, HttpState, NodeEntry, respond, serve};
use http_body_util::BodyExt;
use hyper::Request;

fn entries(n: u16) -> Vec<NodeEntry> {
    let masters = n.div_ceil(2);
    (0..n)
        .map(|i| {
            let master = i < masters;
            let id = |k: u16| format!("{:040x}", 0xbe00_0000u64 + u64::from(k));
            NodeEntry {
                ip: format!("10.0.{}.{}", i / 250, i % 250 + 1),
                port: 6379,
                role: if master { "master" } else { "replica" }.to_string(),
                node_id: id(i),
                master_id: (!master).then(|| id(i - masters)),
                slots: if master {
                    let per = 16384 / u32::from(masters);
                    format!("{}-{}", u32::from(i) * per, u32::from(i) * per + per - 1)
                } else {
                    String::new()
                },
                healthy: true,
            }
        })
        .collect()
}

fn usage(why: &str) -> ! {
    eprintln!("serve_directory: {why} (usage: serve_directory PORT NODES BODY_OUT)");
    std::process::exit(2);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, nodes, body_out] = args.as_slice() else {
        usage("three arguments expected");
    };
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| usage("PORT is not a port number"));
    let nodes: u16 = nodes
        .parse()
        .ok()
        .filter(|n| (1..=5000).contains(n))
        .unwrap_or_else(|| usage("NODES must be 1-5000"));

    let directory = Directory::new();
    directory.set_cluster("default", "bench", entries(nodes));
    // The operator installs its metrics recorder, so every request counts itself as there.
    let metrics = match controller::http::install_metrics_recorder() {
        Ok(handle) => Some(handle),
        Err(e) => usage(&format!("installing the metrics recorder failed: {e}")),
    };
    let state = HttpState::new(directory, metrics);
    state.set_ready(true);

    // The body nginx serves is the one our router gives, byte for byte.
    let req = Request::get("/cluster/nodes?clusterName=bench")
        .body(())
        .unwrap_or_else(|_| usage("building the request failed"));
    let body = match respond(&state, &req).into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => match e {},
    };
    if let Err(e) = std::fs::write(body_out, &body) {
        usage(&format!("cannot write {body_out}: {e}"));
    }

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => usage(&format!("cannot bind 127.0.0.1:{port}: {e}")),
    };
    println!(
        "serving {nodes} nodes ({} bytes) on 127.0.0.1:{port}",
        body.len()
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = serve(listener, state, stop).await {
        eprintln!("serve_directory: server failed: {e}");
        std::process::exit(1);
    }
}
