//! What can fail in the Kubernetes backend, and whether trying again may help.

/// One error type for the backend: every variant names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {}", describe(source))]
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
    #[error("{0} does not exist")]
    NotFound(String),
    #[error(
        "the Pods, StatefulSets and PersistentVolumeClaims of namespace {namespace} were not listed within {secs} s (may this identity list and watch them?)"
    )]
    NotSynced { namespace: String, secs: u64 },
}

impl Error {
    /// A pass of the core that could not start: the member caches could not be read.
    pub fn from_pass(e: controller::ReconcileError<Error>) -> Self {
        match e {
            controller::ReconcileError::ListMembers(inner) => inner,
            other => Error::Node {
                ordinal: 0,
                reason: other.to_string(),
            },
        }
    }

    /// The finalizer's wrapping taken off: what failed inside keeps its own kind (and with it
    /// whether trying again may help).
    pub fn from_finalizer(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner,
            F::AddFinalizer(source) => Error::kube("add the finalizer", source),
            F::RemoveFinalizer(source) => Error::kube("remove the finalizer", source),
            other => Error::Finalizer(other.to_string()),
        }
    }

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
            Error::Finalizer(_) | Error::NotFound(_) | Error::NotSynced { .. } => true,
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
            Error::NotFound(_) => "NotFound",
            Error::NotSynced { .. } => "NotSynced",
        }
    }
}

/// What the API server said, without the debug dump of its whole Status object.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// True when the API answered 404 (an object already gone is what a delete wants).
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
