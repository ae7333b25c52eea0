//! Every name and label the backend gives an object, in one place: builders, the member list
//! and cleanup all find objects by these and nothing else.

use engine::Ordinal;
use std::collections::BTreeMap;

/// The field manager of every server-side apply the operator makes (children and status).
pub const FIELD_MANAGER: &str = "redis-operator";
/// The finalizer that lets cleanup run before a `RedisCluster` goes.
pub const FINALIZER: &str = "redis.redis/cleanup";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// The Redis node's ordinal (0-based, masters first as laid out by the engine).
pub const LABEL_ORDINAL: &str = "redis.redis/ordinal";
/// The shard a node is laid out in (`ordinal % masters`): anti-affinity keeps a shard spread.
pub const LABEL_SHARD: &str = "redis.redis/shard";

pub const APP: &str = "redis-cluster";
pub const MANAGED_BY: &str = "redis-operator";

/// The configuration fingerprint a pod was built with (see [`crate::build::fingerprint`]).
pub const ANNOTATION_FINGERPRINT: &str = "redis.redis/config-fingerprint";

/// The name of the container that runs Redis, and of the exporter sidecar.
pub const REDIS_CONTAINER: &str = "redis";
pub const EXPORTER_CONTAINER: &str = "exporter";
/// The volume holding `nodes.conf` and the data (emptyDir, or the claim template's name).
pub const DATA_VOLUME: &str = "data";
pub const DATA_DIR: &str = "/data";

/// The StatefulSet of node `ordinal`.
pub fn statefulset(cluster: &str, ordinal: Ordinal) -> String {
    format!("{cluster}-{ordinal}")
}

/// Its only pod (a StatefulSet names its pods `<set>-<index>`).
pub fn pod(cluster: &str, ordinal: Ordinal) -> String {
    format!("{}-0", statefulset(cluster, ordinal))
}

/// The claim a persistent node keeps its data in (`<template>-<pod>`, as a StatefulSet
/// names it).
pub fn claim(cluster: &str, ordinal: Ordinal) -> String {
    format!("{DATA_VOLUME}-{}", pod(cluster, ordinal))
}

/// The ordinal a claim of `cluster` belongs to, from its name.
pub fn claim_ordinal(cluster: &str, claim: &str) -> Option<Ordinal> {
    claim
        .strip_prefix(DATA_VOLUME)?
        .strip_prefix('-')?
        .strip_prefix(cluster)?
        .strip_prefix('-')?
        .strip_suffix("-0")?
        .parse()
        .ok()
}

/// The headless Service every node's StatefulSet names as its `serviceName`.
pub fn service(cluster: &str) -> String {
    format!("{cluster}-nodes")
}

pub fn pdb(cluster: &str) -> String {
    cluster.to_string()
}

/// Labels every object of a cluster carries; they select the cluster's pods.
pub fn cluster_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
    ])
}

/// The labels of node `ordinal`'s StatefulSet and pod.
pub fn node_labels(cluster: &str, ordinal: Ordinal) -> BTreeMap<String, String> {
    let mut labels = cluster_labels(cluster);
    labels.insert(LABEL_COMPONENT.to_string(), "redis-node".to_string());
    labels.insert(LABEL_ORDINAL.to_string(), ordinal.to_string());
    labels
}

/// A label selector string for everything the operator manages (the watches use it).
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY}")
}

/// A label selector string for one cluster's objects.
pub fn cluster_selector(cluster: &str) -> String {
    format!("{},{LABEL_INSTANCE}={cluster}", managed_selector())
}

/// The ordinal a managed object's labels name, if any.
pub fn ordinal_of(labels: &BTreeMap<String, String>) -> Option<Ordinal> {
    labels.get(LABEL_ORDINAL)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_objects_are_named_after_the_cluster_and_its_ordinal() {
        assert_eq!(statefulset("cache", 4), "cache-4");
        assert_eq!(pod("cache", 4), "cache-4-0");
        assert_eq!(claim("cache", 4), "data-cache-4-0");
        assert_eq!(claim_ordinal("cache", "data-cache-4-0"), Some(4));
        assert_eq!(claim_ordinal("cache", "data-cache-x-4-0"), None);
    }

    #[test]
    fn the_ordinal_label_reads_back() {
        assert_eq!(ordinal_of(&node_labels("c", 7)), Some(7));
        assert_eq!(ordinal_of(&cluster_labels("c")), None);
    }
}
