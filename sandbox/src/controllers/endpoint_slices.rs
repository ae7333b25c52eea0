//! The EndpointSlices of a Service (discovery.k8s.io/v1): one per distinct set of resolved
//! ports, named `<service>-<hash of the ports>` so the same content always lands in the
//! same object, each endpoint with its ready/serving/terminating conditions.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::endpoints::{Member, hostname, metadata, target_ref};
use crate::object;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The value kube-controller-manager's EndpointSlice controller uses; clients that filter
/// on it see these slices as the cluster's own.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Whether a slice was made by this controller for `svc`; slices written by others (e.g.
/// for a Service without selector) are left alone.
pub(super) fn belongs_to(slice: &Value, svc: &Value) -> bool {
    let labels = object::labels(slice);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    label(SERVICE_NAME_LABEL) == Some(object::name(svc))
        && label(MANAGED_BY_LABEL) == Some(MANAGED_BY)
}

/// The slices `svc` should have. With no endpoint at all there is still one empty slice,
/// as Kubernetes keeps a placeholder so clients can tell "no endpoints" from "not synced".
pub(super) fn desired(svc: &Value, members: &[Member<'_>]) -> Vec<Value> {
    let publish = svc["spec"]["publishNotReadyAddresses"] == true;
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for m in members {
        let key = Value::Array(m.ports.clone()).to_string();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (m.ports.clone(), Vec::new()));
        entry.1.push(endpoint(svc, m, publish));
    }
    if groups.is_empty() {
        return vec![slice(svc, None, Vec::new())];
    }
    groups
        .into_values()
        .map(|(ports, mut endpoints)| {
            endpoints.sort_by(|a, b| a["addresses"][0].as_str().cmp(&b["addresses"][0].as_str()));
            slice(svc, Some(ports), endpoints)
        })
        .collect()
}

fn slice(svc: &Value, ports: Option<Vec<Value>>, endpoints: Vec<Value>) -> Value {
    // Slice ports always carry a name ("" for an unnamed Service port), unlike Endpoints'.
    let ports = ports.map(|ps| {
        ps.into_iter()
            .map(|mut p| {
                if p.get("name").is_none() {
                    p["name"] = json!("");
                }
                p
            })
            .collect::<Vec<_>>()
    });
    let key = ports
        .as_ref()
        .map(|p| Value::Array(p.clone()))
        .unwrap_or(Value::Null);
    let hash = super::statefulset::template_hash(&key);
    let name = format!("{}-{}", object::name(svc), &hash[hash.len() - 5..]);
    let mut s = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata(svc, &name, &[
            (SERVICE_NAME_LABEL, object::name(svc)),
            (MANAGED_BY_LABEL, MANAGED_BY),
        ]),
        "addressType": "IPv4",
        "endpoints": endpoints,
    });
    if let Some(ports) = ports {
        s["ports"] = Value::Array(ports);
    }
    s
}

fn endpoint(svc: &Value, m: &Member<'_>, publish: bool) -> Value {
    // As in Kubernetes: `serving` is the Pod's readiness; `ready` is serving and not
    // terminating, or forced true by publishNotReadyAddresses.
    let ready = publish || (m.ready && !m.terminating);
    let mut e = json!({
        "addresses": [m.ip],
        "conditions": {"ready": ready, "serving": m.ready || publish, "terminating": m.terminating},
        "targetRef": target_ref(m.pod),
    });
    if let Some(node) = m.pod["spec"]["nodeName"].as_str() {
        e["nodeName"] = json!(node);
    }
    if let Some(host) = hostname(m.pod, svc) {
        e["hostname"] = json!(host);
    }
    e
}
