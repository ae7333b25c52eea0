//! JSON patch (RFC 6902): add, remove, replace, move, copy and test at JSON pointers.

use serde_json::Value;

use crate::error::ApiError;

pub fn apply(current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = patch.as_array().ok_or_else(|| {
        ApiError::BadRequest("a JSON patch must be an array of operations".into())
    })?;
    let mut doc = current.clone();
    for op in ops {
        let name = op["op"].as_str().unwrap_or("");
        let path = op["path"]
            .as_str()
            .ok_or_else(|| ApiError::BadRequest(format!("operation {op} has no path")))?;
        match name {
            "add" => add(&mut doc, path, value_of(op)?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value_of(op)?)?;
            }
            "move" => {
                let from = from_of(op)?;
                let v = remove(&mut doc, from)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let from = from_of(op)?;
                let v = get(&doc, from)?.clone();
                add(&mut doc, path, v)?;
            }
            "test" => {
                let want = value_of(op)?;
                // As in the Go library Kubernetes uses, a missing value tests equal to null
                // (kube-runtime's finalizer helper relies on this).
                let have = get(&doc, path).ok().cloned().unwrap_or(Value::Null);
                if have != want {
                    return Err(unprocessable(format!(
                        "testing value {path} failed: the value is not {want}"
                    )));
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(doc)
}

/// Kubernetes answers a patch that cannot be applied with 422.
fn unprocessable(message: String) -> ApiError {
    ApiError::Invalid {
        message: format!(
            "the server rejected our request due to an error in our request: {message}"
        ),
        details: serde_json::json!({"causes": [{"message": message}]}),
    }
}

fn value_of(op: &Value) -> Result<Value, ApiError> {
    op.get("value")
        .cloned()
        .ok_or_else(|| ApiError::BadRequest(format!("operation {op} has no value")))
}

fn from_of(op: &Value) -> Result<&str, ApiError> {
    op["from"]
        .as_str()
        .ok_or_else(|| ApiError::BadRequest(format!("operation {op} has no from")))
}

fn tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::BadRequest(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &str) -> ApiError {
    unprocessable(format!("doc is missing path: {path:?}"))
}

fn get<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, ApiError> {
    let mut cur = doc;
    for t in tokens(path)? {
        cur = match cur {
            Value::Object(m) => m.get(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(cur)
}

fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), ApiError> {
    let mut toks = tokens(path)?;
    let last = toks
        .pop()
        .ok_or_else(|| unprocessable("cannot change the document root".into()))?;
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok((cur, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|_| missing(path))?
            };
            if i > a.len() {
                return Err(missing(path));
            }
            a.insert(i, value);
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i = last.parse::<usize>().map_err(|_| missing(path))?;
            if i >= a.len() {
                return Err(missing(path));
            }
            Ok(a.remove(i))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_runs_every_operation() {
        let doc = json!({"a": {"b": 1}, "l": [1, 2], "x~y": 0});
        let patch = json!([
            {"op": "test", "path": "/a/b", "value": 1},
            {"op": "add", "path": "/l/-", "value": 3},
            {"op": "add", "path": "/l/0", "value": 0},
            {"op": "replace", "path": "/a/b", "value": 2},
            {"op": "copy", "from": "/a", "path": "/c"},
            {"op": "move", "from": "/c/b", "path": "/d"},
            {"op": "remove", "path": "/x~0y"}
        ]);
        let out = apply(&doc, &patch).unwrap();
        assert_eq!(
            out,
            json!({"a": {"b": 2}, "l": [0, 1, 2, 3], "c": {}, "d": 2})
        );
    }

    #[test]
    fn a_failed_test_operation_is_unprocessable() {
        let err = apply(
            &json!({"a": 1}),
            &json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        let err = apply(&json!({"a": 1}), &json!([{"op": "remove", "path": "/b"}])).unwrap_err();
        assert_eq!(err.code(), 422);
        let missing_is_null = json!([{"op": "test", "path": "/b", "value": null}]);
        assert!(apply(&json!({"a": 1}), &missing_is_null).is_ok());
    }
}
