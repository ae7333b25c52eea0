//! The rules a real API server applies to writes before storing them: names, namespaces,
//! server-owned metadata, status separation, generation, finalizers.

use serde_json::{Value, json};

use super::{Inner, Subresource};
use crate::error::ApiError;
use crate::object;
use crate::registry::ResourceType;

/// Whether a deleting object may go: no finalizers left (for a Namespace, also none in
/// `spec.finalizers`, which the namespace lifecycle clears once it is empty).
pub fn finalized(obj: &Value) -> bool {
    let spec_finalizers = obj["spec"]["finalizers"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let is_namespace = obj["kind"].as_str() == Some("Namespace");
    // A Pod in its grace period stays until the kubelet deletes it with no grace.
    let pod_in_grace = obj["kind"].as_str() == Some("Pod")
        && obj["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|g| g > 0);
    !pod_in_grace
        && object::is_deleting(obj)
        && object::finalizers(obj).is_empty()
        && !(is_namespace && spec_finalizers)
}

pub(super) fn prepare_create(
    inner: &Inner,
    rt: &ResourceType,
    namespace: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request was not a JSON object".into(),
        ));
    }
    check_type(rt, obj)?;
    stamp_type(rt, obj);
    let meta = object::meta_mut(obj);
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        name = format!("{prefix}{}", object::random_suffix());
        meta.insert("name".into(), json!(name));
    }
    check_name(&rt.kind, &name)?;
    if rt.namespaced {
        let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        meta.insert("namespace".into(), json!(namespace));
        match inner.objects.get(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            namespace.into(),
        )) {
            None => return Err(ApiError::not_found("", "namespaces", namespace)),
            Some(ns) if object::is_deleting(ns) => {
                return Err(ApiError::Forbidden(format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    rt.plural
                )));
            }
            Some(_) => {}
        }
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(f);
    }
    if rt.has_status
        && let Some(map) = obj.as_object_mut()
    {
        // Status is the controllers' to write, through /status.
        map.remove("status");
        match rt.kind.as_str() {
            "Pod" => {
                map.insert("status".into(), json!({"phase": "Pending"}));
            }
            "Namespace" => {
                map.insert("status".into(), json!({"phase": "Active"}));
            }
            _ => {}
        }
    }
    match &rt.schema {
        Some(schema) => crate::schema::admit(schema, &rt.kind, obj)?,
        None => crate::defaults::apply(&rt.kind, obj),
    }
    if rt.kind == "Namespace" && obj["spec"]["finalizers"].is_null() {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    Ok(())
}

/// Stored objects always carry their type, so code that sees only the JSON knows it.
fn stamp_type(rt: &ResourceType, obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
    }
}

fn check_type(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind {kind} does not match the resource {}",
            rt.kind
        )));
    }
    Ok(())
}

/// DNS subdomain names (RFC 1123), as most kinds require.
fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let ok = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            kind,
            name,
            format!(
                "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ))
    }
}

/// Applies the update rules to a proposed object: resourceVersion precondition, metadata
/// the client may not change, status separation and generation.
pub(super) fn merge_write(
    rt: &ResourceType,
    current: &Value,
    mut proposed: Value,
    sub: Subresource,
) -> Result<Value, ApiError> {
    if !proposed.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request was not a JSON object".into(),
        ));
    }
    check_type(rt, &proposed)?;
    stamp_type(rt, &mut proposed);
    let name = object::name(current).to_string();
    let proposed_name = object::name(&proposed);
    if !proposed_name.is_empty() && proposed_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({proposed_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(rv) = object::resource_version(&proposed)
        && Some(rv) != object::resource_version(current)
    {
        return Err(ApiError::stale(&rt.group, &rt.plural, &name));
    }
    let mut next = match sub {
        Subresource::Main => {
            if rt.has_status
                && let Some(map) = proposed.as_object_mut()
            {
                match current.get("status") {
                    Some(s) => map.insert("status".into(), s.clone()),
                    None => map.remove("status"),
                };
            }
            proposed
        }
        Subresource::Status => {
            // Only .status comes from the request.
            let mut next = current.clone();
            if let Some(map) = next.as_object_mut() {
                match proposed.get("status") {
                    Some(s) => map.insert("status".into(), s.clone()),
                    None => map.remove("status"),
                };
            }
            next
        }
    };
    // Pruning and defaulting come before the generation check, so a default the client
    // left out does not count as a spec change.
    match &rt.schema {
        Some(schema) => crate::schema::admit(schema, &rt.kind, &mut next)?,
        None => crate::defaults::apply(&rt.kind, &mut next),
    }
    // Identity and lifecycle fields stay as the server set them.
    let cur_meta = object::meta(current).cloned().unwrap_or_default();
    let meta = object::meta_mut(&mut next);
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match cur_meta.get(f) {
            Some(v) => meta.insert(f.into(), v.clone()),
            None => meta.remove(f),
        };
    }
    if sub == Subresource::Status {
        return Ok(next);
    }
    if object::is_deleting(current) {
        // While deleting, finalizers may only be removed, never added.
        let before = object::finalizers(current);
        let added = object::finalizers(&next)
            .into_iter()
            .any(|f| !before.contains(&f));
        if added {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if spec_changed(current, &next) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object::meta_mut(&mut next).insert("generation".into(), json!(generation));
    }
    Ok(next)
}

/// Whether a write changes what `generation` counts: `.spec` where the kind has one,
/// otherwise anything outside metadata and status.
fn spec_changed(old: &Value, new: &Value) -> bool {
    if old.get("spec").is_some() || new.get("spec").is_some() {
        return old.get("spec") != new.get("spec");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}
