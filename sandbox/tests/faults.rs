//! Injected faults: cut watches, forced 410, 409s, latency and downtime, seen through
//! kube-rs.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{api_error, config_map, start};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;

async fn next_event(
    stream: &mut (
             impl futures_util::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin
         ),
) -> watcher::Event<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event in time")
        .expect("open")
        .expect("no error")
}

/// Skips events until an Apply/InitApply of `name`, counting the Init events passed.
async fn until_applied(
    stream: &mut (
             impl futures_util::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin
         ),
    name: &str,
) -> usize {
    let mut inits = 0;
    loop {
        match next_event(stream).await {
            watcher::Event::Init => inits += 1,
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) if o.name_any() == name => {
                return inits;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_cut_watch_ends_the_stream_and_a_resume_loses_nothing() {
    let (sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap();
    let started = Instant::now();
    sb.faults().cut_watches();
    let events: Vec<_> = stream.collect().await;
    assert!(
        events.is_empty() && started.elapsed() < Duration::from_secs(5),
        "the stream ends at once"
    );

    let mut runtime = watcher(api.clone(), watcher::Config::default()).boxed();
    api.create(&PostParams::default(), &config_map("before", &[]))
        .await
        .unwrap();
    assert_eq!(until_applied(&mut runtime, "before").await, 1);
    sb.faults().cut_watches();
    api.create(&PostParams::default(), &config_map("after", &[]))
        .await
        .unwrap();
    assert_eq!(
        until_applied(&mut runtime, "after").await,
        0,
        "resumed from its version, no new list"
    );
}

#[tokio::test]
async fn a_compacted_history_makes_a_cut_watcher_list_again() {
    let (sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut runtime = watcher(api.clone(), watcher::Config::default()).boxed();
    api.create(&PostParams::default(), &config_map("first", &[]))
        .await
        .unwrap();
    until_applied(&mut runtime, "first").await;
    api.create(&PostParams::default(), &config_map("missed", &[]))
        .await
        .unwrap();
    sb.faults().compact();
    sb.faults().cut_watches();
    // The resume gets 410 Gone; the watcher reports the error, then lists again.
    let mut inits = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let next = tokio::time::timeout_at(deadline, runtime.next())
            .await
            .expect("relist in time")
            .expect("open");
        match next {
            Ok(watcher::Event::Init) => inits += 1,
            Ok(watcher::Event::InitApply(o)) if o.name_any() == "missed" && inits > 0 => break,
            _ => {}
        }
    }
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let old = (rv.parse::<u64>().unwrap() - 1).to_string();
    let mut raw = api
        .watch(&WatchParams::default().timeout(2), &old)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(raw.next().await, Some(Ok(WatchEvent::Error(s))) if s.code == 410));
}

#[tokio::test]
async fn injected_conflicts_fail_the_next_writes_of_that_resource_only() {
    let (sb, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client);
    sb.faults().inject_conflicts("configmaps", 2);
    let mut secret = Secret::default();
    secret.metadata.name = Some("s".into());
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            api_error(
                cms.create(&PostParams::default(), &config_map("c", &[]))
                    .await
            )
            .0,
            409
        );
    }
    cms.create(&PostParams::default(), &config_map("c", &[]))
        .await
        .unwrap();
    assert!(cms.get("c").await.is_ok(), "reads are never failed");
}

#[tokio::test]
async fn injected_errors_fail_the_next_writes_of_that_resource_with_500() {
    let (sb, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    sb.faults().inject_errors("configmaps", 1);
    assert_eq!(
        api_error(
            cms.create(&PostParams::default(), &config_map("e", &[]))
                .await
        )
        .0,
        500
    );
    cms.create(&PostParams::default(), &config_map("e", &[]))
        .await
        .unwrap();
}

#[tokio::test]
async fn injected_latency_delays_every_request_until_turned_off() {
    let (sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    sb.faults().set_latency(Duration::from_millis(300));
    let started = Instant::now();
    api.list(&Default::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    sb.faults().set_latency(Duration::ZERO);
    let started = Instant::now();
    api.list(&Default::default()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300));
}

/// One raw GET, so no client retry hides the answer; returns the status code.
async fn raw_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer kube-sandbox-admin\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_downed_api_answers_503_until_it_comes_back() {
    let (sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let path = "/api/v1/namespaces/default/configmaps";
    assert_eq!(raw_status(sb.addr(), path).await, 200);
    sb.faults().api_down_for(Duration::from_millis(700));
    let started = Instant::now();
    assert_eq!(raw_status(sb.addr(), path).await, 503);
    // kube-rs retries 503 with backoff, so its call returns once the API is back.
    api.list(&Default::default()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(raw_status(sb.addr(), path).await, 200);
}
