//! `GET .../pods/NAME/log` (`kubectl logs`): a container's output as the kubelet wrote it
//! to `<pod dir>/<container>.log`, or the previous run's with `previous=true`. `tailLines`
//! and `limitBytes` are applied; `follow`, `timestamps`, `sinceSeconds` and `sinceTime`
//! are accepted and ignored (the answer is the log so far, then the stream ends).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Response, StatusCode};
use serde_json::Value;

use super::Body;
use super::resources::RequestCtx;
use crate::error::ApiError;
use crate::registry::ResourceType;

pub fn pod_log(
    ctx: &RequestCtx<'_>,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    if ctx.method != Method::GET {
        return Err(ApiError::MethodNotAllowed(format!(
            "{} is not supported on pods/log",
            ctx.method
        )));
    }
    let param = |k: &str| {
        ctx.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let pod = ctx.server.store.get(rt, ns, name)?;
    let container = pick_container(&pod, name, param("container"))?;
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let Some(root) = &ctx.server.workloads else {
        return Err(ApiError::BadRequest(format!(
            "no kubelet runs pod {name}: this sandbox has no nodes"
        )));
    };
    let previous = matches!(param("previous"), Some("true" | "1"));
    let dir = crate::kubelet::volumes::pod_dir(root, &pod);
    let path = crate::kubelet::log_path(&dir, &container, previous);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Kubernetes' wording for a container that has not run (yet, or before).
            return Err(ApiError::BadRequest(if previous {
                format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
            } else {
                format!("container \"{container}\" in pod \"{name}\" is waiting to start")
            }));
        }
        Err(e) => {
            return Err(ApiError::Internal(format!(
                "cannot read the log of {container}: {e}"
            )));
        }
    };
    let number = |k: &str| -> Result<Option<usize>, ApiError> {
        param(k)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::BadRequest(format!("{k} must be a whole number, not {v:?}"))
                })
            })
            .transpose()
    };
    let mut body = tail(&text, number("tailLines")?);
    if let Some(limit) = number("limitBytes")? {
        body.truncate(limit);
    }
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

/// The container a log request is for: the one named (app or init), else the only app
/// container; a pod with several needs a name, as in Kubernetes.
fn pick_container(pod: &Value, pod_name: &str, wanted: Option<&str>) -> Result<String, ApiError> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let apps = names("containers");
    let inits = names("initContainers");
    match wanted {
        Some(c) if apps.iter().chain(&inits).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None if apps.len() == 1 => Ok(apps[0].clone()),
        None => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            apps.join(" ")
        ))),
    }
}

/// The last `lines` lines of `text` (all of it without a count).
fn tail(text: &[u8], lines: Option<usize>) -> Vec<u8> {
    let Some(n) = lines else {
        return text.to_vec();
    };
    if n == 0 {
        return Vec::new();
    }
    // Skip a final newline, so "a\nb\n" has two lines, not three.
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1);
    text[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines_with_or_without_a_final_newline() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Some(2)), b"b\nc");
        assert_eq!(tail(b"a\nb\n", Some(5)), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", Some(0)), b"");
        assert_eq!(tail(b"a\nb\n", None), b"a\nb\n");
    }
}
