//! From a `RedisCluster` spec to what the engine needs. Validation runs here, so an invalid
//! spec reaches the engine as a list of problems, and the engine changes nothing.

use spec::RedisClusterSpec;
use std::collections::BTreeMap;

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
        live_config: live_config(spec),
        // The member provider knows what a member would run with; the reconciler sets it.
        fingerprint: None,
    }
}

/// The spec's settings that running nodes take with `CONFIG SET`, written as `CONFIG GET`
/// prints them: `redisConfig` entries named in [`engine::desired::LIVE_SETTINGS`], then
/// `maxMemory` (it wins over a `maxmemory` entry), sizes in bytes, yes/no and enums lowercase.
/// A value that does not parse is left out (validation reports it).
fn live_config(spec: &RedisClusterSpec) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let entries = spec.redis_config.iter().flatten();
    let max_memory = spec.max_memory.iter().map(|v| ("maxmemory", v.as_str()));
    for (name, value) in entries
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(max_memory)
    {
        let name = name.trim().to_ascii_lowercase();
        if !engine::desired::LIVE_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let value = if name == "maxmemory" {
            match spec::parse_max_memory(value) {
                Ok(bytes) => bytes.to_string(),
                Err(_) => continue,
            }
        } else {
            value.trim().to_ascii_lowercase()
        };
        out.insert(name, value);
    }
    out
}
