//! Every rule a `RedisClusterSpec` must satisfy, as one pure function. The operator calls it
//! before touching anything, the CLI calls it for `validate -f`, and both show the same text.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::defaults;
use crate::memory::parse_max_memory;
use crate::quantity::parse_quantity;
use crate::types::RedisClusterSpec;

/// One reason a spec is rejected: the field it concerns and a plain-English reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Path of the offending field, e.g. `spec.masters`.
    pub field: String,
    /// What is wrong and, where it helps, what would be accepted.
    pub reason: String,
}

impl Problem {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// `redis.conf` keys the operator writes itself. Letting users override them would break the
/// cluster (wrong port, cluster mode off) or leak around the spec (maxmemory, password).
const OPERATOR_OWNED_CONFIG: &[&str] = &[
    "port",
    "cluster-enabled",
    "cluster-config-file",
    "cluster-node-timeout",
    "maxmemory",
    "bind",
    "dir",
    "daemonize",
    "requirepass",
    "masterauth",
    // The replication gate's user (`engine::replication_gate::USER`), and Valkey's names for both.
    "masteruser",
    "primaryuser",
    "primaryauth",
];
/// Prefix of the announce settings (`cluster-announce-ip`, `-port`, `-bus-port`, ...), which
/// the operator derives from where each pod runs.
const OPERATOR_OWNED_CONFIG_PREFIX: &str = "cluster-announce-";

const MAX_PORT: u128 = 65535;
/// The node timeouts a valid spec may set.
pub const CLUSTER_NODE_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=600_000;
/// The rebalance thresholds a valid spec may set.
pub const REBALANCE_THRESHOLD_PERCENT: std::ops::RangeInclusive<u32> = 1..=50;
const MIGRATION_BATCH_KEYS: std::ops::RangeInclusive<u32> = 1..=100_000;

/// What a valid spec risks without saying so: accepted, but the user should hear it. Shown by
/// `validate` (on standard error, exit code unchanged) and when a cluster starts.
pub fn warnings(spec: &RedisClusterSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    if spec.replicas() == 0 && !spec.persistence_enabled() {
        out.push(Problem::new(
            "spec.replicas",
            "0 replicas without persistence: when a master's process dies, its keys are lost \
             and it comes back empty (fine for a cache; set replicas >= 1 or \
             persistence.enabled to keep data)",
        ));
    }
    out
}

/// Checks `spec` (and, when given, the change from `previous`, the spec currently running)
/// and returns every problem found, in field order. An empty vector means the spec is valid.
pub fn validate(spec: &RedisClusterSpec, previous: Option<&RedisClusterSpec>) -> Vec<Problem> {
    // Destructured exhaustively so that adding a field to the spec fails to compile here
    // until someone decides how it is validated.
    let RedisClusterSpec {
        image,
        masters,
        replicas,
        base_port,
        max_memory,
        resources,
        exporter_resources,
        exporter_image,
        password_secret,
        persistence,
        cluster_node_timeout_ms,
        node_selector: _,
        tolerations: _,
        affinity: _,
        host_network: _,
        redis_config,
        rebalance_threshold_percent,
        migration_batch_keys,
    } = spec;

    let mut problems = Vec::new();

    check_image(&mut problems, "spec.image", image.as_deref());
    check_masters(&mut problems, *masters, previous.map(|p| p.masters));
    let replicas = replicas.unwrap_or(defaults::REPLICAS);
    if replicas > defaults::MAX_REPLICAS {
        problems.push(Problem::new(
            "spec.replicas",
            format!(
                "must be between 0 and {} replicas per master, got {replicas}",
                defaults::MAX_REPLICAS
            ),
        ));
    }
    check_ports(
        &mut problems,
        base_port.unwrap_or(defaults::BASE_PORT),
        *masters,
        replicas,
    );
    if let Some(text) = max_memory
        && let Err(e) = parse_max_memory(text)
    {
        problems.push(Problem::new("spec.maxMemory", e.to_string()));
    }
    check_resources(&mut problems, "spec.resources", resources.as_ref());
    check_resources(
        &mut problems,
        "spec.exporterResources",
        exporter_resources.as_ref(),
    );
    check_image(
        &mut problems,
        "spec.exporterImage",
        exporter_image.as_deref(),
    );
    if let Some(secret) = password_secret {
        if secret.name.trim().is_empty() {
            problems.push(Problem::new(
                "spec.passwordSecret.name",
                "must name a Secret, got an empty string",
            ));
        }
        if let Some(key) = &secret.key
            && key.trim().is_empty()
        {
            problems.push(Problem::new(
                "spec.passwordSecret.key",
                "must not be empty (leave it out to use \"password\")",
            ));
        }
    }
    if let Some(persistence) = persistence {
        if let Some(class) = &persistence.storage_class_name
            && class.trim().is_empty()
        {
            problems.push(Problem::new(
                "spec.persistence.storageClassName",
                "must not be empty (leave it out to use the default storage class)",
            ));
        }
        if let Some(size) = &persistence.size {
            check_quantity(&mut problems, "spec.persistence.size", size);
        }
    }
    check_range(
        &mut problems,
        "spec.clusterNodeTimeoutMs",
        *cluster_node_timeout_ms,
        CLUSTER_NODE_TIMEOUT_MS,
        "milliseconds",
    );
    if let Some(config) = redis_config {
        check_redis_config(&mut problems, config);
    }
    check_range(
        &mut problems,
        "spec.rebalanceThresholdPercent",
        *rebalance_threshold_percent,
        REBALANCE_THRESHOLD_PERCENT,
        "percent",
    );
    check_range(
        &mut problems,
        "spec.migrationBatchKeys",
        *migration_batch_keys,
        MIGRATION_BATCH_KEYS,
        "keys",
    );
    problems
}

fn check_image(problems: &mut Vec<Problem>, field: &str, image: Option<&str>) {
    if let Some(image) = image
        && image.trim().is_empty()
    {
        problems.push(Problem::new(
            field,
            "must not be empty (leave it out to use the default image)",
        ));
    }
}

fn check_masters(problems: &mut Vec<Problem>, masters: u32, previous: Option<u32>) {
    if masters > defaults::MAX_MASTERS {
        problems.push(Problem::new(
            "spec.masters",
            format!(
                "must be at most {} (each master needs one of Redis Cluster's 16384 slots), got {masters}",
                defaults::MAX_MASTERS
            ),
        ));
        return;
    }
    if masters >= defaults::MIN_MASTERS {
        return;
    }
    // A scale-in to below three gets its own wording: the user is changing a running cluster,
    // and the fix is to keep the current count, not to pick a bigger new one.
    let reason = match previous {
        Some(before) if before > masters => format!(
            "cannot scale in from {before} to {masters} masters: Redis Cluster needs at least {} masters to fail over",
            defaults::MIN_MASTERS
        ),
        _ => format!(
            "must be at least {} (Redis Cluster needs a majority of masters to fail over), got {masters}",
            defaults::MIN_MASTERS
        ),
    };
    problems.push(Problem::new("spec.masters", reason));
}

/// Node `i` (0-based, masters first then replicas) uses client port `basePort + i` and bus port
/// `basePort + i + 10000`; the highest node's bus port is therefore the one that overflows first.
fn check_ports(problems: &mut Vec<Problem>, base_port: u32, masters: u32, replicas: u32) {
    if base_port == 0 {
        problems.push(Problem::new(
            "spec.basePort",
            "must be between 1 and 65535, got 0",
        ));
        return;
    }
    // u128: masters, replicas and basePort are all user-controlled u32s, and none of the sums
    // below may wrap before they are compared with 65535.
    let nodes = u128::from(masters) * (1 + u128::from(replicas));
    if nodes == 0 {
        return;
    }
    let base = u128::from(base_port);
    let last = nodes - 1;
    let last_client = base + last;
    let last_bus = last_client + u128::from(defaults::BUS_PORT_OFFSET);
    if last_bus <= MAX_PORT {
        return;
    }
    let highest_base = (MAX_PORT + 1).saturating_sub(nodes + u128::from(defaults::BUS_PORT_OFFSET));
    let which = if last_client > MAX_PORT {
        format!("client port {last_client} of node {last} exceeds 65535")
    } else {
        format!(
            "bus port {last_bus} of node {last} (client port {last_client} + {}) exceeds 65535",
            defaults::BUS_PORT_OFFSET
        )
    };
    let fix = if highest_base >= 1 {
        format!("basePort must be at most {highest_base}")
    } else {
        "no basePort fits, reduce masters or replicas".to_owned()
    };
    problems.push(Problem::new(
        "spec.basePort",
        format!("{which}; with {nodes} nodes {fix}, got {base_port}"),
    ));
}

fn check_resources(
    problems: &mut Vec<Problem>,
    field: &str,
    resources: Option<&ResourceRequirements>,
) {
    let Some(resources) = resources else {
        return;
    };
    for (section, map) in [
        ("limits", resources.limits.as_ref()),
        ("requests", resources.requests.as_ref()),
    ] {
        for (name, Quantity(value)) in map.into_iter().flatten() {
            check_quantity(problems, &format!("{field}.{section}.{name}"), value);
        }
    }
}

fn check_quantity(problems: &mut Vec<Problem>, field: &str, value: &str) {
    match parse_quantity(value) {
        Ok(q) if q.negative => problems.push(Problem::new(
            field,
            format!("must not be negative, got {value:?}"),
        )),
        Ok(_) => {}
        Err(e) => problems.push(Problem::new(field, e.to_string())),
    }
}

fn check_range<T>(
    problems: &mut Vec<Problem>,
    field: &str,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
    unit: &str,
) where
    T: PartialOrd + fmt::Display,
{
    if let Some(value) = value
        && !range.contains(&value)
    {
        problems.push(Problem::new(
            field,
            format!(
                "must be between {} and {} {unit}, got {value}",
                range.start(),
                range.end()
            ),
        ));
    }
}

fn check_redis_config(problems: &mut Vec<Problem>, config: &BTreeMap<String, String>) {
    for (key, value) in config {
        let field = format!("spec.redisConfig.{key}");
        // Redis reads config keys case-insensitively, so `MaxMemory` is `maxmemory`.
        let lower = key.to_ascii_lowercase();
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(Problem::new(
                field,
                "must be a single redis.conf directive name (no spaces or line breaks)",
            ));
        } else if OPERATOR_OWNED_CONFIG.contains(&lower.as_str())
            || lower.starts_with(OPERATOR_OWNED_CONFIG_PREFIX)
        {
            problems.push(Problem::new(
                field,
                format!(
                    "is set by the operator and cannot be overridden{}",
                    owner_hint(&lower)
                ),
            ));
        } else if value.chars().any(char::is_control) {
            // A line break would let a value smuggle extra directives into redis.conf, and no
            // directive takes other control characters.
            problems.push(Problem::new(
                field,
                "value must not contain line breaks or other control characters",
            ));
        }
    }
}

/// Points at the spec field that controls an operator-owned setting, when there is one.
fn owner_hint(key: &str) -> &'static str {
    match key {
        "maxmemory" => " (use spec.maxMemory)",
        "port" => " (use spec.basePort)",
        "cluster-node-timeout" => " (use spec.clusterNodeTimeoutMs)",
        "requirepass" | "masterauth" | "primaryauth" => " (use spec.passwordSecret)",
        "masteruser" | "primaryuser" => " (the operator's replication user)",
        "dir" => " (use spec.persistence)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PasswordSecret;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn spec(masters: u32) -> RedisClusterSpec {
        RedisClusterSpec {
            masters,
            ..RedisClusterSpec::default()
        }
    }

    fn lines(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn three_masters_with_defaults_are_valid() {
        assert_eq!(validate(&spec(3), None), vec![]);
    }

    #[test]
    fn masters_below_three_are_rejected_with_the_field_path() {
        assert_eq!(
            lines(&validate(&spec(2), None)),
            vec![
                "spec.masters: must be at least 3 (Redis Cluster needs a majority of masters to fail over), got 2"
            ]
        );
    }

    #[test]
    fn more_masters_than_slots_are_rejected_with_the_field_path() {
        let problems = lines(&validate(&spec(16385), None));
        assert!(
            problems.contains(&"spec.masters: must be at most 16384 (each master needs one of Redis Cluster's 16384 slots), got 16385".to_owned()),
            "{problems:?}"
        );
        assert!(
            !lines(&validate(&spec(16384), None))
                .iter()
                .any(|p| p.starts_with("spec.masters"))
        );
    }

    #[test]
    fn scaling_in_below_three_masters_names_the_change() {
        assert_eq!(
            lines(&validate(&spec(2), Some(&spec(4)))),
            vec![
                "spec.masters: cannot scale in from 4 to 2 masters: Redis Cluster needs at least 3 masters to fail over"
            ]
        );
    }

    #[test]
    fn scaling_in_to_three_masters_is_allowed() {
        assert_eq!(validate(&spec(3), Some(&spec(6))), vec![]);
    }

    #[test]
    fn more_than_five_replicas_are_rejected() {
        let s = RedisClusterSpec {
            replicas: Some(6),
            ..spec(3)
        };
        assert_eq!(
            lines(&validate(&s, None)),
            vec!["spec.replicas: must be between 0 and 5 replicas per master, got 6"]
        );
    }

    #[test]
    fn the_highest_bus_port_must_fit_below_65536() {
        // 3 masters x (1 + 1) = 6 nodes: ordinals 0..=5, last bus port = base + 5 + 10000.
        let fits = RedisClusterSpec {
            base_port: Some(55530),
            ..spec(3)
        };
        assert_eq!(validate(&fits, None), vec![]);
        let overflows = RedisClusterSpec {
            base_port: Some(55531),
            ..spec(3)
        };
        assert_eq!(
            lines(&validate(&overflows, None)),
            vec![
                "spec.basePort: bus port 65536 of node 5 (client port 55536 + 10000) exceeds 65535; with 6 nodes basePort must be at most 55530, got 55531"
            ]
        );
    }

    #[test]
    fn a_client_port_overflow_is_named_as_such() {
        let s = RedisClusterSpec {
            base_port: Some(65535),
            replicas: Some(0),
            ..spec(3)
        };
        let got = lines(&validate(&s, None));
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("spec.basePort: client port 65537 of node 2 exceeds 65535"),
            "{got:?}"
        );
    }

    #[test]
    fn base_port_zero_is_rejected() {
        let s = RedisClusterSpec {
            base_port: Some(0),
            ..spec(3)
        };
        assert_eq!(
            lines(&validate(&s, None)),
            vec!["spec.basePort: must be between 1 and 65535, got 0"]
        );
    }

    #[test]
    fn huge_node_counts_do_not_overflow_the_port_arithmetic() {
        let s = RedisClusterSpec {
            replicas: Some(u32::MAX),
            base_port: Some(u32::MAX),
            ..spec(u32::MAX)
        };
        let fields: Vec<_> = validate(&s, None).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec!["spec.masters", "spec.replicas", "spec.basePort"]
        );
    }

    #[test]
    fn fractional_or_kubernetes_style_max_memory_is_rejected() {
        for bad in ["1.5gb", "1Gi", "512 mb"] {
            let s = RedisClusterSpec {
                max_memory: Some(bad.to_owned()),
                ..spec(3)
            };
            let problems = validate(&s, None);
            assert_eq!(problems.len(), 1, "{bad}");
            assert_eq!(problems[0].field, "spec.maxMemory");
        }
    }

    #[test]
    fn resource_quantities_are_checked_with_their_full_path() {
        let mut limits = BTreeMap::new();
        limits.insert("memory".to_owned(), Quantity("1000MB".to_owned()));
        let mut requests = BTreeMap::new();
        requests.insert("cpu".to_owned(), Quantity("-1".to_owned()));
        let s = RedisClusterSpec {
            exporter_resources: Some(ResourceRequirements {
                limits: Some(limits),
                requests: Some(requests),
                ..Default::default()
            }),
            ..spec(3)
        };
        let fields: Vec<_> = validate(&s, None).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.exporterResources.limits.memory",
                "spec.exporterResources.requests.cpu"
            ]
        );
    }

    #[test]
    fn operator_owned_redis_config_keys_are_rejected_case_insensitively() {
        let config: BTreeMap<String, String> = [
            ("Port", "1"),
            ("cluster-announce-ip", "1.2.3.4"),
            ("appendonly", "yes"),
            ("save", "60 1000\nport 1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = RedisClusterSpec {
            redis_config: Some(config),
            ..spec(3)
        };
        assert_eq!(
            lines(&validate(&s, None)),
            vec![
                "spec.redisConfig.Port: is set by the operator and cannot be overridden (use spec.basePort)",
                "spec.redisConfig.cluster-announce-ip: is set by the operator and cannot be overridden",
                "spec.redisConfig.save: value must not contain line breaks or other control characters",
            ]
        );
    }

    #[test]
    fn tuning_knobs_outside_their_ranges_are_rejected() {
        let s = RedisClusterSpec {
            cluster_node_timeout_ms: Some(99),
            rebalance_threshold_percent: Some(51),
            migration_batch_keys: Some(0),
            ..spec(3)
        };
        assert_eq!(
            lines(&validate(&s, None)),
            vec![
                "spec.clusterNodeTimeoutMs: must be between 100 and 600000 milliseconds, got 99",
                "spec.rebalanceThresholdPercent: must be between 1 and 50 percent, got 51",
                "spec.migrationBatchKeys: must be between 1 and 100000 keys, got 0",
            ]
        );
    }

    #[test]
    fn empty_images_and_secret_names_are_rejected() {
        let s = RedisClusterSpec {
            image: Some(String::new()),
            exporter_image: Some(" ".to_owned()),
            password_secret: Some(PasswordSecret {
                name: String::new(),
                key: Some(String::new()),
            }),
            ..spec(3)
        };
        let fields: Vec<_> = validate(&s, None).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.image",
                "spec.exporterImage",
                "spec.passwordSecret.name",
                "spec.passwordSecret.key"
            ]
        );
    }

    #[test]
    fn persistence_fields_and_malformed_redis_config_keys_are_rejected_with_their_paths() {
        let config: BTreeMap<String, String> = [("save 60", "1"), ("", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let s = RedisClusterSpec {
            persistence: Some(crate::types::Persistence {
                enabled: Some(true),
                storage_class_name: Some(" ".to_owned()),
                size: Some("-1Gi".to_owned()),
            }),
            redis_config: Some(config),
            ..spec(3)
        };
        let problems = validate(&s, None);
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.persistence.storageClassName",
                "spec.persistence.size",
                "spec.redisConfig.",
                "spec.redisConfig.save 60"
            ],
            "{problems:?}"
        );
        assert!(
            lines(&problems)[2]
                .ends_with("must be a single redis.conf directive name (no spaces or line breaks)"),
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let s = RedisClusterSpec {
            replicas: Some(9),
            max_memory: Some("lots".to_owned()),
            ..spec(1)
        };
        let fields: Vec<_> = validate(&s, None).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec!["spec.masters", "spec.replicas", "spec.maxMemory"]
        );
    }
}
