//! A CRD's OpenAPI v3 schema applied to writes as the API server applies it: unknown
//! fields pruned, nulls in non-nullable fields dropped, defaults filled in, then types,
//! `required`, `enum` and numeric/length bounds checked.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::object;

/// Prunes, defaults and validates `obj` in place; the error lists every violation.
pub fn admit(schema: &Value, kind: &str, obj: &mut Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if let Some(map) = obj.as_object_mut() {
        // apiVersion, kind and metadata belong to the server, not to the schema.
        let props = known_properties(schema);
        let preserve = preserves_unknown(schema);
        map.retain(|k, _| {
            matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                || preserve
                || props.contains_key(k)
        });
        for (k, sub) in &props {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            fill_default(map, k, sub);
            if let Some(v) = map.get_mut(k) {
                if v.is_null() && !nullable(sub) {
                    map.remove(k);
                    continue;
                }
                walk(sub, v, k, &mut errors);
            }
        }
        required(schema, map, "", &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            kind,
            object::name(obj),
            errors.join(", "),
        ))
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
        || schema["x-kubernetes-embedded-resource"].as_bool() == Some(true)
}

fn nullable(schema: &Value) -> bool {
    schema["nullable"].as_bool() == Some(true)
}

/// `properties`, including those of `allOf`/`anyOf`/`oneOf` branches.
fn known_properties(schema: &Value) -> Map<String, Value> {
    let mut props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for key in ["allOf", "anyOf", "oneOf"] {
        for branch in schema[key].as_array().into_iter().flatten() {
            for (k, v) in known_properties(branch) {
                props.entry(k).or_insert(v);
            }
        }
    }
    props
}

fn fill_default(map: &mut Map<String, Value>, key: &str, sub: &Value) {
    if !map.contains_key(key)
        && let Some(d) = sub.get("default")
    {
        map.insert(key.to_string(), d.clone());
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn required(schema: &Value, map: &Map<String, Value>, path: &str, errors: &mut Vec<String>) {
    for r in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(r) {
            errors.push(format!("{}: Required value", join(path, r)));
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(schema: &Value, value: &mut Value, path: &str, errors: &mut Vec<String>) {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        if !matches!(type_name(value), "integer" | "string") {
            errors.push(format!(
                "{path}: Invalid value: {value}: {path} in body must be of type int-or-string"
            ));
        }
        return;
    }
    let want = schema["type"].as_str().unwrap_or("");
    let have = type_name(value);
    let fits = want.is_empty()
        || want == have
        || (want == "number" && have == "integer")
        || (have == "null" && nullable(schema));
    if !fits {
        errors.push(format!(
            "{path}: Invalid value: \"{have}\": {path} in body must be of type {want}: \"{have}\""
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !value.is_null()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{path}: Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    bounds(schema, value, path, errors);
    match value {
        Value::Object(map) => {
            if preserves_unknown(schema) && schema["properties"].is_null() {
                return;
            }
            let props = known_properties(schema);
            let extra = &schema["additionalProperties"];
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let sub = match props.get(&k) {
                    Some(s) => s.clone(),
                    None if extra.is_object() => extra.clone(),
                    None if extra.as_bool() == Some(true) || preserves_unknown(schema) => continue,
                    None => {
                        map.remove(&k);
                        continue;
                    }
                };
                if let Some(v) = map.get_mut(&k) {
                    if v.is_null() && !nullable(&sub) {
                        map.remove(&k);
                        continue;
                    }
                    walk(&sub, v, &join(path, &k), errors);
                }
            }
            for (k, sub) in &props {
                if !map.contains_key(k) && sub.get("default").is_some() {
                    fill_default(map, k, sub);
                    if let Some(v) = map.get_mut(k) {
                        walk(sub, v, &join(path, k), errors);
                    }
                }
            }
            required(schema, map, path, errors);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn bounds(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            errors.push(format!("{path}: Invalid value: {value}: {path} in body should be greater than or equal to {min}"));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            errors.push(format!("{path}: Invalid value: {value}: {path} in body should be less than or equal to {max}"));
        }
    }
    let len = match value {
        Value::String(s) => Some(s.chars().count() as u64),
        Value::Array(a) => Some(a.len() as u64),
        _ => None,
    };
    if let Some(len) = len {
        let (min_key, max_key) = if value.is_string() {
            ("minLength", "maxLength")
        } else {
            ("minItems", "maxItems")
        };
        if let Some(min) = schema[min_key].as_u64()
            && len < min
        {
            errors.push(format!(
                "{path}: Invalid value: {value}: {path} in body should have at least {min} {}",
                if value.is_string() {
                    "chars long"
                } else {
                    "items"
                }
            ));
        }
        if let Some(max) = schema[max_key].as_u64()
            && len > max
        {
            errors.push(format!(
                "{path}: Too long: may have at most {max} {}",
                if value.is_string() { "bytes" } else { "items" }
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "note": {"type": "string", "nullable": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true}
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn unknown_fields_are_pruned_and_defaults_filled() {
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"size": 2, "bogus": 1, "labels": {"a": "b"}, "free": {"any": {"thing": 1}}, "port": "http", "note": null},
            "status": {"ready": true, "extra": 1},
            "top": 1
        });
        admit(&schema(), "W", &mut obj).unwrap();
        assert_eq!(
            obj,
            json!({
                "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
                "spec": {"size": 2, "mode": "a", "labels": {"a": "b"}, "free": {"any": {"thing": 1}}, "port": "http", "note": null},
                "status": {"ready": true}
            })
        );
    }

    #[test]
    fn wrong_types_missing_required_fields_and_bad_enums_are_invalid() {
        let mut obj = json!({"metadata": {"name": "w"}, "spec": {"size": "big"}});
        let err = admit(&schema(), "W", &mut obj).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(
            err.to_string()
                .contains("spec.size in body must be of type integer"),
            "{err}"
        );
        let mut obj = json!({"metadata": {"name": "w"}, "spec": {"mode": "c"}});
        let err = admit(&schema(), "W", &mut obj).unwrap_err().to_string();
        assert!(
            err.contains("spec.size: Required value") && err.contains("Unsupported value: \"c\""),
            "{err}"
        );
        let mut obj = json!({"metadata": {"name": "w"}, "spec": {"size": 0}});
        assert!(admit(&schema(), "W", &mut obj).is_err());
    }
}
