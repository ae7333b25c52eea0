//! The `RedisCluster` resource: spec, status and the small structs they hold.
//!
//! Seed fields keep the seed's spelling (`image, masters, replicas, basePort, maxMemory,
//! resources, exporterResources`); everything added since is optional so that the seed's
//! manifest stays valid as written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Redis Cluster.
// Each printcolumn repeats `type_ = "integer"` etc.; clippy reads those as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "redis.redis",
    version = "v1beta1",
    kind = "RedisCluster",
    namespaced,
    status = "RedisClusterStatus",
    shortname = "rdc",
    derive = "PartialEq",
    printcolumn(name = "Masters", type_ = "integer", json_path = ".spec.masters"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RedisClusterSpec {
    /// Redis container image. Default: a pinned `redis:7.2` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Number of masters (at least 3). The 16384 hash slots are shared among them.
    pub masters: u32,
    /// Replicas per master, 0 to 5. Default: 1.
    // The schema default lets the API server fill it in, so `kubectl get`'s Replicas column
    // is never blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = crate::defaults::REPLICAS))]
    pub replicas: Option<u32>,
    /// First client port. Node `i` listens on `basePort + i` and its cluster bus on
    /// `basePort + i + 10000`. Default: 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_port: Option<u32>,
    /// Redis `maxmemory` per node: a byte count or a number with a unit among
    /// b, k, kb, m, mb, g, gb (case-insensitive), e.g. `512mb`. Unset: no limit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::serde_helpers::string_or_integer"
    )]
    #[schemars(schema_with = "crate::serde_helpers::int_or_string_schema")]
    pub max_memory: Option<String>,
    /// Resources of the `redis` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Resources of the exporter sidecar container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_resources: Option<ResourceRequirements>,
    /// Exporter sidecar image. Default: a pinned `oliver006/redis_exporter` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_image: Option<String>,
    /// Secret holding the password every node requires (`requirepass`/`masterauth`).
    /// Unset: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<PasswordSecret>,
    /// Volume for `nodes.conf` and data, so a node keeps its identity across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// Redis `cluster-node-timeout` in milliseconds, 100 to 600000. Default: 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_node_timeout_ms: Option<u64>,
    /// Node selector for the Redis pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations for the Redis pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity for the Redis pods (replica anti-affinity to its master is added on top).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Run the pods on the host network so clients outside Kubernetes reach `nodeIP:port`.
    /// Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    /// Extra `redis.conf` settings. Keys the operator manages (port, maxmemory, cluster-*,
    /// ...) are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_config: Option<BTreeMap<String, String>>,
    /// A rebalance starts when a master is off its weighted share of slots by more than this
    /// percentage, 1 to 50. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance_threshold_percent: Option<u32>,
    /// Keys moved per `MIGRATE` batch during slot migration, 1 to 100000. Default: 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_batch_keys: Option<u32>,
}

/// Where the cluster password lives.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecret {
    /// Name of a Secret in the cluster's namespace.
    pub name: String,
    /// Key inside the Secret. Default: `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Persistent volume settings for each Redis node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Persistence {
    /// Whether each node gets a PersistentVolumeClaim. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Storage class of the claims. Unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Size of each claim, a Kubernetes quantity. Default: `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisClusterStatus {
    /// Lifecycle phase (Pending, Bootstrapping, Ready, ScalingOut, ...). A hint for humans:
    /// the operator always re-derives the truth from what it observes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions of type Ready, Progressing, Degraded and Invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Every Redis node of the cluster as last observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Human-readable detail about the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One Redis node as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The member's name, `<cluster>-<ordinal>`: its StatefulSet on Kubernetes (whose one pod is
    /// `<cluster>-<ordinal>-0`), its process in local mode.
    pub name: String,
    /// Redis Cluster node id (40 hex characters).
    #[serde(default)]
    pub node_id: String,
    /// `master` or `replica`.
    pub role: String,
    /// For a replica, the node id of its master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_id: Option<String>,
    /// Address clients use.
    pub ip: String,
    /// Client port.
    pub port: u32,
    /// Slot ranges a master owns, e.g. `0-5460,5462`. Empty for replicas.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub slots: String,
}

/// Condition types the operator sets in `status.conditions`.
pub mod condition_types {
    /// Every slot is served and every node agrees on the slot map.
    pub const READY: &str = "Ready";
    /// The operator is changing the cluster (bootstrap, scaling, rebalancing, recovery).
    pub const PROGRESSING: &str = "Progressing";
    /// Part of the cluster is unavailable (e.g. slots of a failed master with no replica).
    pub const DEGRADED: &str = "Degraded";
    /// The spec was rejected by validation; nothing running is touched.
    pub const INVALID: &str = "Invalid";
}

/// Node roles as written in `status.nodes[].role`.
pub mod roles {
    pub const MASTER: &str = "master";
    pub const REPLICA: &str = "replica";
}
