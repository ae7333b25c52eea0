//! From a `RedisCluster` spec to what the engine needs. Validation runs here, so an invalid
//! spec reaches the engine as a list of problems, and the engine changes nothing.

use spec::RedisClusterSpec;

pub fn desired_from(
    spec: &RedisClusterSpec,
    previous: Option<&RedisClusterSpec>,
) -> engine::Desired {
    let problems = spec::validate(spec, previous)
        .iter()
        .map(ToString::to_string)
        .collect();
    engine::Desired {
        masters: spec.masters,
        replicas: spec.replicas(),
        rebalance_threshold_pct: spec.rebalance_threshold_percent(),
        node_timeout_ms: spec.cluster_node_timeout_ms(),
        persistent: spec.persistence_enabled(),
        deleting: false,
        problems,
    }
}
