//! Server-side apply: merges a manager's configuration into the live object, tracks which
//! manager owns which field, refuses to take fields another manager set to a different
//! value (409 unless forced), and removes fields a manager applied before and no longer
//! sends (unless someone else still owns them).

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::managed::{self, Entry, FieldSet, Path};
use crate::patch::keys;
use crate::registry::ResourceType;
use crate::store::Subresource;

pub struct ApplyRequest<'a> {
    pub rt: &'a ResourceType,
    pub manager: &'a str,
    pub force: bool,
    pub subresource: Subresource,
}

/// Parses an apply body (YAML or JSON).
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "an apply configuration must be an object".into(),
        ));
    }
    Ok(v)
}

/// The object after applying `config` to `live` (None when it does not exist yet).
pub fn apply(
    req: &ApplyRequest<'_>,
    live: Option<&Value>,
    config: &Value,
) -> Result<Value, ApiError> {
    let rt = req.rt;
    let api_version = config["apiVersion"].as_str().unwrap_or("");
    let kind = config["kind"].as_str().unwrap_or("");
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApiError::BadRequest(
            "apiVersion and kind must be set in an apply configuration".into(),
        ));
    }
    if kind != rt.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind {kind} does not match the resource {}",
            rt.kind
        )));
    }
    let mut config = config.clone();
    drop_nulls(&mut config);
    let sub_name = managed::subresource_name(req.subresource);
    let applied = managed::scoped(rt, req.subresource, managed::fields_of(rt, &config));
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let mut entries = managed::read_entries(&base);

    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| !(e.manager == req.manager && e.is_apply() && e.subresource == sub_name))
    {
        for p in e.fields.intersection(&applied) {
            if is_item_marker(p) {
                continue;
            }
            if managed::value_at(&base, p) != managed::value_at(&config, p) {
                conflicts.push((e.manager.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            return Err(conflict_error(rt, &config, &conflicts));
        }
        for e in entries
            .iter_mut()
            .filter(|e| !(e.manager == req.manager && e.is_apply()))
        {
            e.fields
                .retain(|p| !conflicts.iter().any(|(m, cp)| *m == e.manager && cp == p));
        }
    }

    let previous: FieldSet = entries
        .iter()
        .find(|e| e.manager == req.manager && e.is_apply() && e.subresource == sub_name)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !(e.manager == req.manager && e.is_apply() && e.subresource == sub_name))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();

    let mut result = base.clone();
    merge(rt, &mut result, &config, "");
    // Deepest paths first, so an item's fields go before the item.
    let mut dropped: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied.contains(*p) && !others.contains(*p))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        // An item stays while anyone still owns a field inside it.
        let item = p.strip_suffix(&[".".to_string()]).unwrap_or(p);
        if is_item_marker(p) && others.iter().any(|o| o.starts_with(item)) {
            continue;
        }
        remove_path(&mut result, item);
    }

    entries.retain(|e| !(e.manager == req.manager && e.is_apply() && e.subresource == sub_name));
    entries.push(Entry {
        manager: req.manager.into(),
        operation: "Apply".into(),
        api_version: api_version.into(),
        subresource: sub_name.into(),
        time: crate::object::now_rfc3339(),
        fields: applied,
    });
    managed::prune(&mut entries, &result);
    managed::write_entries(&mut result, &entries);
    if let Some(map) = result.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    Ok(result)
}

fn is_item_marker(p: &Path) -> bool {
    p.last().is_some_and(|l| l == ".")
}

fn conflict_error(rt: &ResourceType, config: &Value, conflicts: &[(String, Path)]) -> ApiError {
    let name = config["metadata"]["name"].as_str().unwrap_or("");
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": managed::display(p)}))
        .collect();
    // Worded as structured-merge-diff words it, which kubectl shows as it is.
    let message = match conflicts {
        [(m, p)] => format!(
            "Apply failed with 1 conflict: conflict with \"{m}\": {}",
            managed::display(p)
        ),
        _ => {
            let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
            managers.dedup();
            let groups: Vec<String> = managers
                .iter()
                .map(|m| {
                    let fields: Vec<String> = conflicts
                        .iter()
                        .filter(|(cm, _)| cm == *m)
                        .map(|(_, p)| format!("- {}", managed::display(p)))
                        .collect();
                    format!("conflicts with \"{m}\":\n{}", fields.join("\n"))
                })
                .collect();
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                groups.join("\n")
            )
        }
    };
    ApiError::Conflict {
        message,
        details: json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}),
    }
}

/// Merges `config` into `live`: objects field by field, keyed lists item by item, atomic
/// lists and scalars replaced.
fn merge(rt: &ResourceType, live: &mut Value, config: &Value, path: &str) {
    match config {
        Value::Object(cfg) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let Value::Object(map) = live else { return };
            for (k, v) in cfg {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                merge(rt, map.entry(k.clone()).or_insert(Value::Null), v, &child);
            }
        }
        Value::Array(items) if keys::is_set(rt, path) && live.is_array() => {
            if let Some(existing) = live.as_array_mut() {
                for item in items {
                    if !existing.contains(item) {
                        existing.push(item.clone());
                    }
                }
            }
        }
        Value::Array(items) => {
            let key_fields = keys::list_keys(rt, path);
            let (Some(key_fields), Some(existing)) = (key_fields, live.as_array_mut()) else {
                *live = config.clone();
                return;
            };
            let item_path = format!("{path}[]");
            for item in items {
                let same = |c: &Value| key_fields.iter().all(|f| c.get(f) == item.get(f));
                match existing.iter_mut().find(|c| same(c)) {
                    Some(found) => merge(rt, found, item, &item_path),
                    None => existing.push(item.clone()),
                }
            }
        }
        _ => *live = config.clone(),
    }
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) = value_at_mut(obj, parents) else {
        return;
    };
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(list) = parent.as_array_mut() {
        let Some(target) =
            managed::value_at(&Value::Array(list.clone()), std::slice::from_ref(last)).cloned()
        else {
            return;
        };
        list.retain(|x| *x != target);
    }
}

fn value_at_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            cur = cur.get_mut(f)?;
        } else if el.starts_with("k:") || el.starts_with("v:") {
            let probe = Value::Array(cur.as_array()?.clone());
            let found = managed::value_at(&probe, std::slice::from_ref(el))?.clone();
            cur = cur.as_array_mut()?.iter_mut().find(|x| **x == found)?;
        } else {
            return None;
        }
    }
    Some(cur)
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cm() -> ResourceType {
        crate::builtin::types()
            .into_iter()
            .find(|t| t.kind == "ConfigMap")
            .unwrap()
    }

    fn req<'a>(rt: &'a ResourceType, manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            rt,
            manager,
            force,
            subresource: Subresource::Main,
        }
    }

    #[test]
    fn a_manager_that_stops_sending_a_field_removes_it() {
        let rt = cm();
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let live = apply(&req(&rt, "m", false), None, &first).unwrap();
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let live = apply(&req(&rt, "m", false), Some(&live), &second).unwrap();
        assert_eq!(live["data"], json!({"a": "1"}));
    }

    #[test]
    fn finalizers_are_a_set_each_manager_owns_its_own_items() {
        let rt = cm();
        let with = |f: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": [f]}});
        let live = apply(&req(&rt, "a", false), None, &with("a/x")).unwrap();
        let live = apply(&req(&rt, "b", false), Some(&live), &with("b/y")).unwrap();
        assert_eq!(live["metadata"]["finalizers"], json!(["a/x", "b/y"]));
        let none = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let live = apply(&req(&rt, "a", false), Some(&live), &none).unwrap();
        assert_eq!(live["metadata"]["finalizers"], json!(["b/y"]));
    }

    #[test]
    fn two_managers_conflict_on_a_different_value_unless_forced() {
        let rt = cm();
        let one = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let live = apply(&req(&rt, "one", false), None, &one).unwrap();
        let same = apply(&req(&rt, "two", false), Some(&live), &one).unwrap();
        assert_eq!(
            managed::read_entries(&same).len(),
            2,
            "equal values are shared"
        );
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
        let err = apply(&req(&rt, "two", false), Some(&live), &other).unwrap_err();
        assert_eq!(err.code(), 409);
        let forced = apply(&req(&rt, "two", true), Some(&live), &other).unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let owners: Vec<String> = managed::read_entries(&forced)
            .into_iter()
            .map(|e| e.manager)
            .collect();
        assert_eq!(owners, vec!["two".to_string()]);
    }
}
