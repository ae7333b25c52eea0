//! The Endpoints and EndpointSlice controllers: for every Service with a selector, an
//! `Endpoints` object of the same name and EndpointSlices labelled
//! `kubernetes.io/service-name`, listing the addresses of the Pods the selector matches.
//!
//! The work is split into a pure `plan` (what to create, change or delete, given the
//! objects as listed) and `reconcile`, which lists and applies the plan. A plan made over
//! its own result is empty, so a converged Service costs no write at all.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::Ctl;
use super::endpoint_slices;
use crate::object;

/// The objects this controller writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Endpoints,
    EndpointSlice,
}

impl Kind {
    /// The body fields this controller owns; metadata labels and owner references are
    /// owned too.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Endpoints => &["subsets"],
            Kind::EndpointSlice => &["addressType", "endpoints", "ports"],
        }
    }
}

/// One write the controller has to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create {
        kind: Kind,
        object: Value,
    },
    /// Overwrite the owned fields of `name` with those of `desired`.
    Update {
        kind: Kind,
        desired: Value,
    },
    Delete {
        kind: Kind,
        ns: String,
        name: String,
    },
}

/// A Pod as one endpoint of a Service.
pub(super) struct Member<'a> {
    pub pod: &'a Value,
    pub ip: &'a str,
    /// The Pod's Ready condition.
    pub ready: bool,
    pub terminating: bool,
    /// The Service's ports resolved against this Pod (EndpointPort objects); a Service
    /// port whose named targetPort the Pod does not declare is left out.
    pub ports: Vec<Value>,
}

pub fn reconcile(ctl: &Ctl) {
    let services = ctl.list("", "services");
    if !services.iter().any(has_selector) {
        return;
    }
    let (Some(ep_rt), Some(slice_rt)) = (
        ctl.rt("", "endpoints"),
        ctl.rt("discovery.k8s.io", "endpointslices"),
    ) else {
        return;
    };
    let pods = ctl.list("", "pods");
    let endpoints = ctl.list("", "endpoints");
    let slices = ctl.list("discovery.k8s.io", "endpointslices");
    for action in plan(&services, &pods, &endpoints, &slices) {
        match action {
            Action::Create { kind, object } => {
                let rt = if kind == Kind::Endpoints {
                    &ep_rt
                } else {
                    &slice_rt
                };
                let ns = object::namespace(&object).to_string();
                tracing::debug!(?kind, name = object::name(&object), "creating");
                ctl.create(rt, &ns, object);
            }
            Action::Update { kind, desired } => {
                let rt = if kind == Kind::Endpoints {
                    &ep_rt
                } else {
                    &slice_rt
                };
                tracing::debug!(?kind, name = object::name(&desired), "updating");
                ctl.update(
                    rt,
                    object::namespace(&desired),
                    object::name(&desired),
                    |live| overwrite(live, &desired, kind),
                );
            }
            Action::Delete { kind, ns, name } => {
                let rt = if kind == Kind::Endpoints {
                    &ep_rt
                } else {
                    &slice_rt
                };
                tracing::debug!(?kind, %name, "deleting");
                ctl.delete(rt, &ns, &name, None);
            }
        }
    }
}

fn has_selector(svc: &Value) -> bool {
    // An empty selector is stored by Kubernetes as no selector at all (protobuf drops empty
    // maps), so it selects nothing rather than everything.
    svc["spec"]["selector"]
        .as_object()
        .is_some_and(|s| !s.is_empty())
        && !object::is_deleting(svc)
}

/// Every write needed to make the Endpoints and EndpointSlices of `services` match `pods`.
pub fn plan(
    services: &[Value],
    pods: &[Value],
    endpoints: &[Value],
    slices: &[Value],
) -> Vec<Action> {
    let by_key = |objs: &[Value]| -> HashMap<(String, String), Value> {
        objs.iter()
            .map(|o| {
                let key = (
                    object::namespace(o).to_string(),
                    object::name(o).to_string(),
                );
                (key, o.clone())
            })
            .collect()
    };
    let endpoints = by_key(endpoints);
    let mut actions = Vec::new();
    for svc in services.iter().filter(|s| has_selector(s)) {
        let ns = object::namespace(svc);
        let members: Vec<Member<'_>> = pods
            .iter()
            .filter(|p| object::namespace(p) == ns && selects(svc, p))
            .filter_map(|p| member(svc, p))
            .collect();
        let want = desired_endpoints(svc, &members);
        let key = (ns.to_string(), object::name(svc).to_string());
        match endpoints.get(&key) {
            None => actions.push(Action::Create {
                kind: Kind::Endpoints,
                object: want,
            }),
            Some(live) if differs(live, &want, Kind::Endpoints) => actions.push(Action::Update {
                kind: Kind::Endpoints,
                desired: want,
            }),
            Some(_) => {}
        }
        let wanted_slices = endpoint_slices::desired(svc, &members);
        let ours: Vec<&Value> = slices
            .iter()
            .filter(|s| object::namespace(s) == ns && endpoint_slices::belongs_to(s, svc))
            .collect();
        for want in &wanted_slices {
            match ours.iter().find(|s| object::name(s) == object::name(want)) {
                None => actions.push(Action::Create {
                    kind: Kind::EndpointSlice,
                    object: want.clone(),
                }),
                Some(live) if differs(live, want, Kind::EndpointSlice) => {
                    actions.push(Action::Update {
                        kind: Kind::EndpointSlice,
                        desired: want.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        for stale in ours.iter().filter(|s| {
            !wanted_slices
                .iter()
                .any(|w| object::name(w) == object::name(s))
        }) {
            if !object::is_deleting(stale) {
                actions.push(Action::Delete {
                    kind: Kind::EndpointSlice,
                    ns: ns.to_string(),
                    name: object::name(stale).to_string(),
                });
            }
        }
    }
    actions
}

/// Whether every key of the Service's selector is a label of the Pod with that value.
fn selects(svc: &Value, pod: &Value) -> bool {
    let labels = object::labels(pod);
    svc["spec"]["selector"].as_object().is_some_and(|sel| {
        sel.iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    })
}

/// The Pod as an endpoint, when it has an address and has not finished.
fn member<'a>(svc: &Value, pod: &'a Value) -> Option<Member<'a>> {
    let ip = pod["status"]["podIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())?;
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return None;
    }
    let svc_ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let ports: Vec<Value> = svc_ports
        .iter()
        .filter_map(|sp| {
            let port = target_port(sp, pod)?;
            let mut p = Map::new();
            if let Some(name) = sp["name"].as_str().filter(|n| !n.is_empty()) {
                p.insert("name".into(), json!(name));
            }
            p.insert("port".into(), json!(port));
            p.insert(
                "protocol".into(),
                json!(sp["protocol"].as_str().unwrap_or("TCP")),
            );
            if let Some(app) = sp["appProtocol"].as_str() {
                p.insert("appProtocol".into(), json!(app));
            }
            Some(Value::Object(p))
        })
        .collect();
    // A Pod that serves none of the Service's ports is no endpoint of it.
    if !svc_ports.is_empty() && ports.is_empty() {
        return None;
    }
    Some(Member {
        pod,
        ip,
        ready: super::condition_true(pod, "Ready"),
        terminating: object::is_deleting(pod),
        ports,
    })
}

/// A Service port's `targetPort` as a number for this Pod: a number as it is, a name looked
/// up among the Pod's container ports (same protocol), nothing when the Pod has no such
/// port.
fn target_port(svc_port: &Value, pod: &Value) -> Option<i64> {
    let protocol = svc_port["protocol"].as_str().unwrap_or("TCP");
    match &svc_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok().or_else(|| {
            pod["spec"]["containers"]
                .as_array()?
                .iter()
                .filter_map(|c| c["ports"].as_array())
                .flatten()
                .find(|p| {
                    p["name"] == s.as_str() && p["protocol"].as_str().unwrap_or("TCP") == protocol
                })?["containerPort"]
                .as_i64()
        }),
        _ => svc_port["port"].as_i64(),
    }
}

/// Metadata shared by the Endpoints and the slices: the Service's labels (plus
/// `extra`), and the Service as controlling owner, so the garbage collector removes them
/// with it.
pub(super) fn metadata(svc: &Value, name: &str, extra: &[(&str, &str)]) -> Value {
    let mut labels: Map<String, Value> = object::labels(svc).cloned().unwrap_or_default();
    if svc["spec"]["clusterIP"] == "None" {
        labels.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    for (k, v) in extra {
        labels.insert((*k).into(), json!(v));
    }
    let mut meta = json!({
        "name": name,
        "namespace": object::namespace(svc),
        "ownerReferences": [{
            "apiVersion": "v1",
            "kind": "Service",
            "name": object::name(svc),
            "uid": object::uid(svc),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if !labels.is_empty() {
        meta["labels"] = Value::Object(labels);
    }
    meta
}

/// An EndpointAddress (Endpoints) for a member.
fn address(svc: &Value, m: &Member<'_>) -> Value {
    let mut a = json!({
        "ip": m.ip,
        "targetRef": target_ref(m.pod),
    });
    if let Some(node) = m.pod["spec"]["nodeName"].as_str() {
        a["nodeName"] = json!(node);
    }
    if let Some(host) = hostname(m.pod, svc) {
        a["hostname"] = json!(host);
    }
    a
}

pub(super) fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": object::namespace(pod),
        "name": object::name(pod),
        "uid": object::uid(pod),
    })
}

/// The Pod's hostname as DNS would publish it: only for a Pod whose subdomain names the
/// Service (a StatefulSet's pods and their governing Service).
pub(super) fn hostname<'a>(pod: &'a Value, svc: &Value) -> Option<&'a str> {
    let host = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    (pod["spec"]["subdomain"].as_str() == Some(object::name(svc))).then_some(host)
}

/// One EndpointSubset being built: its ports and addresses.
#[derive(Default)]
struct Subset {
    ports: Vec<Value>,
    ready: Vec<Value>,
    not_ready: Vec<Value>,
}

/// The Endpoints object for a Service: Ready members in `addresses`, the others in
/// `notReadyAddresses`, grouped into one subset per distinct set of resolved ports.
fn desired_endpoints(svc: &Value, members: &[Member<'_>]) -> Value {
    let publish = svc["spec"]["publishNotReadyAddresses"] == true;
    // Keyed by the ports' JSON text, so subsets come out in a stable order.
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    for m in members {
        // A terminating Pod takes no new traffic, unless not-ready addresses are published.
        if m.terminating && !publish {
            continue;
        }
        let key = Value::Array(m.ports.clone()).to_string();
        let entry = subsets.entry(key).or_insert_with(|| Subset {
            ports: m.ports.clone(),
            ..Subset::default()
        });
        if m.ready || publish {
            entry.ready.push(address(svc, m));
        } else {
            entry.not_ready.push(address(svc, m));
        }
    }
    let by_ip = |v: &mut Vec<Value>| {
        v.sort_by(|a, b| a["ip"].as_str().cmp(&b["ip"].as_str()));
    };
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|mut sub| {
            by_ip(&mut sub.ready);
            by_ip(&mut sub.not_ready);
            let mut s = Map::new();
            if !sub.ready.is_empty() {
                s.insert("addresses".into(), Value::Array(sub.ready));
            }
            if !sub.not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), Value::Array(sub.not_ready));
            }
            if !sub.ports.is_empty() {
                s.insert("ports".into(), Value::Array(sub.ports));
            }
            Value::Object(s)
        })
        .collect();
    let mut ep = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": metadata(svc, object::name(svc), &[]),
    });
    // Kubernetes leaves `subsets` out when there is no endpoint.
    if !subsets.is_empty() {
        ep["subsets"] = Value::Array(subsets);
    }
    ep
}

/// Whether the owned parts of `live` differ from `want`.
fn differs(live: &Value, want: &Value, kind: Kind) -> bool {
    live["metadata"]["labels"] != want["metadata"]["labels"]
        || live["metadata"]["ownerReferences"] != want["metadata"]["ownerReferences"]
        || kind.fields().iter().any(|f| live[*f] != want[*f])
}

/// Copies the owned parts of `want` over `live`, removing those `want` leaves out.
fn overwrite(live: &mut Value, want: &Value, kind: Kind) {
    let meta = object::meta_mut(live);
    for key in ["labels", "ownerReferences"] {
        match want["metadata"].get(key) {
            Some(v) => {
                meta.insert(key.into(), v.clone());
            }
            None => {
                meta.remove(key);
            }
        }
    }
    if let Value::Object(obj) = live {
        for f in kind.fields() {
            match want.get(*f) {
                Some(v) => {
                    obj.insert((*f).into(), v.clone());
                }
                None => {
                    obj.remove(*f);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
