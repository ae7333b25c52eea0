//! The four PATCH content types a Kubernetes API server accepts.

pub mod apply;
pub mod json;
pub mod keys;
pub mod merge;
pub mod strategic;

use serde_json::Value;

use crate::error::ApiError;
use crate::registry::ResourceType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Result<PatchType, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {other:?}"
            ))),
        }
    }
}

/// Applies a JSON, merge or strategic patch to the current object.
pub fn patch_object(
    rt: &ResourceType,
    current: &Value,
    body: &[u8],
    ty: PatchType,
) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
    match ty {
        PatchType::Json => json::apply(current, &patch),
        PatchType::Merge => {
            let mut out = current.clone();
            merge::apply(&mut out, &patch);
            Ok(out)
        }
        PatchType::Strategic => {
            if !rt.merge_keys_builtin() {
                return Err(ApiError::UnsupportedMediaType(
                    "strategic merge patch is not supported for custom resources; use merge patch or server-side apply".into(),
                ));
            }
            let mut out = current.clone();
            strategic::apply(rt, &mut out, &patch, "")?;
            Ok(out)
        }
        PatchType::Apply => Err(ApiError::Internal(
            "apply patches go through patch::apply".into(),
        )),
    }
}
