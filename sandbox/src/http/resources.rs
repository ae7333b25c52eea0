//! Requests on resources: list, watch, create, get, update, patch, delete, and `/status`.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use super::route::{Api, Target};
use super::{Body, Server, json as json_response, streaming};
use crate::error::ApiError;
use crate::patch::{self, PatchType, apply::ApplyRequest};
use crate::registry::{Registry, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{DeleteOpts, Propagation, Since, Subresource, WriteOpts};
use crate::table;
use crate::watch::{self, WatchRequest};

pub struct RequestCtx<'a> {
    pub identity: crate::auth::Identity,
    pub server: &'a Server,
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub registry: Registry,
}

impl RequestCtx<'_> {
    fn param(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.param(k), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    /// The field manager a write is recorded under: the `fieldManager` parameter, else the
    /// client's user-agent name, as Kubernetes derives it.
    fn manager(&self) -> String {
        if let Some(m) = self.param("fieldManager") {
            return m.to_string();
        }
        let agent = self
            .headers
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        agent.split('/').next().unwrap_or("unknown").to_string()
    }

    /// The Table form requested, if the client asked for server-side printing.
    fn table(&self) -> Option<table::Include> {
        let accept = self
            .headers
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        table::wanted(accept).then(|| table::Include::parse(self.param("includeObject")))
    }

    /// The request body as JSON; `kind` picks the decoder for a protobuf body.
    fn body_object(&self, kind: &str) -> Result<Value, ApiError> {
        let content_type = self
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with(crate::protobuf::CONTENT_TYPE) {
            return crate::protobuf::decode(&self.body, kind);
        }
        self.body_json()
    }

    fn body_json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::BadRequest(format!("cannot decode the request body as JSON: {e}"))
        })
    }
}

/// An injected 500 or conflict, for writes of a resource a test asked to fail.
fn injected(ctx: &RequestCtx<'_>, rt: &ResourceType) -> Result<(), ApiError> {
    let writes = matches!(
        ctx.method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes && ctx.server.faults.take_error(&rt.plural) {
        return Err(ApiError::Internal(format!(
            "injected error writing {}; please try again",
            rt.plural
        )));
    }
    if writes && ctx.server.faults.take_conflict(&rt.plural) {
        return Err(ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {}: injected conflict; please try again",
                rt.plural
            ),
            details: json!({"group": rt.group, "kind": rt.plural}),
        });
    }
    Ok(())
}

pub async fn handle(ctx: &RequestCtx<'_>, target: Target) -> Result<Response<Body>, ApiError> {
    match target {
        Target::Collection { api, namespace } => {
            let rt = resolve(ctx, &api)?;
            injected(ctx, &rt)?;
            let namespace = scope(&rt, namespace)?;
            if rt.kind == "SelfSubjectAccessReview" {
                return access_review(ctx);
            }
            if rt.kind == "SelfSubjectReview" && ctx.method == Method::POST {
                // `kubectl auth whoami`.
                let body = json!({
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "SelfSubjectReview",
                    "metadata": {},
                    "status": {"userInfo": {"username": ctx.identity.user, "groups": ctx.identity.groups}},
                });
                return Ok(json_response(StatusCode::CREATED, &body));
            }
            match ctx.method {
                Method::GET if ctx.flag("watch") => Ok(watch_collection(ctx, &rt, namespace)?),
                Method::GET => list(ctx, &rt, namespace.as_deref()),
                Method::POST => {
                    let ns = namespace.unwrap_or_default();
                    let obj = ctx.server.store.create(
                        &rt,
                        &ns,
                        ctx.body_object(&rt.kind)?,
                        &ctx.manager(),
                        ctx.dry_run(),
                    )?;
                    Ok(json_response(StatusCode::CREATED, &obj))
                }
                Method::DELETE => delete_collection(ctx, &rt, namespace.as_deref()),
                _ => Err(not_allowed(&ctx.method)),
            }
        }
        Target::Object {
            api,
            namespace,
            name,
            subresource,
        } => {
            let rt = resolve(ctx, &api)?;
            injected(ctx, &rt)?;
            let namespace = scope(&rt, namespace)?.unwrap_or_default();
            if rt.kind == "ServiceAccount" && subresource.as_deref() == Some("token") {
                return token_request(ctx, &rt, &namespace, &name);
            }
            if rt.kind == "Pod" && rt.group.is_empty() && subresource.as_deref() == Some("log") {
                return super::logs::pod_log(ctx, &rt, &namespace, &name);
            }
            if subresource.as_deref() == Some("scale") && rt.scale.is_some() {
                return scale(ctx, &rt, &namespace, &name);
            }
            let sub = match subresource.as_deref() {
                None => Subresource::Main,
                Some("status") if rt.has_status => Subresource::Status,
                Some(other) => {
                    return Err(ApiError::NotFound {
                        message: format!(
                            "the server could not find the requested resource ({}/{other})",
                            rt.plural
                        ),
                        details: json!({}),
                    });
                }
            };
            object(ctx, &rt, &namespace, &name, sub)
        }
        _ => Err(ApiError::Internal("not a resource request".into())),
    }
}

/// `/scale`: read or change the replica count through a Scale object.
fn scale(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let store = &ctx.server.store;
    let new_scale = |live: &Value| -> Result<Value, ApiError> {
        let current = crate::scale::view(rt, live)?;
        match ctx.method {
            Method::PUT => ctx.body_json(),
            Method::PATCH => {
                let content_type = ctx
                    .headers
                    .get(hyper::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let ty = PatchType::from_content_type(content_type)?;
                if ty == PatchType::Apply {
                    return Err(ApiError::UnsupportedMediaType(
                        "apply is not supported on /scale here".into(),
                    ));
                }
                // Scale is a built-in type: strategic merge behaves as merge on it.
                let ty = if ty == PatchType::Strategic {
                    PatchType::Merge
                } else {
                    ty
                };
                patch::patch_object(rt, &current, &ctx.body, ty)
            }
            _ => Err(not_allowed(&ctx.method)),
        }
    };
    let obj = if ctx.method == Method::GET {
        store.get(rt, ns, name)?
    } else {
        let opts = WriteOpts {
            subresource: Subresource::Main,
            manager: ctx.manager(),
            is_apply: false,
            create_if_missing: false,
            dry_run: ctx.dry_run(),
        };
        store.write(rt, ns, name, &opts, |live| {
            let live = live.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            crate::scale::apply(rt, live, &new_scale(live)?)
        })?
    };
    Ok(json_response(
        StatusCode::OK,
        &crate::scale::view(rt, &obj)?,
    ))
}

/// `kubectl auth can-i`: a SelfSubjectAccessReview answered for the caller.
fn access_review(ctx: &RequestCtx<'_>) -> Result<Response<Body>, ApiError> {
    if ctx.method != Method::POST {
        return Err(not_allowed(&ctx.method));
    }
    let mut review = ctx.body_object("SelfSubjectAccessReview")?;
    let attrs = &review["spec"]["resourceAttributes"];
    let text = |k: &str| attrs[k].as_str().unwrap_or("").to_string();
    let allowed = if attrs.is_object() {
        let what = crate::rbac::Attributes {
            verb: text("verb"),
            group: text("group"),
            resource: text("resource"),
            subresource: text("subresource"),
            namespace: text("namespace"),
            name: text("name"),
        };
        crate::rbac::allowed(&ctx.server.store, &ctx.identity, &what)
    } else {
        // Non-resource URLs (discovery, version, health) are open to everyone here.
        true
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["status"] = json!({"allowed": allowed});
    Ok(json_response(StatusCode::CREATED, &review))
}

/// The TokenRequest API: a bearer token for an existing service account.
fn token_request(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    if ctx.method != Method::POST {
        return Err(not_allowed(&ctx.method));
    }
    ctx.server.store.get(rt, ns, name)?;
    let token = ctx.server.tokens.issue(ns, name);
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 365))
        .map(|t| t.to_string())
        .unwrap_or_default();
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"audiences": []},
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(json_response(StatusCode::CREATED, &body))
}

fn not_allowed(m: &Method) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "the server does not allow this method on the requested resource ({m})"
    ))
}

fn resolve(ctx: &RequestCtx<'_>, api: &Api) -> Result<ResourceType, ApiError> {
    ctx.registry
        .find(&api.group, &api.version, &api.resource)
        .cloned()
        .ok_or_else(|| ApiError::NotFound {
            message: format!(
                "the server could not find the requested resource ({}/{}/{})",
                api.group, api.version, api.resource
            ),
            details: json!({"group": api.group, "kind": api.resource}),
        })
}

/// A namespaced resource without a namespace means "all namespaces" (reads only); a
/// cluster-scoped resource may not be addressed inside a namespace.
fn scope(rt: &ResourceType, namespace: Option<String>) -> Result<Option<String>, ApiError> {
    match (rt.namespaced, namespace) {
        (false, Some(_)) => Err(ApiError::NotFound {
            message: format!(
                "the server could not find the requested resource: {} is cluster-scoped",
                rt.plural
            ),
            details: json!({}),
        }),
        (_, ns) => Ok(ns),
    }
}

fn selectors(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(ctx.param("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(
        ctx.param("fieldSelector").unwrap_or(""),
        &rt.group,
        &rt.kind,
    )?;
    Ok((labels, fields))
}

fn list(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(ctx, rt)?;
    let limit = match ctx.param("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}")))?,
        ),
        None => None,
    };
    let page = ctx.server.store.list(
        rt,
        namespace,
        &labels,
        &fields,
        limit,
        ctx.param("continue"),
    )?;
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    let body = match ctx.table() {
        Some(include) => {
            let mut t = table::table(
                rt,
                &page.items,
                &page.resource_version.to_string(),
                include,
                true,
            );
            t["metadata"] = metadata;
            t
        }
        None => {
            json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": metadata, "items": page.items})
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn watch_collection(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
    namespace: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(ctx, rt)?;
    let since = match ctx.param("resourceVersion") {
        None | Some("0") => Since::Now,
        Some(v) => Since::Version(
            v.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version {v:?}")))?,
        ),
    };
    let initial_events = ctx.flag("sendInitialEvents");
    if initial_events && ctx.param("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "ListOptions",
            "",
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    // sendInitialEvents from a version means "state as of at least that version", which
    // the current state satisfies.
    let since = if initial_events { Since::Now } else { since };
    let timeout = ctx
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let req = WatchRequest {
        rt: rt.clone(),
        namespace,
        labels,
        fields,
        since,
        timeout: Duration::from_secs(timeout),
        bookmarks: ctx.flag("allowWatchBookmarks"),
        initial_events_end: initial_events,
        bookmark_interval: ctx.server.bookmark_interval,
        table: ctx.table(),
        cut: ctx.server.faults.watch_cuts(),
    };
    Ok(streaming(watch::stream(&ctx.server.store, req)))
}

fn delete_opts(ctx: &RequestCtx<'_>) -> Result<DeleteOpts, ApiError> {
    let body: Value = if ctx.body.is_empty() {
        json!({})
    } else {
        ctx.body_object("DeleteOptions")?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| ctx.param("propagationPolicy").map(str::to_string));
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown propagationPolicy {other:?}"
            )));
        }
    };
    let orphan = body["orphanDependents"].as_bool() == Some(true);
    let dry = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOpts {
        propagation: if orphan {
            Propagation::Orphan
        } else {
            propagation
        },
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run: dry || ctx.dry_run(),
        grace_period: body["gracePeriodSeconds"].as_i64().or_else(|| {
            ctx.param("gracePeriodSeconds")
                .and_then(|g| g.parse::<i64>().ok())
        }),
    })
}

fn delete_collection(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(ctx, rt)?;
    let opts = delete_opts(ctx)?;
    let page = ctx
        .server
        .store
        .list(rt, namespace, &labels, &fields, None, None)?;
    let mut items = Vec::new();
    for obj in page.items {
        match ctx.server.store.delete(
            rt,
            crate::object::namespace(&obj),
            crate::object::name(&obj),
            &opts,
        ) {
            Ok(o) => items.push(o),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": ctx.server.store.current_rv().to_string()}, "items": items});
    Ok(json_response(StatusCode::OK, &body))
}

fn object(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    sub: Subresource,
) -> Result<Response<Body>, ApiError> {
    let store = &ctx.server.store;
    let opts = |is_apply: bool, create: bool| WriteOpts {
        subresource: sub,
        manager: ctx.manager(),
        is_apply,
        create_if_missing: create,
        dry_run: ctx.dry_run(),
    };
    match ctx.method {
        Method::GET => {
            let obj = store.get(rt, ns, name)?;
            let body = match ctx.table() {
                Some(include) => table::table(
                    rt,
                    std::slice::from_ref(&obj),
                    crate::object::resource_version(&obj).unwrap_or(""),
                    include,
                    true,
                ),
                None => obj,
            };
            Ok(json_response(StatusCode::OK, &body))
        }
        Method::PUT => {
            let body = ctx.body_object(&rt.kind)?;
            // Built-in kinds allow unconditional updates; custom resources do not.
            let custom = rt.schema.is_some() || !rt.merge_keys_builtin();
            if custom && crate::object::resource_version(&body).is_none() {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            let obj = store.write(rt, ns, name, &opts(false, false), |_| Ok(body))?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        Method::PATCH => {
            let content_type = ctx
                .headers
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ty = PatchType::from_content_type(content_type)?;
            if ty == PatchType::Apply {
                let manager = ctx.param("fieldManager").ok_or_else(|| {
                    ApiError::invalid(
                        "PatchOptions",
                        "",
                        "fieldManager: Required value: is required for apply patch",
                    )
                })?;
                let config = patch::apply::parse_body(&ctx.body)?;
                let req = ApplyRequest {
                    rt,
                    manager,
                    force: ctx.flag("force"),
                    subresource: sub,
                };
                let existed = store.get(rt, ns, name).is_ok();
                let create = sub == Subresource::Main;
                let mut o = opts(true, create);
                o.manager = manager.to_string();
                let obj = store.write(rt, ns, name, &o, |live| {
                    patch::apply::apply(&req, live, &config)
                })?;
                let code = if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                return Ok(json_response(code, &obj));
            }
            let body = ctx.body.clone();
            let obj = store.write(rt, ns, name, &opts(false, false), |live| match live {
                Some(live) => patch::patch_object(rt, live, &body, ty),
                None => Err(ApiError::not_found(&rt.group, &rt.plural, name)),
            })?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        Method::DELETE if sub == Subresource::Main => {
            let obj = store.delete(rt, ns, name, &delete_opts(ctx)?)?;
            let code = if crate::object::is_deleting(&obj) && store.get(rt, ns, name).is_ok() {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &obj))
        }
        _ => Err(not_allowed(&ctx.method)),
    }
}
