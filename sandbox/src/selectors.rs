//! Label and field selectors as list and watch requests send them.

use serde_json::Value;

use crate::error::ApiError;
use crate::object;

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_term(term)?);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = object::labels(obj);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            // As in Kubernetes, `!=` also matches objects without the label.
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside `in (a,b)` parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn bad(term: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to parse requirement: {term:?}"))
}

fn parse_term(term: &str) -> Result<LabelReq, ApiError> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelReq::NotExists(valid_key(key.trim(), term)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelReq::NotEq(valid_key(k.trim(), term)?, v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(LabelReq::Eq(valid_key(k.trim(), term)?, v.trim().into()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(LabelReq::Eq(valid_key(k.trim(), term)?, v.trim().into()));
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        let (op, list) = if let Some(l) = rest.strip_prefix("notin") {
            ("notin", l)
        } else if let Some(l) = rest.strip_prefix("in") {
            ("in", l)
        } else {
            return Err(bad(term));
        };
        let list = list
            .trim()
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| bad(term))?;
        let values: Vec<String> = list
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        let key = valid_key(key, term)?;
        return Ok(if op == "in" {
            LabelReq::In(key, values)
        } else {
            LabelReq::NotIn(key, values)
        });
    }
    Ok(LabelReq::Exists(valid_key(term, term)?))
}

fn valid_key(key: &str, term: &str) -> Result<String, ApiError> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(bad(term))
    }
}

/// A parsed `fieldSelector`: `=`/`==`/`!=` on a few known fields. Each requirement holds
/// the JSON path it reads, which for some labels differs from the label itself (an
/// events.k8s.io `regarding.name` reads the stored `involvedObject.name`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// `group` and `kind` decide which fields beyond `metadata.name`/`metadata.namespace`
    /// are selectable, as each kind registers its own in Kubernetes.
    pub fn parse(text: &str, group: &str, kind: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            let Some(path) = selectable(group, kind, field) else {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            };
            reqs.push((path, equal, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, equal, want)| {
            let have = match object::path(obj, path) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (have == *want) == *equal
        })
    }
}

/// The JSON path a selectable field label reads, or None when the kind has no such label.
fn selectable(group: &str, kind: &str, field: &str) -> Option<String> {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return Some(field.to_string());
    }
    if kind == "Event" && (group.is_empty() || group == crate::events::GROUP) {
        return crate::events::selector_path(group, field);
    }
    let extra: &[&str] = match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "Node" => &["spec.unschedulable"],
        "ReplicaSet" => &["status.replicas"],
        _ => &[],
    };
    extra.contains(&field).then(|| field.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn every_label_operator_selects_as_kubernetes_does() {
        let o = obj(json!({"app": "redis", "tier": "cache"}));
        let cases = [
            ("app=redis", true),
            ("app==redis", true),
            ("app!=redis", false),
            ("missing!=x", true),
            ("app in (redis, valkey)", true),
            ("app notin (redis)", false),
            ("missing notin (redis)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=redis,tier in (cache,db)", true),
            ("app=redis,tier=db", false),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&o), want, "selector {sel:?}");
        }
    }

    #[test]
    fn a_malformed_label_selector_is_a_bad_request() {
        assert!(LabelSelector::parse("app in redis").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selectors_know_pod_fields_and_refuse_unknown_ones() {
        let pod =
            json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse("status.phase=Running", "", "Pod")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("status.phase!=Running", "", "Pod")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("metadata.name=p,metadata.namespace=ns", "", "ConfigMap")
                .unwrap()
                .matches(&pod)
        );
        assert!(FieldSelector::parse("status.phase=Running", "", "ConfigMap").is_err());
    }
}
