//! The operator's HTTP API, on hyper 1 (HTTP/1.1):
//!
//! - `GET /cluster/nodes?clusterName=NAME[&namespace=NS]` → `[{"ip":"…","port":N},…]`, the seed
//!   project's contract, unchanged;
//! - `GET /cluster/nodes/detail?…` → the same nodes with role, ids, slots and health;
//! - `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text).
//!
//! Every answer comes from the in-memory [`Directory`]; no request reaches a backend.

mod directory;
mod query;

pub use directory::{Directory, Lookup, NodeEntry, Published};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// A client gets this long to send its request headers; a slow or idle one cannot hold a
/// connection (and its task) forever. Shorter under test so the bound can be checked quickly.
const HEADER_READ_TIMEOUT: Duration = if cfg!(test) {
    Duration::from_secs(1)
} else {
    Duration::from_secs(10)
};
/// Connections served at once. One more is answered `503` and closed at once: idle or slow
/// clients can hold at most this many tasks and sockets, and each of them only for the header
/// timeout. Smaller under test so the bound can be reached quickly.
const MAX_CONNECTIONS: usize = if cfg!(test) { 8 } else { 256 };
/// The largest request head read (request line and headers); a longer one is refused by
/// hyper with `431` before anything is routed. Every request this API serves fits in a
/// fraction of it.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long shutdown waits for requests in flight before dropping their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub directory: Directory,
    ready: Arc<AtomicBool>,
    metrics: Option<PrometheusHandle>,
}

impl HttpState {
    /// Not ready until [`HttpState::set_ready`]; `/metrics` answers 503 without a handle.
    pub fn new(directory: Directory, metrics: Option<PrometheusHandle>) -> Self {
        Self {
            directory,
            ready: Arc::new(AtomicBool::new(false)),
            metrics,
        }
    }

    /// Flip `/readyz` (e.g. once the first reconcile pass has filled the directory).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Install the process-wide Prometheus recorder. Call once per process: a second call fails
/// because the `metrics` facade accepts a single global recorder.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(crate::telemetry::RECONCILE_DURATION.to_string()),
            crate::telemetry::RECONCILE_BUCKETS,
        )?
        .install_recorder()?;
    crate::telemetry::describe();
    Ok(handle)
}

/// Serves the API on `listener` in a task of its own until `stop` turns true (the shells'
/// shutdown signal); the handle ends once requests in flight are done.
pub fn spawn_server(
    listener: TcpListener,
    state: HttpState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = serve(listener, state, shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}

/// Serve the API on `listener` until `shutdown` completes, then stop accepting, let requests
/// in flight finish (bounded by a grace period) and return.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "HTTP API listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let serve = serve_connection(stream, peer, state.clone(), stop_rx.clone());
                        conns.spawn(async move {
                            serve.await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, limit = MAX_CONNECTIONS, "HTTP connection refused: too many open");
                        conns.spawn(refuse_busy(stream));
                    }
                },
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning on a full fd table.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow with every client.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!(
            left = conns.len(),
            "HTTP connections still open after the grace period; dropping them"
        );
        conns.abort_all();
    }
    tracing::info!(addr = %local, "HTTP API stopped");
    Ok(())
}

/// Answers `503` without reading the request and closes; bounded by the header timeout so a
/// peer that never reads cannot hold the task.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(HEADER_READ_TIMEOUT, async {
        let body = r#"{"error":"too many connections; try again later"}"#;
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serves one HTTP/1.1 connection on any byte stream until the client closes it or `stop`
/// turns true: a socket in [`serve`], an in-memory pipe in the fuzz targets, so that both run
/// the same parser, limits and router.
pub async fn serve_connection<S>(
    stream: S,
    peer: impl std::fmt::Display,
    state: HttpState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let resp = respond(&state, &req);
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        res = conn.as_mut() => res,
        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            // Finish the request in flight, then close; idle keep-alive connections close now.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// The whole router: a pure function of the state and the request line, so tests can call it
/// without a socket.
pub fn respond<B>(state: &HttpState, req: &Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let route: &'static str = match path {
        "/cluster/nodes" => "/cluster/nodes",
        "/cluster/nodes/detail" => "/cluster/nodes/detail",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    };
    let resp = if route == "other" {
        error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))
    } else if req.method() != Method::GET {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {path}; use GET", req.method()),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        r
    } else {
        match route {
            "/cluster/nodes" => cluster_nodes(state, req.uri().query(), false),
            "/cluster/nodes/detail" => cluster_nodes(state, req.uri().query(), true),
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if state.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            _ => metrics_text(state),
        }
    };
    // The route label is one of a fixed few, never the raw path, so clients cannot blow up
    // the metric's cardinality.
    metrics::counter!(
        crate::telemetry::HTTP_REQUESTS,
        "route" => route,
        "status" => status_label(resp.status())
    )
    .increment(1);
    resp
}

/// The status as a metric label; the codes this router answers are static strings, so a
/// request allocates no label.
fn status_label(status: StatusCode) -> metrics::SharedString {
    match status.as_u16() {
        200 => "200".into(),
        400 => "400".into(),
        404 => "404".into(),
        405 => "405".into(),
        409 => "409".into(),
        500 => "500".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

fn cluster_nodes(state: &HttpState, query: Option<&str>, detail: bool) -> Response<Full<Bytes>> {
    let name = match query::param(query, "clusterName") {
        Ok(Some(name)) if !name.is_empty() => name,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "query parameter `clusterName` is required, e.g. /cluster/nodes?clusterName=my-cluster",
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let namespace = match query::param(query, "namespace") {
        Ok(ns) => ns.filter(|ns| !ns.is_empty()),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match state.directory.lookup(&name, namespace.as_deref()) {
        // Serialised when the cluster last changed; `Bytes` clones share the buffer.
        Lookup::Found(p) if detail => {
            with_body(StatusCode::OK, "application/json", p.detail_json.clone())
        }
        Lookup::Found(p) => with_body(StatusCode::OK, "application/json", p.addresses_json.clone()),
        Lookup::NotFound => error(
            StatusCode::NOT_FOUND,
            match namespace {
                Some(ns) => format!("no cluster named {name:?} in namespace {ns:?}"),
                None => format!("no cluster named {name:?}"),
            },
        ),
        Lookup::Ambiguous(namespaces) => error(
            StatusCode::CONFLICT,
            format!(
                "cluster {name:?} exists in namespaces {}; add `namespace=` to choose one",
                namespaces.join(", ")
            ),
        ),
    }
}

fn metrics_text(state: &HttpState) -> Response<Full<Bytes>> {
    match &state.metrics {
        Some(handle) => {
            let mut r = text(StatusCode::OK, handle.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no metrics recorder is installed in this process",
        ),
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(body) {
        Ok(bytes) => with_body(status, "application/json", bytes),
        Err(e) => {
            tracing::error!(error = %e, "serialising an HTTP response failed");
            with_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                br#"{"error":"internal error"}"#.to_vec(),
            )
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    with_body(status, "text/plain; charset=utf-8", body)
}

fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests;
