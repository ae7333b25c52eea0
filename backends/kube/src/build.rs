//! Pure builders: from a validated cluster to the objects that run it. No client here; names
//! come only from [`crate::names`].

pub mod pdb;
pub mod script;
pub mod service;
pub mod statefulset;

use crate::names;
use engine::Ordinal;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use spec::RedisClusterSpec;

/// What every builder reads: the cluster's identity and its (valid) spec.
#[derive(Debug, Clone)]
pub struct ClusterCtx<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub spec: &'a RedisClusterSpec,
    /// Whether enough schedulable nodes exist to require that no two nodes of a shard share
    /// a host (else it is only preferred, so pods still start on a small cluster).
    pub spread_required: bool,
}

impl ClusterCtx<'_> {
    /// The owner reference every child carries: deleting the `RedisCluster` collects them.
    pub fn owner(&self) -> OwnerReference {
        OwnerReference {
            api_version: "redis.redis/v1beta1".to_string(),
            kind: "RedisCluster".to_string(),
            name: self.name.to_string(),
            uid: self.uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// The shard a node is laid out in (replica `k` follows master `k % masters`, as the
    /// engine lays clusters out): the scheduler keeps a shard's nodes on different hosts.
    pub fn shard(&self, ordinal: Ordinal) -> u32 {
        ordinal % self.spec.masters.max(1)
    }
}

/// Ports of node `ordinal`: client, cluster bus (client + 10000) and the exporter's
/// (client + 20000), or `None` when one leaves the port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    pub client: u16,
    pub bus: u16,
    pub exporter: u16,
}

/// The exporter listens 20000 above the client port: under host networking its port must
/// collide neither with a client nor with a bus port of any node of the cluster.
pub const EXPORTER_PORT_OFFSET: u32 = 20000;

pub fn node_ports(spec: &RedisClusterSpec, ordinal: Ordinal) -> Option<NodePorts> {
    let client = spec.client_port(ordinal)?;
    let bus = spec.bus_port(ordinal)?;
    let exporter = u16::try_from(u32::from(client) + EXPORTER_PORT_OFFSET).ok()?;
    Some(NodePorts {
        client,
        bus,
        exporter,
    })
}

/// The fingerprint of what a pod runs with and can only change by a restart: images,
/// resources, the server's command line (ports, timeouts, settings Redis cannot apply live),
/// persistence and networking. Scheduling constraints are left out on purpose: they matter
/// only when a pod is placed, so changing them must not restart a healthy cluster.
pub fn fingerprint(ctx: &ClusterCtx<'_>) -> String {
    let spec = ctx.spec;
    let mut parts: Vec<String> = vec![
        spec.image().to_string(),
        spec.exporter_image().to_string(),
        json(&spec.resources),
        json(&spec.exporter_resources),
        spec.host_network().to_string(),
        spec.persistence_enabled().to_string(),
        spec.persistence_size().to_string(),
        spec.cluster_node_timeout_ms().to_string(),
        spec.base_port().to_string(),
        json(&spec.password_secret),
    ];
    for (k, v) in spec.redis_config.iter().flatten() {
        let k = k.trim().to_ascii_lowercase();
        if !engine::desired::LIVE_SETTINGS.contains(&k.as_str()) {
            parts.push(format!("{k}={v}"));
        }
    }
    format!("{:016x}", fnv1a(parts.join("\n").as_bytes()))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// FNV-1a, 64 bits: stable across builds and platforms (the std hasher is not), which a
/// fingerprint stored on pods must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) fn labels_for(
    ctx: &ClusterCtx<'_>,
    ordinal: Ordinal,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = names::node_labels(ctx.name, ordinal);
    labels.insert(
        names::LABEL_SHARD.to_string(),
        ctx.shard(ordinal).to_string(),
    );
    labels
}

/// The per-cluster objects, built together (apply order: Service, then budget).
pub fn headless_service_and_pdb(
    ctx: &ClusterCtx<'_>,
) -> (
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
) {
    (service::headless_service(ctx), pdb::pdb(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(spec: &RedisClusterSpec) -> ClusterCtx<'_> {
        ClusterCtx {
            name: "c",
            namespace: "ns",
            uid: "u",
            spec,
            spread_required: false,
        }
    }

    fn spec(yaml: &str) -> RedisClusterSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    #[test]
    fn an_image_change_changes_the_fingerprint() {
        let a = spec("masters: 3");
        let b = spec("masters: 3\nimage: redis:7.4");
        assert_ne!(fingerprint(&ctx(&a)), fingerprint(&ctx(&b)));
    }

    #[test]
    fn settings_redis_applies_live_and_the_node_count_leave_the_fingerprint_alone() {
        let a = spec("masters: 3");
        let b = spec(
            "masters: 5\nreplicas: 2\nmaxMemory: 1gb\nredisConfig:\n  maxmemory-policy: allkeys-lru",
        );
        assert_eq!(fingerprint(&ctx(&a)), fingerprint(&ctx(&b)));
    }

    #[test]
    fn a_setting_that_needs_a_restart_changes_the_fingerprint() {
        let a = spec("masters: 3");
        let b = spec("masters: 3\nredisConfig:\n  io-threads: \"2\"");
        assert_ne!(fingerprint(&ctx(&a)), fingerprint(&ctx(&b)));
    }

    #[test]
    fn the_exporter_port_sits_20000_above_the_client_port_or_nowhere() {
        let s = spec("masters: 3\nbasePort: 10000");
        assert_eq!(
            node_ports(&s, 2),
            Some(NodePorts {
                client: 10002,
                bus: 20002,
                exporter: 30002
            })
        );
        let high = spec("masters: 3\nbasePort: 50000");
        assert_eq!(node_ports(&high, 0), None);
    }
}
