//! The `/scale` subresource (`kubectl scale`, autoscalers): an `autoscaling/v1` Scale view of
//! a workload's replica count, for Deployments, StatefulSets, ReplicaSets and CRDs that
//! declare `subresources.scale`.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::object;
use crate::registry::{ResourceType, ScalePaths};

/// Where the built-in workloads keep their replica counts.
pub fn builtin_paths(kind: &str) -> Option<ScalePaths> {
    matches!(kind, "Deployment" | "StatefulSet" | "ReplicaSet").then(|| ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        // Built-ins keep a LabelSelector object here, rendered as a selector string.
        label_selector: Some(".spec.selector".into()),
    })
}

fn get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    object::path(obj, path.trim_start_matches('.'))
}

/// `{"matchLabels": {"a": "b"}, "matchExpressions": [...]}` as `a=b,key in (x,y)`.
fn selector_string(v: &Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    let mut terms: Vec<String> = v["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or("")))
        .collect();
    for e in v["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    terms.join(",")
}

/// The Scale object for `obj`.
pub fn view(rt: &ResourceType, obj: &Value) -> Result<Value, ApiError> {
    let paths = rt.scale.as_ref().ok_or_else(|| not_found(rt))?;
    let meta = object::meta(obj).cloned().unwrap_or_default();
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": get(obj, &paths.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": {"replicas": get(obj, &paths.status_replicas).cloned().unwrap_or(json!(0))},
    });
    if let Some(sel) = paths.label_selector.as_deref().and_then(|p| get(obj, p)) {
        scale["status"]["selector"] = json!(selector_string(sel));
    }
    Ok(scale)
}

/// `obj` with the replica count a (possibly patched) Scale asks for.
pub fn apply(rt: &ResourceType, obj: &Value, scale: &Value) -> Result<Value, ApiError> {
    let paths = rt.scale.as_ref().ok_or_else(|| not_found(rt))?;
    let replicas = scale["spec"]["replicas"]
        .as_i64()
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "Scale",
                object::name(obj),
                "spec.replicas: Invalid value: must be greater than or equal to 0",
            )
        })?;
    let mut next = obj.clone();
    let parts: Vec<&str> = paths
        .spec_replicas
        .trim_start_matches('.')
        .split('.')
        .collect();
    object::set_path(&mut next, &parts, json!(replicas));
    // A Scale carrying a resourceVersion is a precondition on the object.
    match scale["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
    {
        Some(rv) => object::meta_mut(&mut next).insert("resourceVersion".into(), json!(rv)),
        None => object::meta_mut(&mut next).remove("resourceVersion"),
    };
    Ok(next)
}

fn not_found(rt: &ResourceType) -> ApiError {
    ApiError::NotFound {
        message: format!(
            "the server could not find the requested resource ({}/scale)",
            rt.plural
        ),
        details: json!({}),
    }
}
