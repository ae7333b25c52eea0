//! What can fail in the Kubernetes backend, and whether trying again may help.

/// One error type for the backend: every variant names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("RedisCluster has no {0}")]
    MissingField(&'static str),
    #[error("node {ordinal}: {reason}")]
    Node { ordinal: u32, reason: String },
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source,
        }
    }

    /// A refusal only a person can fix (forbidden, invalid object) is not retried as if it
    /// were a timeout; everything else may succeed on the next pass.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube {
                source: kube::Error::Api(status),
                ..
            } => !matches!(status.code, 400 | 401 | 403 | 422),
            Error::Kube { .. } => true,
            Error::MissingField(_) | Error::Node { .. } | Error::Serialize { .. } => false,
            Error::Finalizer(_) => true,
        }
    }

    /// A short CamelCase reason for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::MissingField(_) => "MissingField",
            Error::Node { .. } => "NodeError",
            Error::Serialize { .. } => "SerializeError",
            Error::Finalizer(_) => "FinalizerError",
        }
    }
}

/// True when the API answered 404 (an object already gone is what a delete wants).
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
