//! Strategic merge patch for built-in kinds: a merge patch whose keyed lists (containers
//! by name, conditions by type, ...) merge item by item, with the `$patch`,
//! `$deleteFromPrimitiveList` and `$setElementOrder` directives.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::patch::keys;
use crate::registry::ResourceType;

/// Lists of scalars whose patch strategy is "merge" (union) rather than replace.
const MERGED_PRIMITIVE_LISTS: &[&str] = &["metadata.finalizers"];

pub fn apply(
    rt: &ResourceType,
    target: &mut Value,
    patch: &Value,
    path: &str,
) -> Result<(), ApiError> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        strip_directives(&mut replaced);
        *target = replaced;
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return Ok(());
    };
    for (k, v) in patch_map {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            // Ordering and retain hints do not change which items exist.
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(gone)) = (map.get_mut(field), v.as_array()) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        let child_path = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        if v.is_null() {
            map.remove(k);
            continue;
        }
        match v {
            Value::Array(items) => {
                let existing = map.entry(k.clone()).or_insert(Value::Null);
                merge_list(rt, existing, items, &child_path)?;
            }
            _ => apply(
                rt,
                map.entry(k.clone()).or_insert(Value::Null),
                v,
                &child_path,
            )?,
        }
    }
    Ok(())
}

fn merge_list(
    rt: &ResourceType,
    existing: &mut Value,
    items: &[Value],
    path: &str,
) -> Result<(), ApiError> {
    if MERGED_PRIMITIVE_LISTS.contains(&path) {
        let mut list = existing.as_array().cloned().unwrap_or_default();
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        *existing = Value::Array(list);
        return Ok(());
    }
    let Some(key_fields) = keys::list_keys(rt, path) else {
        let mut replaced = Value::Array(items.to_vec());
        strip_directives(&mut replaced);
        *existing = replaced;
        return Ok(());
    };
    // A list-level `{"$patch": "replace"}` item replaces the whole list.
    if items.iter().any(|i| {
        i.get("$patch").and_then(Value::as_str) == Some("replace")
            && i.as_object().is_some_and(|m| m.len() == 1)
    }) {
        let mut replaced = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        strip_directives(&mut replaced);
        *existing = replaced;
        return Ok(());
    }
    let mut list = existing.as_array().cloned().unwrap_or_default();
    let item_path = format!("{path}[]");
    for patch_item in items {
        let same_key = |candidate: &Value| {
            key_fields
                .iter()
                .all(|f| candidate.get(f) == patch_item.get(f))
        };
        if key_fields.iter().any(|f| patch_item.get(f).is_none()) {
            return Err(ApiError::BadRequest(format!(
                "map: {patch_item} does not contain declared merge key: {}",
                key_fields.join(",")
            )));
        }
        let pos = list.iter().position(same_key);
        let delete = patch_item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => apply(rt, &mut list[i], patch_item, &item_path)?,
            (None, false) => {
                let mut fresh = Value::Null;
                apply(rt, &mut fresh, patch_item, &item_path)?;
                list.push(fresh);
            }
        }
    }
    *existing = Value::Array(list);
    Ok(())
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> ResourceType {
        crate::builtin::types()
            .into_iter()
            .find(|t| t.kind == "Pod")
            .unwrap()
    }

    #[test]
    fn containers_merge_by_name_and_conditions_by_type() {
        let mut obj = json!({
            "metadata": {"finalizers": ["a"]},
            "spec": {"containers": [
                {"name": "redis", "image": "redis:7", "args": ["x"]},
                {"name": "exporter", "image": "exp:1"}
            ]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        });
        let patch = json!({
            "metadata": {"finalizers": ["b"]},
            "spec": {"containers": [
                {"name": "redis", "image": "redis:8", "args": ["y"]},
                {"name": "exporter", "$patch": "delete"},
                {"name": "sidecar", "image": "s:1"}
            ]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]}
        });
        apply(&pod(), &mut obj, &patch, "").unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            obj["spec"]["containers"],
            json!([{"name": "redis", "image": "redis:8", "args": ["y"]}, {"name": "sidecar", "image": "s:1"}])
        );
        assert_eq!(
            obj["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}])
        );
    }

    #[test]
    fn a_list_item_without_its_merge_key_is_refused() {
        let mut obj = json!({"spec": {"containers": []}});
        let patch = json!({"spec": {"containers": [{"image": "x"}]}});
        assert!(apply(&pod(), &mut obj, &patch, "").is_err());
    }
}
