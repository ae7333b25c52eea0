//! The scheduler: binds each Pod without `spec.nodeName` to a Ready node. Filters:
//! `nodeSelector`, required pod anti-affinity with topology `kubernetes.io/hostname`, and
//! host ports. Among the nodes left, fewer preferred anti-affinity matches win, then fewer
//! pods. A Pod that fits nowhere stays Pending with `PodScheduled=False/Unschedulable`.

use serde_json::{Value, json};

use crate::controllers::{Ctl, condition_true};
use crate::object;

const HOSTNAME: &str = "kubernetes.io/hostname";

/// One scheduling pass over every unbound Pod.
pub fn schedule(ctl: &Ctl) {
    let Some(rt) = ctl.rt("", "pods") else {
        return;
    };
    let nodes: Vec<Value> = ctl
        .list("", "nodes")
        .into_iter()
        .filter(|n| condition_true(n, "Ready") && n["spec"]["unschedulable"] != true)
        .collect();
    let mut pods = ctl.list("", "pods");
    for i in 0..pods.len() {
        let pod = &pods[i];
        let unbound = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
        if !unbound || object::is_deleting(pod) || !for_us(pod) {
            continue;
        }
        let ns = object::namespace(pod).to_string();
        let name = object::name(pod).to_string();
        let chosen = nodes
            .iter()
            .filter(|n| fits(pod, n, &pods))
            .min_by_key(|n| {
                (
                    preferred_matches(pod, object::name(n), &pods),
                    pods_on(object::name(n), &pods),
                )
            })
            .map(|n| object::name(n).to_string());
        match chosen {
            Some(node) => {
                tracing::debug!(pod = %name, %node, "scheduled");
                ctl.update(&rt, &ns, &name, |p| {
                    object::set_path(p, &["spec", "nodeName"], json!(node))
                });
                let mut status = pod["status"].clone();
                set_condition(&mut status, "PodScheduled", "True", None, None);
                ctl.write_status(&rt, &ns, &name, status);
                object::set_path(&mut pods[i], &["spec", "nodeName"], json!(node));
            }
            None => {
                let message = format!(
                    "0/{} nodes are available: no node fits the pod's node selector, pod anti-affinity and host ports.",
                    nodes.len()
                );
                let already = pod["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "PodScheduled"
                            && c["reason"] == "Unschedulable"
                            && c["message"] == message.as_str()
                    })
                });
                if !already {
                    let mut status = pod["status"].clone();
                    status["phase"] = json!("Pending");
                    set_condition(
                        &mut status,
                        "PodScheduled",
                        "False",
                        Some("Unschedulable"),
                        Some(&message),
                    );
                    ctl.write_status(&rt, &ns, &name, status);
                }
            }
        }
    }
}

fn for_us(pod: &Value) -> bool {
    pod["spec"]["schedulerName"]
        .as_str()
        .is_none_or(|s| s == "default-scheduler")
}

/// Sets (or replaces) a condition in a status object.
pub fn set_condition(
    status: &mut Value,
    kind: &str,
    value: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !status.is_object() {
        *status = json!({});
    }
    let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let previous = conditions.iter().position(|c| c["type"] == kind);
    let unchanged = previous.is_some_and(|i| {
        conditions[i]["status"] == value && conditions[i]["reason"].as_str() == reason
    });
    if unchanged {
        return;
    }
    let mut c = json!({"type": kind, "status": value, "lastProbeTime": null,
        "lastTransitionTime": object::now_rfc3339()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match previous {
        Some(i) => conditions[i] = c,
        None => conditions.push(c),
    }
    status["conditions"] = Value::Array(conditions);
}

fn active_on<'a>(node: &'a str, pods: &'a [Value]) -> impl Iterator<Item = &'a Value> {
    pods.iter().filter(move |p| {
        p["spec"]["nodeName"] == node
            && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    })
}

fn pods_on(node: &str, pods: &[Value]) -> usize {
    active_on(node, pods).count()
}

fn fits(pod: &Value, node: &Value, pods: &[Value]) -> bool {
    let node_name = object::name(node);
    let labels = &node["metadata"]["labels"];
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .is_none_or(|sel| sel.iter().all(|(k, v)| &labels[k] == v));
    if !selector_ok {
        return false;
    }
    let wanted = host_ports(pod);
    let ports_ok = active_on(node_name, pods)
        .filter(|p| object::uid(p) != object::uid(pod))
        .all(|p| host_ports(p).iter().all(|port| !wanted.contains(port)));
    if !ports_ok {
        return false;
    }
    let terms = &pod["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let ns = object::namespace(pod);
    terms.as_array().is_none_or(|terms| {
        terms.iter().all(|term| {
            !on_hostname(term)
                || active_on(node_name, pods)
                    .filter(|p| object::uid(p) != object::uid(pod))
                    .all(|p| !term_matches(term, ns, p))
        })
    })
}

fn preferred_matches(pod: &Value, node: &str, pods: &[Value]) -> i64 {
    let ns = object::namespace(pod);
    let Some(terms) = pod["spec"]["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
    else {
        return 0;
    };
    terms
        .iter()
        .map(|weighted| {
            let term = &weighted["podAffinityTerm"];
            let weight = weighted["weight"].as_i64().unwrap_or(1);
            let hits = active_on(node, pods)
                .filter(|p| object::uid(p) != object::uid(pod) && term_matches(term, ns, p))
                .count();
            if on_hostname(term) {
                weight * i64::try_from(hits).unwrap_or(i64::MAX / 1024)
            } else {
                0
            }
        })
        .sum()
}

fn on_hostname(term: &Value) -> bool {
    term["topologyKey"] == HOSTNAME
}

/// Whether `other` is selected by an affinity term written in namespace `ns`.
fn term_matches(term: &Value, ns: &str, other: &Value) -> bool {
    let in_namespace = match term["namespaces"].as_array() {
        Some(list) if !list.is_empty() => list.iter().any(|n| n == object::namespace(other)),
        _ => object::namespace(other) == ns,
    };
    in_namespace && selector_matches(&term["labelSelector"], &other["metadata"]["labels"])
}

/// A structured `LabelSelector` (matchLabels and matchExpressions) against labels. A
/// missing selector matches nothing, as in affinity terms.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let labels_ok = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| &labels[k] == v));
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let value = &labels[key];
            let values = e["values"].as_array().cloned().unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => values.contains(value),
                Some("NotIn") => !values.contains(value),
                Some("Exists") => !value.is_null(),
                Some("DoesNotExist") => value.is_null(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

fn host_ports(pod: &Value) -> Vec<i64> {
    let host_network = pod["spec"]["hostNetwork"] == true;
    let mut ports = Vec::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for p in c["ports"].as_array().into_iter().flatten() {
            if let Some(port) = p["hostPort"].as_i64() {
                ports.push(port);
            } else if host_network && let Some(port) = p["containerPort"].as_i64() {
                ports.push(port);
            }
        }
    }
    ports
}
