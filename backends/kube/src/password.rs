//! The cluster's password: read from its Secret, rotated on the running nodes without
//! downtime, and handed to the Redis adapter. The value is compared, never logged.

use crate::controller::ClusterState;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use redis_backend::{AdapterConfig, MigrationProgress, RedisAdapter};
use spec::RedisCluster;

/// Why the password could not be read: the spec points at nothing usable (the spec is
/// invalid), or the API did not answer this time (the last known password stays).
enum PasswordError {
    Invalid(String),
    Unreadable(String),
}

/// The cluster's password from its Secret, or the problem that makes the spec invalid.
async fn read_password(
    client: &Client,
    obj: &RedisCluster,
    namespace: &str,
) -> Result<Option<String>, PasswordError> {
    let Some(secret_ref) = obj.spec.password_secret.as_ref() else {
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let key = secret_ref.key();
    let secret = api.get_opt(&secret_ref.name).await.map_err(|e| {
        PasswordError::Unreadable(format!(
            "cannot read Secret {namespace}/{}: {e}",
            secret_ref.name
        ))
    })?;
    let secret = secret.ok_or_else(|| {
        PasswordError::Invalid(format!(
            "Secret {namespace}/{} does not exist",
            secret_ref.name
        ))
    })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            PasswordError::Invalid(format!(
                "Secret {namespace}/{} has no key {key:?}",
                secret_ref.name
            ))
        })?;
    let password = String::from_utf8(bytes).map_err(|_| {
        PasswordError::Invalid(format!(
            "key {key:?} of Secret {namespace}/{} is not UTF-8",
            secret_ref.name
        ))
    })?;
    if password.is_empty() {
        return Err(PasswordError::Invalid(format!(
            "key {key:?} of Secret {namespace}/{} is empty",
            secret_ref.name
        )));
    }
    Ok(Some(password))
}

/// The password to reach the nodes with now: the Secret's; when the Secret cannot be read,
/// `last` (the password last read, `None` before any read). A Secret that makes the spec
/// invalid (missing, no such key, empty) adds its problem to `problems`; a read that failed
/// this time only (the API away) is logged and changes nothing.
pub(crate) async fn current_password(
    client: &Client,
    obj: &RedisCluster,
    namespace: &str,
    last: Option<&Option<String>>,
    problems: &mut Vec<String>,
) -> Option<String> {
    match read_password(client, obj, namespace).await {
        Ok(p) => p,
        Err(PasswordError::Invalid(problem)) => {
            problems.push(format!("spec.passwordSecret: {problem}"));
            last.cloned().flatten()
        }
        Err(PasswordError::Unreadable(why)) => {
            let name = obj.metadata.name.as_deref().unwrap_or_default();
            tracing::warn!(%namespace, cluster = %name, "{why}; keeping the last known password");
            last.cloned().flatten()
        }
    }
}

/// A new password: running nodes take it with `CONFIG SET` (`masterauth` on every node first,
/// so no replication link breaks, then `requirepass`), and the adapter uses it from then on.
/// The replication user (see `engine::replication_gate`) takes the new password beside the
/// old one first and drops the old one last, so a replica reconnecting in between is let in
/// with either.
pub(crate) async fn rotate_password(
    state: &mut ClusterState,
    obj: &RedisCluster,
    password: Option<String>,
) {
    let old = state.reconciler.redis().clone();
    let members = controller::Members::list(state.reconciler.members())
        .await
        .unwrap_or_default();
    {
        let running: Vec<_> = members
            .iter()
            .filter(|m| m.running)
            .filter_map(|m| Some((m.ordinal, m.addr.as_ref()?)))
            .collect();
        let new = password.as_deref();
        for (ordinal, addr) in &running {
            if let Err(e) = old.set_replication_password(addr, new, true).await {
                tracing::warn!(ordinal, error = %e, "cannot give the replication user the new password; the engine sets it when it opens the node's gate again");
            }
        }
        for (setting, value) in [
            ("masterauth", engine::replication_gate::masterauth(new)),
            ("requirepass", new.unwrap_or_default()),
        ] {
            for (ordinal, addr) in &running {
                if let Err(e) = old.config_set(addr, setting, value).await {
                    tracing::warn!(ordinal, setting, error = %e, "cannot apply the new password to a running node; it takes it when it restarts");
                }
            }
        }
    }
    use_password(state, obj, password.clone());
    let current = state.reconciler.redis().clone();
    for m in members.iter().filter(|m| m.running) {
        let Some(addr) = &m.addr else { continue };
        if let Err(e) = current
            .set_replication_password(addr, password.as_deref(), false)
            .await
        {
            tracing::warn!(ordinal = m.ordinal, error = %e, "cannot drop the old password of the replication user");
        }
    }
    let key = state.reconciler.key();
    tracing::info!(namespace = %key.namespace, cluster = %key.name, "password changed on the running nodes");
}

/// From now on the cluster's nodes are reached with `password`.
pub(crate) fn use_password(state: &mut ClusterState, obj: &RedisCluster, password: Option<String>) {
    let key = state.reconciler.key().clone();
    state.reconciler.set_redis(adapter(
        &obj.spec,
        password.clone(),
        &key.namespace,
        &key.name,
    ));
    state.password = Some(password);
}

/// The Redis adapter of one cluster: its password, its migration batch, its progress metrics.
pub(crate) fn adapter(
    spec: &spec::RedisClusterSpec,
    password: Option<String>,
    namespace: &str,
    name: &str,
) -> RedisAdapter {
    RedisAdapter::new(AdapterConfig {
        password,
        migrate_batch: spec.migration_batch_keys() as usize,
        ..AdapterConfig::default()
    })
    .with_progress(MigrationProgress::for_cluster(namespace, name))
}
