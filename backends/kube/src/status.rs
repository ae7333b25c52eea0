//! Writing the core's status projection to the `RedisCluster`'s status subresource.

use crate::error::Error;
use crate::members::apply_params;
use kube::Api;
use kube::api::Patch;
use spec::{RedisCluster, RedisClusterStatus};

/// Server-side applies `status` under the operator's field manager. Callers skip the write
/// when the status equals the one already shown, so a write never triggers a pass that
/// writes again.
pub async fn write(
    api: &Api<RedisCluster>,
    name: &str,
    status: &RedisClusterStatus,
) -> Result<(), Error> {
    let body = serde_json::json!({
        "apiVersion": "redis.redis/v1beta1",
        "kind": "RedisCluster",
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|e| Error::kube(format!("write status of RedisCluster {name}"), e))?;
    Ok(())
}
