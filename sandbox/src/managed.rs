//! Field ownership (`metadata.managedFields`): sets of field paths per manager, in the
//! FieldsV1 encoding Kubernetes uses (`f:name`, `k:{"name":"a"}`, `.`).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::keys;
use crate::registry::ResourceType;
use crate::store::Subresource;

/// One path element as FieldsV1 writes it.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Metadata fields the server owns; they never appear in anyone's field set.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Entry {
    pub fn is_apply(&self) -> bool {
        self.operation == "Apply"
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.fields),
        });
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }
}

pub fn subresource_name(sub: Subresource) -> &'static str {
    match sub {
        Subresource::Main => "",
        Subresource::Status => "status",
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            api_version: e["apiVersion"].as_str().unwrap_or("").into(),
            subresource: e["subresource"].as_str().unwrap_or("").into(),
            time: e["time"].as_str().unwrap_or("").into(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let meta = crate::object::meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Records a non-apply write: the fields it changed become `manager`'s (operation
/// `Update`) and stop being anyone else's; fields that no longer exist are dropped.
pub fn record_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    sub: Subresource,
) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_fields = scoped(rt, sub, fields_of(rt, new));
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p)))
        .cloned()
        .collect();
    let sub_name = subresource_name(sub);
    for e in &mut entries {
        e.fields.retain(|p| !changed.contains(p));
    }
    if !changed.is_empty() {
        let api_version = api_version_of(new);
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub_name)
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = crate::object::now_rfc3339();
                e.api_version = api_version;
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version,
                subresource: sub_name.into(),
                time: crate::object::now_rfc3339(),
                fields: changed,
            }),
        }
    }
    prune(&mut entries, new);
    write_entries(new, &entries);
}

/// Drops paths that no longer exist in `obj`.
pub fn prune(entries: &mut Vec<Entry>, obj: &Value) {
    for e in entries.iter_mut() {
        e.fields.retain(|p| value_at(obj, p).is_some());
    }
    entries.retain(|e| !e.fields.is_empty());
}

pub fn api_version_of(obj: &Value) -> String {
    obj["apiVersion"].as_str().unwrap_or("").to_string()
}

/// Keeps the part of a field set a subresource may own: `/status` owns `.status`; the main
/// resource owns everything else when the kind has a status subresource.
pub fn scoped(rt: &ResourceType, sub: Subresource, set: FieldSet) -> FieldSet {
    if !rt.has_status {
        return set;
    }
    let is_status = |p: &Path| p.first().is_some_and(|f| f == "f:status");
    set.into_iter()
        .filter(|p| match sub {
            Subresource::Main => !is_status(p),
            Subresource::Status => is_status(p),
        })
        .collect()
}

/// Every leaf path of `obj` (and every keyed list item, as `...k:{..}/.`).
pub fn fields_of(rt: &ResourceType, obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(map) = obj.as_object() {
        for (k, v) in map {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Some(meta) = v.as_object() {
                        for (mk, mv) in meta {
                            if SERVER_META.contains(&mk.as_str()) {
                                continue;
                            }
                            walk(
                                rt,
                                mv,
                                &format!("metadata.{mk}"),
                                vec!["f:metadata".into(), format!("f:{mk}")],
                                &mut out,
                            );
                        }
                    }
                }
                _ => walk(rt, v, k, vec![format!("f:{k}")], &mut out),
            }
        }
    }
    out
}

fn walk(rt: &ResourceType, v: &Value, dotted: &str, path: Path, out: &mut FieldSet) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                walk(rt, child, &format!("{dotted}.{k}"), p, out);
            }
        }
        Value::Array(items) if !items.is_empty() && keys::is_set(rt, dotted) => {
            for item in items {
                let mut p = path.clone();
                p.push(format!("v:{item}"));
                out.insert(p);
            }
        }
        Value::Array(items) if !items.is_empty() => match keys::list_keys(rt, dotted) {
            Some(key_fields) => {
                for item in items {
                    let Some(k) = key_element(item, &key_fields) else {
                        // An item without its key cannot be tracked; own the list whole.
                        out.insert(path.clone());
                        return;
                    };
                    let mut item_path = path.clone();
                    item_path.push(k);
                    let mut dot = item_path.clone();
                    dot.push(".".into());
                    out.insert(dot);
                    walk(rt, item, &format!("{dotted}[]"), item_path, out);
                }
            }
            None => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

/// `k:{"name":"a"}` for an item, with key fields in sorted order as Kubernetes writes them.
pub fn key_element(item: &Value, key_fields: &[String]) -> Option<String> {
    let mut sorted: Vec<&String> = key_fields.iter().collect();
    sorted.sort();
    let mut parts = Vec::new();
    for f in sorted {
        let v = item.get(f.as_str())?;
        parts.push(format!("{}:{}", Value::String(f.clone()), v));
    }
    Some(format!("k:{{{}}}", parts.join(",")))
}

/// The value a path points to, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        if el == "." {
            continue;
        }
        if let Some(f) = el.strip_prefix("f:") {
            cur = cur.get(f)?;
        } else if let Some(k) = el.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur = cur
                .as_array()?
                .iter()
                .find(|item| want.iter().all(|(wk, wv)| item.get(wk) == Some(wv)))?;
        } else if let Some(v) = el.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur = cur.as_array()?.iter().find(|item| **item == want)?;
        } else if let Some(i) = el.strip_prefix("i:") {
            cur = cur.as_array()?.get(i.parse::<usize>().ok()?)?;
        } else {
            return None;
        }
    }
    Some(cur)
}

pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for el in path {
            let entry = node.entry(el.clone()).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            node = match entry {
                Value::Object(m) => m,
                _ => unreachable!("entry was just made an object"),
            };
        }
    }
    Value::Object(root)
}

pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn go(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
        let Some(map) = v.as_object() else { return };
        for (k, child) in map {
            prefix.push(k.clone());
            let leaf = child.as_object().is_none_or(Map::is_empty);
            if leaf {
                out.insert(prefix.clone());
            } else {
                go(child, prefix, out);
            }
            prefix.pop();
        }
    }
    go(v, &mut Vec::new(), &mut out);
    out
}

/// `.spec.containers[name="a"].image`, the way conflict messages name a field.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let inner = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| {
                    m.iter()
                        .map(|(a, b)| format!("{a}={b}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            s.push_str(&format!("[{inner}]"));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn deploy() -> ResourceType {
        crate::builtin::types()
            .into_iter()
            .find(|t| t.kind == "Deployment")
            .unwrap()
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "uid": "x", "labels": {"app": "a"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "redis"}]}}}
        });
        let set = fields_of(&deploy(), &obj);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:image"],
            json!({})
        );
        assert!(v1["f:metadata"].get("f:uid").is_none());
        assert_eq!(from_fields_v1(&v1), set);
        for p in &set {
            assert!(value_at(&obj, p).is_some(), "{p:?}");
        }
    }
}
