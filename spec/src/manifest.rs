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
    serde_yaml::from_str(text).map_err(syntax_error)
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
    fn a_missing_spec_is_reported() {
        let text = HEADER.to_owned();
        assert_eq!(
            parse_manifest(&text).map(|_| ()).map_err(|e| e.to_string()),
            Err("line 1: missing field `spec`".to_owned())
        );
    }
}
