//! The columns `kubectl get events` shows, as Kubernetes prints Events (the same for both
//! APIs, since both print the stored form): Last Seen, Type, Reason, Object, Message, and
//! with `-o wide` Subobject, Source, First Seen, Count and Name.

use serde_json::{Value, json};

/// Column definitions in Kubernetes' order; priority 1 columns appear with `-o wide`.
pub fn definitions() -> Vec<Value> {
    let cols: [(&str, i64); 10] = [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ];
    cols.iter()
        .map(|(name, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority})
        })
        .collect()
}

/// One row's cells from the stored (core v1) form of an Event.
pub fn cells(ev: &Value) -> Vec<Value> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let first_seen = first_of(&[&ev["firstTimestamp"], &ev["eventTime"]]);
    let last_seen = first_of(&[
        &ev["series"]["lastObservedTime"],
        &ev["lastTimestamp"],
        &ev["eventTime"],
    ]);
    let involved = &ev["involvedObject"];
    let object = format!(
        "{}/{}",
        text(&involved["kind"]).to_lowercase(),
        text(&involved["name"])
    );
    let source = match ev["source"]["component"].as_str().filter(|s| !s.is_empty()) {
        Some(component) => match ev["source"]["host"].as_str().filter(|s| !s.is_empty()) {
            Some(host) => format!("{component}, {host}"),
            None => component.to_string(),
        },
        None => text(&ev["reportingComponent"]),
    };
    let count = ev["series"]["count"]
        .as_i64()
        .or_else(|| ev["count"].as_i64())
        .unwrap_or(1);
    vec![
        json!(seen(last_seen)),
        json!(text(&ev["type"])),
        json!(text(&ev["reason"])),
        json!(object),
        json!(text(&involved["fieldPath"])),
        json!(source),
        json!(text(&ev["message"])),
        json!(seen(first_seen)),
        json!(count),
        json!(crate::object::name(ev)),
    ]
}

fn first_of<'a>(candidates: &[&'a Value]) -> Option<&'a str> {
    candidates
        .iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
}

fn seen(timestamp: Option<&str>) -> String {
    match timestamp {
        Some(t) => crate::table::age(t),
        None => "<unknown>".into(),
    }
}
