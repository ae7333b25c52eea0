//! Reading a `RedisCluster` manifest from YAML or JSON (JSON is a subset of YAML, so one
//! parser serves both) with errors that name the line and the field.

use kube::Resource;
use thiserror::Error;

use crate::types::RedisCluster;

/// Why a manifest could not be read as a `RedisCluster`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    /// The text is not YAML/JSON, or a field has the wrong shape. `line` is 1-based.
    #[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Syntax {
        line: Option<usize>,
        message: String,
    },
    /// The document is valid YAML but not an object.
    #[error("the manifest must be a YAML or JSON object, got {0}")]
    NotAnObject(&'static str),
    /// A field under `spec` that no version of the type knows, usually a typo. The API server
    /// would drop it silently (or reject it under kubectl's strict validation); either way the
    /// user's intent would be lost.
    #[error("{path}: unknown field{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownField {
        path: String,
        suggestion: Option<String>,
    },
    /// `apiVersion` or `kind` is missing or names another resource.
    #[error("{field}: expected {expected:?}, got {found}")]
    WrongType {
        field: &'static str,
        expected: String,
        found: String,
    },
}

/// Parses one `RedisCluster` manifest.
pub fn parse_manifest(text: &str) -> Result<RedisCluster, ManifestError> {
    // Read the type header first so that, say, a Deployment is reported as the wrong kind
    // rather than as a Deployment missing `spec.masters`.
    let document: serde_yaml::Value = serde_yaml::from_str(text).map_err(syntax_error)?;
    let mapping = match &document {
        serde_yaml::Value::Mapping(m) => m,
        other => return Err(ManifestError::NotAnObject(shape_name(other))),
    };
    check_header(mapping, "apiVersion", &RedisCluster::api_version(&()))?;
    check_header(mapping, "kind", &RedisCluster::kind(&()))?;
    // Deserialise from the text again, not from `document`: only the text carries line
    // numbers for the error message.
    let cluster: RedisCluster = serde_yaml::from_str(text).map_err(syntax_error)?;
    // serde ignores keys it does not know. Serialising what was understood and comparing the
    // key sets finds them without a hand-kept list of field names.
    if let (Some(written), Ok(understood)) =
        (mapping.get("spec"), serde_yaml::to_value(&cluster.spec))
        && let Some(err) = first_unknown_field("spec", written, &understood)
    {
        return Err(err);
    }
    Ok(cluster)
}

/// Walks `written` (the user's document) alongside `understood` (the parsed value written back)
/// and reports the first key present only in the former. Null values are skipped: they mean
/// "unset" and are dropped on the way back.
fn first_unknown_field(
    path: &str,
    written: &serde_yaml::Value,
    understood: &serde_yaml::Value,
) -> Option<ManifestError> {
    match (written, understood) {
        (serde_yaml::Value::Mapping(w), serde_yaml::Value::Mapping(u)) => {
            w.iter().find_map(|(key, value)| {
                let name = match key {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                let child = format!("{path}.{name}");
                match u.get(key) {
                    Some(known) => first_unknown_field(&child, value, known),
                    None if value.is_null() => None,
                    None => {
                        let suggestion = suggest(path, &name, u);
                        Some(ManifestError::UnknownField {
                            path: child,
                            suggestion,
                        })
                    }
                }
            })
        }
        (serde_yaml::Value::Sequence(w), serde_yaml::Value::Sequence(u)) => w
            .iter()
            .zip(u)
            .enumerate()
            .find_map(|(i, (w, u))| first_unknown_field(&format!("{path}[{i}]"), w, u)),
        _ => None,
    }
}

/// A known field whose name differs from `name` only in case (`maxmemory` → `maxMemory`).
/// At the top of `spec` every field is known from the schema; deeper down only the fields
/// the user set are, which still catches the common mistakes.
fn suggest(path: &str, name: &str, understood: &serde_yaml::Mapping) -> Option<String> {
    let mut known: Vec<String> = understood
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    if path == "spec" {
        let schema = schemars::schema_for!(crate::types::RedisClusterSpec);
        if let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) {
            known.extend(properties.keys().cloned());
        }
    }
    known
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| format!("{path}.{k}"))
}

fn check_header(
    mapping: &serde_yaml::Mapping,
    field: &'static str,
    expected: &str,
) -> Result<(), ManifestError> {
    let found = match mapping.get(field) {
        None => "nothing (the field is missing)".to_owned(),
        Some(serde_yaml::Value::String(s)) if s == expected => return Ok(()),
        Some(serde_yaml::Value::String(s)) => format!("{s:?}"),
        Some(other) => format!("a {}", shape_name(other)),
    };
    Err(ManifestError::WrongType {
        field,
        expected: expected.to_owned(),
        found,
    })
}

fn shape_name(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "null (an empty document)",
        serde_yaml::Value::Bool(_) => "boolean",
        serde_yaml::Value::Number(_) => "number",
        serde_yaml::Value::String(_) => "string",
        serde_yaml::Value::Sequence(_) => "list",
        serde_yaml::Value::Mapping(_) => "object",
        serde_yaml::Value::Tagged(_) => "tagged value",
    }
}

/// serde_yaml already prefixes the message with the field path (`spec.masters: ...`); its
/// trailing ` at line L column C` is moved to the front as `line L:` so every error reads the
/// same way.
fn syntax_error(error: serde_yaml::Error) -> ManifestError {
    let mut message = error.to_string();
    let line = error.location().map(|loc| {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        message = message.replacen(&suffix, "", 1);
        loc.line()
    });
    ManifestError::Syntax { line, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: t\n";

    #[test]
    fn a_type_error_names_the_line_and_the_field_path() {
        let text = format!("{HEADER}spec:\n  masters: three\n");
        assert_eq!(
            parse_manifest(&text).map(|_| ()).map_err(|e| e.to_string()),
            Err("line 6: spec.masters: invalid type: string \"three\", expected u32".to_owned())
        );
    }

    #[test]
    fn json_manifests_are_accepted() {
        let text = r#"{"apiVersion":"redis.redis/v1beta1","kind":"RedisCluster",
            "metadata":{"name":"j"},"spec":{"masters":4,"maxMemory":100000}}"#;
        let cluster = parse_manifest(text).map_err(|e| e.to_string());
        let cluster = cluster
            .as_ref()
            .map(|c| (c.spec.masters, c.spec.max_memory.clone()));
        assert_eq!(cluster, Ok((4, Some("100000".to_owned()))));
    }

    #[test]
    fn a_numeric_max_memory_is_read_as_a_byte_count() {
        let text = format!("{HEADER}spec:\n  masters: 3\n  maxMemory: 100000\n");
        let parsed = parse_manifest(&text).map(|c| c.spec.max_memory_bytes());
        assert_eq!(parsed, Ok(Ok(Some(100_000))));
    }

    #[test]
    fn a_wrong_kind_is_reported_before_any_field_error() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  masters: x\n";
        assert_eq!(
            parse_manifest(text).map(|_| ()).map_err(|e| e.to_string()),
            Err("apiVersion: expected \"redis.redis/v1beta1\", got \"apps/v1\"".to_owned())
        );
    }

    #[test]
    fn a_missing_kind_is_reported_as_missing() {
        let text = "apiVersion: redis.redis/v1beta1\nspec:\n  masters: 3\n";
        assert_eq!(
            parse_manifest(text).map(|_| ()).map_err(|e| e.to_string()),
            Err("kind: expected \"RedisCluster\", got nothing (the field is missing)".to_owned())
        );
    }

    #[test]
    fn a_document_that_is_not_an_object_is_rejected() {
        assert_eq!(
            parse_manifest("- 1\n- 2\n").map(|_| ()),
            Err(ManifestError::NotAnObject("list"))
        );
        assert_eq!(
            parse_manifest("").map(|_| ()),
            Err(ManifestError::NotAnObject("null (an empty document)"))
        );
    }

    #[test]
    fn broken_yaml_names_the_line() {
        let text = format!("{HEADER}spec:\n  masters: [3\n");
        match parse_manifest(&text) {
            Err(ManifestError::Syntax { line: Some(_), .. }) => {}
            other => panic!("expected a syntax error with a line, got {other:?}"),
        }
    }

    #[test]
    fn a_misspelt_spec_field_is_reported_with_a_suggestion() {
        let text = format!("{HEADER}spec:\n  masters: 3\n  maxmemory: 1gb\n");
        assert_eq!(
            parse_manifest(&text).map(|_| ()).map_err(|e| e.to_string()),
            Err("spec.maxmemory: unknown field (did you mean spec.maxMemory?)".to_owned())
        );
    }

    #[test]
    fn unknown_fields_inside_nested_objects_are_reported() {
        let text = format!(
            "{HEADER}spec:\n  masters: 3\n  persistence:\n    enabled: true\n    sise: 2Gi\n"
        );
        assert_eq!(
            parse_manifest(&text).map(|_| ()).map_err(|e| e.to_string()),
            Err("spec.persistence.sise: unknown field".to_owned())
        );
    }

    #[test]
    fn explicit_nulls_are_not_unknown_fields() {
        let text = format!("{HEADER}spec:\n  masters: 3\n  replicas: null\n  persistence: ~\n");
        assert!(parse_manifest(&text).is_ok());
    }

    #[test]
    fn a_missing_spec_is_reported() {
        let text = HEADER.to_owned();
        assert_eq!(
            parse_manifest(&text).map(|_| ()).map_err(|e| e.to_string()),
            Err("line 1: missing field `spec`".to_owned())
        );
    }
}
