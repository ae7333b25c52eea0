//! Events are one stored object with two APIs: core `v1` Event is the storage form and
//! `events.k8s.io/v1` Event a view of it, converted field by field on the way in and out,
//! as Kubernetes' internal Event type does. That way an operator writing through
//! `events.k8s.io` (kube-rs' `Recorder`) is seen by `kubectl get events` and
//! `kubectl describe`, which read the core API, with one resourceVersion sequence and one
//! watch history for both.

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;

pub mod table;

/// Group of the second view.
pub const GROUP: &str = "events.k8s.io";

/// Top-level fields whose names differ: (events.k8s.io name, core name). Every other
/// field (`reason`, `type`, `action`, `related`, `reportingInstance`, `eventTime`,
/// `series`, metadata) has the same name and shape in both.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `rt` is the `events.k8s.io` view, whose objects live under core `events`.
pub fn is_view(rt: &ResourceType) -> bool {
    rt.group == GROUP && rt.plural == "events"
}

/// The object in its storage (core v1) form. Objects of other types pass unchanged.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if !is_view(rt) {
        return obj;
    }
    let mut out = rename(obj, true);
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!("v1"));
    }
    out
}

/// The stored (core v1) object as `rt` serves it. Objects of other types pass unchanged.
pub fn from_storage(rt: &ResourceType, obj: Value) -> Value {
    if !is_view(rt) {
        return obj;
    }
    let mut out = rename(obj, false);
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!(rt.api_version()));
    }
    out
}

/// Renames the top-level fields from one side's names to the other's, in the object and
/// in the field sets of its `managedFields` (so ownership follows the field across
/// views). `to_core` picks the direction.
fn rename(mut obj: Value, to_core: bool) -> Value {
    let Some(map) = obj.as_object_mut() else {
        return obj;
    };
    rename_keys(map, "", to_core);
    if let Some(entries) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
        .and_then(Value::as_array_mut)
    {
        for entry in entries {
            if let Some(fields) = entry.get_mut("fieldsV1").and_then(Value::as_object_mut) {
                rename_keys(fields, "f:", to_core);
            }
        }
    }
    obj
}

fn rename_keys(map: &mut Map<String, Value>, prefix: &str, to_core: bool) {
    let pick = |(events, core): (&'static str, &'static str)| {
        if to_core {
            (events, core)
        } else {
            (core, events)
        }
    };
    // The target side's names are unknown fields in the source API; like the API server,
    // drop them rather than let them shadow the converted values.
    for pair in RENAMED {
        let (_, to) = pick(*pair);
        map.remove(&format!("{prefix}{to}"));
    }
    for pair in RENAMED {
        let (from, to) = pick(*pair);
        if let Some(v) = map.remove(&format!("{prefix}{from}")) {
            map.insert(format!("{prefix}{to}"), v);
        }
    }
}

/// The JSON path (in the storage form) a field selector label of an Event means, or None
/// when the label is not selectable. `group` tells which API the request came through.
pub fn selector_path(group: &str, field: &str) -> Option<String> {
    if group == GROUP {
        let path = match field {
            "reason" | "type" => field.to_string(),
            "reportingController" => "reportingComponent".into(),
            _ => {
                let rest = field.strip_prefix("regarding.")?;
                matches!(rest, "kind" | "name" | "namespace" | "uid")
                    .then(|| format!("involvedObject.{rest}"))?
            }
        };
        return Some(path);
    }
    let path = match field {
        "reason" | "type" | "reportingComponent" => field.to_string(),
        // Kubernetes selects `source` on the reporting component's name.
        "source" => "source.component".into(),
        _ => {
            let rest = field.strip_prefix("involvedObject.")?;
            matches!(
                rest,
                "kind"
                    | "name"
                    | "namespace"
                    | "uid"
                    | "apiVersion"
                    | "resourceVersion"
                    | "fieldPath"
            )
            .then(|| field.to_string())?
        }
    };
    Some(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn view() -> ResourceType {
        crate::registry::Registry::with_builtins()
            .find(GROUP, "v1", "events")
            .cloned()
            .unwrap()
    }

    #[test]
    fn an_events_k8s_io_event_converts_to_core_and_back_unchanged() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns", "managedFields": [
                {"manager": "m", "fieldsV1": {"f:note": {}, "f:regarding": {"f:name": {}}}}
            ]},
            "regarding": {"kind": "ConfigMap", "name": "c"},
            "note": "hello", "reason": "Made", "type": "Normal", "action": "Create",
            "reportingController": "ctl", "reportingInstance": "ctl-0",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"},
            "deprecatedSource": {"component": "ctl"}, "deprecatedCount": 3,
            "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2024-01-01T00:00:02Z",
        });
        let core = to_storage(&view(), ev.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "c");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "ctl");
        assert_eq!(core["source"]["component"], "ctl");
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("note").is_none());
        let fields = &core["metadata"]["managedFields"][0]["fieldsV1"];
        assert!(fields.get("f:message").is_some() && fields.get("f:involvedObject").is_some());
        assert_eq!(from_storage(&view(), core), ev);
    }

    #[test]
    fn core_only_names_sent_to_events_k8s_io_are_dropped_as_unknown_fields() {
        let ev = json!({"kind": "Event", "message": "ignored", "note": "kept"});
        assert_eq!(to_storage(&view(), ev)["message"], "kept");
    }

    #[test]
    fn selector_labels_of_both_apis_point_at_the_stored_fields() {
        assert_eq!(
            selector_path(GROUP, "regarding.name").as_deref(),
            Some("involvedObject.name")
        );
        assert_eq!(
            selector_path(GROUP, "reportingController").as_deref(),
            Some("reportingComponent")
        );
        assert_eq!(selector_path(GROUP, "involvedObject.name"), None);
        assert_eq!(
            selector_path("", "source").as_deref(),
            Some("source.component")
        );
        assert_eq!(
            selector_path("", "involvedObject.fieldPath").as_deref(),
            Some("involvedObject.fieldPath")
        );
        assert_eq!(selector_path("", "regarding.name"), None);
    }
}
