//! Local `redis-server` processes as the members of a cluster: the `controller::Members`
//! implementation of local mode, and how a spec becomes a node's settings.

use controller::Members;
use engine::{MemberInfo, Ordinal};
use local::{LocalBackend, LocalConfig, LocalError};
use spec::RedisClusterSpec;

/// The node settings `spec` asks for, over `cfg`'s layout (directory, ports, binary,
/// password), which a spec edit never changes for a running cluster.
pub(crate) fn apply_settings(cfg: &mut LocalConfig, spec: &RedisClusterSpec) {
    cfg.maxmemory = spec.max_memory.clone();
    cfg.node_timeout_ms = spec.cluster_node_timeout_ms();
    cfg.appendonly = spec.persistence_enabled();
    cfg.extra_config = spec.server_settings();
}

/// Local processes as cluster members.
pub(crate) struct LocalMembers(pub(crate) LocalBackend);

impl LocalMembers {
    /// The configuration a member started with `spec` gets.
    fn settings(&self, spec: &RedisClusterSpec) -> LocalConfig {
        let mut cfg = self.0.config().clone();
        apply_settings(&mut cfg, spec);
        cfg
    }
}

impl Members for LocalMembers {
    type Error = LocalError;

    fn is_transient(error: &LocalError) -> bool {
        // A missing binary or a port taken by another program stays so until a person acts.
        !matches!(
            error,
            LocalError::RedisServerNotFound
                | LocalError::RedisServerMissing(_)
                | LocalError::ValkeyServerNotFound { .. }
                | LocalError::NotAServer { .. }
                | LocalError::PortOutOfRange { .. }
                | LocalError::PortInUse { .. }
        )
    }

    async fn list(&self) -> Result<Vec<MemberInfo>, LocalError> {
        Ok(self
            .0
            .members()?
            .into_iter()
            .map(|(ord, m)| MemberInfo {
                fingerprint: m.fingerprint,
                ..MemberInfo::new(ord, Some(m.addr), m.running)
            })
            .collect())
    }

    fn fingerprint(&self, spec: &RedisClusterSpec) -> Option<String> {
        Some(self.settings(spec).fingerprint())
    }

    async fn ensure_running(
        &self,
        ordinal: Ordinal,
        spec: &RedisClusterSpec,
    ) -> Result<(), LocalError> {
        let settings = self.settings(spec);
        self.0
            .ensure_running_with(ordinal, &settings)
            .await
            .map(|_| ())
    }

    async fn replace(&self, ordinal: Ordinal, spec: &RedisClusterSpec) -> Result<(), LocalError> {
        let settings = self.settings(spec);
        self.0.replace(ordinal, &settings).await.map(|_| ())
    }

    async fn delete(&self, ordinal: Ordinal) -> Result<(), LocalError> {
        self.0.delete(ordinal).await
    }

    async fn delete_data(&self, ordinal: Ordinal) -> Result<(), LocalError> {
        self.0.delete_data(ordinal).await
    }
}
