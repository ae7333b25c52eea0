//! The HTTP/1.1 front: accepts connections on loopback and routes each request.

mod logs;
pub mod resources;
pub mod route;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::discovery;
use crate::error::ApiError;
use crate::store::Store;
use route::Target;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every request handler can reach.
pub struct Server {
    pub store: Arc<Store>,
    /// The kubelet's directory (pods' logs and volumes), when the sandbox has nodes.
    pub workloads: Option<std::path::PathBuf>,
    pub tokens: Arc<crate::auth::Tokens>,
    pub audit: Arc<crate::audit::AuditLog>,
    pub faults: Arc<crate::faults::Faults>,
    pub address: String,
    pub bookmark_interval: Duration,
}

/// Serves connections until `shutdown` turns true; over TLS when an acceptor is given.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let server = server.clone();
                let conn_shutdown = shutdown.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => connection(stream, peer, server, conn_shutdown).await,
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                            match handshake.await {
                                Ok(Ok(tls_stream)) => connection(tls_stream, peer, server, conn_shutdown).await,
                                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// One HTTP/1.1 connection, until the client closes it or the server stops.
async fn connection<I>(
    io: I,
    peer: std::net::SocketAddr,
    server: Arc<Server>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(io);
    let service = hyper::service::service_fn(move |req| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(handle(&server, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

async fn handle(server: &Server, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = route::query(req.uri().query());
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(&ApiError::BadRequest(format!(
                "cannot read the request body: {e}"
            )));
        }
    };
    let target = route::parse(&path);
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let accept = headers
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    tracing::debug!(%method, %path, %content_type, %accept, "request");
    let identity = match server
        .tokens
        .authenticate(&headers)
        .and_then(|id| server.tokens.impersonate(id, &headers))
    {
        Ok(id) => id,
        Err(e) => return error(&e),
    };
    let attributes = crate::rbac::attributes(
        &target,
        &method,
        matches!(query.get("watch").map(String::as_str), Some("true" | "1")),
    );
    if target == Target::Faults && !identity.in_group("system:masters") {
        return error(&ApiError::Forbidden(format!(
            "User \"{}\" cannot inject faults",
            identity.user
        )));
    }
    if target == Target::Faults {
        // The control endpoint works even while the API is "down".
        return match (
            method == hyper::Method::POST,
            serde_json::from_slice::<Value>(&body),
        ) {
            (true, Ok(req)) => match server.faults.apply(&req) {
                Ok(v) => json(StatusCode::OK, &v),
                Err(e) => error(&e),
            },
            (true, Err(e)) => error(&ApiError::BadRequest(format!(
                "cannot decode the fault request: {e}"
            ))),
            (false, _) => error(&ApiError::MethodNotAllowed(
                "faults are set with POST".into(),
            )),
        };
    }
    let delay = server.faults.latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if server.faults.is_down() && target != Target::Health {
        return error(&ApiError::ServiceUnavailable(
            "the API server is down (injected fault)".into(),
        ));
    }
    if target != Target::Health && !accepts_json(&accept) {
        return error(&ApiError::NotAcceptable(format!(
            "only application/json responses are served, not {accept:?}"
        )));
    }
    let registry = server.store.registry();
    let found = |v: Option<Value>| match v {
        Some(v) => json(StatusCode::OK, &v),
        None => error(&ApiError::NotFound {
            message: format!("the server could not find the requested resource ({path})"),
            details: serde_json::json!({}),
        }),
    };
    match target {
        Target::Version => json(StatusCode::OK, &discovery::version()),
        Target::Health => text(StatusCode::OK, "ok"),
        Target::OpenApiIndex => json(StatusCode::OK, &crate::openapi::index(&registry)),
        Target::OpenApi(gv) => found(crate::openapi::group_version(&registry, &gv)),
        Target::CoreVersions => json(StatusCode::OK, &discovery::core_versions(&server.address)),
        Target::Groups => json(StatusCode::OK, &discovery::group_list(&registry)),
        Target::Group(g) => found(discovery::group(&registry, &g)),
        Target::Resources { group, version } => {
            found(discovery::resource_list(&registry, &group, &version))
        }
        Target::Collection { .. } | Target::Object { .. } => {
            let Some(attrs) = attributes else {
                return error(&ApiError::Internal(
                    "a resource request without attributes".into(),
                ));
            };
            let allowed = crate::rbac::allowed(&server.store, &identity, &attrs);
            let response = if allowed {
                let ctx = resources::RequestCtx {
                    identity: identity.clone(),
                    server,
                    method,
                    query,
                    headers,
                    body,
                    registry,
                };
                match resources::handle(&ctx, target).await {
                    Ok(resp) => resp,
                    Err(e) => error(&e),
                }
            } else {
                error(&ApiError::Forbidden(crate::rbac::forbidden_message(
                    &identity, &attrs,
                )))
            };
            server.audit.record(crate::audit::AuditEntry {
                user: identity.user.clone(),
                verb: attrs.verb,
                group: attrs.group,
                resource: attrs.resource,
                subresource: attrs.subresource,
                namespace: attrs.namespace,
                name: attrs.name,
                allowed,
                code: response.status().as_u16(),
            });
            response
        }
        Target::NotFound | Target::Faults => found(None),
    }
}

/// Whether a plain JSON answer satisfies the Accept header. Clients that prefer
/// aggregated discovery, protobuf or Tables list JSON as a fallback; one that accepts
/// only something else gets 406, as from a real server.
fn accepts_json(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|choice| {
            let mut parts = choice.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let plain = parts.all(|p| !p.starts_with("as=") && !p.starts_with("g="));
            match media {
                "*/*" | "application/*" => true,
                "application/json" => plain || choice.contains("as=Table"),
                _ => false,
            }
        })
}

pub fn json(code: StatusCode, v: &Value) -> Response<Body> {
    let bytes = Bytes::from(v.to_string());
    let mut resp = Response::new(Full::new(bytes).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn text(code: StatusCode, s: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(s.as_bytes())).boxed_unsync());
    *resp.status_mut() = code;
    resp
}

pub fn error(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, &e.to_status())
}

/// A chunked response of JSON lines, for watches.
pub fn streaming(
    lines: impl futures_util::Stream<Item = Bytes> + Send + 'static,
) -> Response<Body> {
    use futures_util::StreamExt;
    let frames = lines.map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::accepts_json;

    #[test]
    fn json_is_served_unless_the_client_accepts_only_something_else() {
        assert!(accepts_json(""));
        assert!(accepts_json("application/json"));
        assert!(accepts_json("application/json, */*"));
        assert!(accepts_json(
            "application/vnd.kubernetes.protobuf,application/json"
        ));
        assert!(accepts_json(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(accepts_json("application/json;as=Table;v=v1;g=meta.k8s.io"));
        assert!(!accepts_json(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(!accepts_json("application/vnd.kubernetes.protobuf"));
    }
}
