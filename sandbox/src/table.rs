//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with a
//! CRD's printer columns or a few columns per built-in kind.

use serde_json::{Value, json};

use crate::object;
use crate::registry::{PrinterColumn, ResourceType};

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> Include {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// Whether the Accept header asks for a Table (kubectl lists `as=Table` first).
pub fn wanted(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

fn col(name: &str, type_: &str, priority: i64, path: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: String::new(),
        priority,
        json_path: path.into(),
    }
}

/// Columns after Name: the CRD's own, or the usual ones of a built-in kind; Age is added
/// where the CRD declares nothing or the kind has no special printer.
fn columns(rt: &ResourceType) -> Vec<PrinterColumn> {
    if !rt.columns.is_empty() {
        return rt.columns.clone();
    }
    let age = col("Age", "date", 0, ".metadata.creationTimestamp");
    let mut cols = match rt.kind.as_str() {
        "Pod" => vec![
            col("Ready", "string", 0, POD_READY),
            col("Status", "string", 0, ".status.phase"),
            col(
                "Restarts",
                "integer",
                0,
                ".status.containerStatuses[0].restartCount",
            ),
        ],
        "Namespace" => vec![col("Status", "string", 0, ".status.phase")],
        "Deployment" | "StatefulSet" | "ReplicaSet" => vec![
            col("Replicas", "integer", 0, ".spec.replicas"),
            col("Ready", "integer", 0, ".status.readyReplicas"),
        ],
        "Service" => vec![
            col("Type", "string", 0, ".spec.type"),
            col("Cluster-IP", "string", 0, ".spec.clusterIP"),
        ],
        "CustomResourceDefinition" => vec![col(
            "Created At",
            "string",
            0,
            ".metadata.creationTimestamp",
        )],
        _ => Vec::new(),
    };
    if rt.kind != "CustomResourceDefinition" {
        cols.push(age);
    }
    if rt.kind == "Pod" {
        cols.push(col("IP", "string", 1, ".status.podIP"));
        cols.push(col("Node", "string", 1, ".spec.nodeName"));
    }
    cols
}

/// A computed column: ready containers over all containers, as kubectl shows `1/1`.
const POD_READY: &str = "(ready containers)";

fn pod_ready(obj: &Value) -> Value {
    let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = obj["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
    json!(format!("{ready}/{total}"))
}

fn definitions(rt: &ResourceType) -> Vec<Value> {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    defs.extend(columns(rt).into_iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    defs
}

/// Both Event APIs print with Kubernetes' Event columns.
fn is_event(rt: &ResourceType) -> bool {
    rt.kind == "Event" && (rt.group.is_empty() || crate::events::is_view(rt))
}

fn row(rt: &ResourceType, obj: &Value, include: Include) -> Value {
    let mut cells = vec![json!(object::name(obj))];
    if is_event(rt) {
        cells = crate::events::table::cells(&crate::events::to_storage(rt, obj.clone()));
    }
    for c in columns(rt).into_iter().filter(|_| !is_event(rt)) {
        if c.json_path == POD_READY {
            cells.push(pod_ready(obj));
            continue;
        }
        let v = eval_path(obj, &c.json_path).cloned().unwrap_or(Value::Null);
        let cell = match (c.type_.as_str(), &v) {
            ("date", Value::String(s)) => json!(age(s)),
            (_, Value::Null) => json!("<none>"),
            _ => v,
        };
        cells.push(cell);
    }
    let mut r = json!({"cells": cells});
    match include {
        Include::None => {}
        Include::Object => r["object"] = obj.clone(),
        Include::Metadata => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"].clone()});
        }
    }
    r
}

/// A Table of `objects`; `headers` false leaves out the column definitions (watch events
/// after the first).
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    rv: &str,
    include: Include,
    headers: bool,
) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(rt, o, include)).collect();
    let defs = match (headers, is_event(rt)) {
        (false, _) => Vec::new(),
        (true, true) => crate::events::table::definitions(),
        (true, false) => definitions(rt),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// The subset of JSONPath printer columns use: `.a.b`, `.a[0].b`, and
/// `.a[?(@.type=="Ready")].status`.
pub fn eval_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inside = &after[..end];
            rest = after[end + 1..].trim_start_matches('.');
            let items = cur.as_array()?;
            cur = match inside
                .strip_prefix("?(@.")
                .and_then(|f| f.strip_suffix(')'))
            {
                Some(filter) => {
                    let (field, want) = filter.split_once("==")?;
                    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                    items
                        .iter()
                        .find(|i| i.get(field.trim()).and_then(Value::as_str) == Some(want))?
                }
                None => items.get(inside.parse::<usize>().ok()?)?,
            };
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        cur = cur.get(&rest[..end])?;
        rest = rest[end..].trim_start_matches('.');
    }
    Some(cur)
}

/// Age as kubectl shows it (`45s`, `3m12s`, `5h`, `2d`).
pub(crate) fn age(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86400 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths_follow_fields_indexes_and_filters() {
        let obj = json!({"spec": {"size": 3}, "status": {"conditions": [
            {"type": "Scheduled", "status": "True"}, {"type": "Ready", "status": "False"}
        ]}});
        assert_eq!(eval_path(&obj, ".spec.size"), Some(&json!(3)));
        assert_eq!(
            eval_path(&obj, ".status.conditions[0].type"),
            Some(&json!("Scheduled"))
        );
        assert_eq!(
            eval_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("False"))
        );
        assert_eq!(eval_path(&obj, ".spec.missing"), None);
    }

    #[test]
    fn only_a_first_choice_of_table_counts_as_asking_for_one() {
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
        assert!(!wanted(
            "application/json, application/json;as=Table;v=v1;g=meta.k8s.io"
        ));
    }
}
