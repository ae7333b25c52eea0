//! Errors the API answers with, shaped as Kubernetes `Status` objects, and errors of the
//! sandbox itself (start-up, state files).

use serde_json::{Value, json};

/// A failed API request. Each variant maps to the HTTP code and `reason` a real API server
/// uses, because clients (kube-rs, kubectl, helm) branch on those two fields.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    NotFound { message: String, details: Value },
    #[error("{message}")]
    AlreadyExists { message: String, details: Value },
    #[error("{message}")]
    Conflict { message: String, details: Value },
    #[error("{message}")]
    Invalid { message: String, details: Value },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// Names the object an error is about, as `Status.details` does.
pub fn details(group: &str, kind_plural: &str, name: &str) -> Value {
    json!({ "name": name, "group": group, "kind": kind_plural })
}

impl ApiError {
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let what = qualified(group, resource);
        ApiError::NotFound {
            message: format!("{what} \"{name}\" not found"),
            details: details(group, resource, name),
        }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let what = qualified(group, resource);
        ApiError::AlreadyExists {
            message: format!("{what} \"{name}\" already exists"),
            details: details(group, resource, name),
        }
    }

    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        let what = qualified(group, resource);
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            details: details(group, resource, name),
        }
    }

    pub fn invalid(kind: &str, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Invalid {
            message: format!("{kind} \"{name}\" is invalid: {message}"),
            details: json!({ "name": name, "kind": kind, "causes": [{ "message": message }] }),
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Gone(_) | ApiError::Expired(_) => 410,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Forbidden(_) => 403,
            ApiError::Unauthorized(_) => 401,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::NotAcceptable(_) => 406,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Gone(_) => "Gone",
            ApiError::Expired(_) => "Expired",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object a real API server sends for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { details, .. }
            | ApiError::AlreadyExists { details, .. }
            | ApiError::Conflict { details, .. }
            | ApiError::Invalid { details, .. } => Some(details.clone()),
            _ => None,
        };
        if let (Some(details), Some(map)) = (details, status.as_object_mut()) {
            map.insert("details".into(), details);
        }
        status
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Failures of the sandbox process itself rather than of one request.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("only loopback addresses may be served, not {0}")]
    NotLoopback(String),
    #[error("cannot read or write {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {source}")]
    State {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot build a client: {0}")]
    Client(String),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("TLS: {0}")]
    Tls(String),
}
