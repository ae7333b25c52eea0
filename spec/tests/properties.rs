//! Properties that must hold for every input, not just the examples: validation and parsing
//! never panic, and a valid spec survives serialise → parse unchanged.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use redis_operator_spec::{
    PasswordSecret, Persistence, RedisCluster, RedisClusterSpec, parse_manifest, validate,
};

/// Strings that are usually meaningful for the field, sometimes arbitrary.
fn memory() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0u64..100_000,
            prop::sample::select(vec!["", "b", "k", "kb", "mb", "MB", "g", "gb", "Gi"])
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        any::<String>(),
    ]
}

fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![
        (
            0u32..5000,
            prop::sample::select(vec!["", "m", "Mi", "Gi", "k", "e3", "MB"])
        )
            .prop_map(|(n, s)| Quantity(format!("{n}{s}"))),
        "[-+.0-9eEkKmMiG]{0,6}".prop_map(Quantity),
    ]
}

fn resources() -> impl Strategy<Value = ResourceRequirements> {
    let map = || {
        option::of(btree_map(
            prop::sample::select(vec!["cpu", "memory"]).prop_map(String::from),
            quantity(),
            0..3,
        ))
    };
    (map(), map()).prop_map(|(limits, requests)| ResourceRequirements {
        limits,
        requests,
        ..Default::default()
    })
}

fn redis_config() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        prop_oneof![
            prop::sample::select(vec![
                "appendonly",
                "maxmemory",
                "port",
                "cluster-announce-ip",
                "save",
                "MaxMemory"
            ])
            .prop_map(String::from),
            "[a-z-]{1,12}",
            any::<String>(),
        ],
        any::<String>(),
        0..4,
    )
}

prop_compose! {
    fn any_spec()(
        image in option::of(prop_oneof!["redis:[0-9.]{1,5}", any::<String>()]),
        masters in prop_oneof![0u32..12, Just(u32::MAX), any::<u32>()],
        replicas in option::of(prop_oneof![0u32..7, Just(u32::MAX), any::<u32>()]),
        base_port in option::of(prop_oneof![1u32..60_000, Just(0), Just(u32::MAX), any::<u32>()]),
        max_memory in option::of(memory()),
        resources in option::of(resources()),
        exporter_resources in option::of(resources()),
        exporter_image in option::of(any::<String>()),
        password_secret in option::of((any::<String>(), option::of(any::<String>()))
            .prop_map(|(name, key)| PasswordSecret { name, key })),
        persistence in option::of((option::of(any::<bool>()), option::of(any::<String>()), option::of(quantity().prop_map(|q| q.0)))
            .prop_map(|(enabled, storage_class_name, size)| Persistence { enabled, storage_class_name, size })),
        cluster_node_timeout_ms in option::of(prop_oneof![0u64..700_000, any::<u64>()]),
        node_selector in option::of(btree_map("[a-z/.]{1,10}", "[a-z0-9]{0,6}", 0..3)),
        host_network in option::of(any::<bool>()),
        redis_config in option::of(redis_config()),
        rebalance_threshold_percent in option::of(0u32..60),
        migration_batch_keys in option::of(prop_oneof![0u32..200_000, any::<u32>()]),
    ) -> RedisClusterSpec {
        RedisClusterSpec {
            image, masters, replicas, base_port, max_memory, resources, exporter_resources,
            exporter_image, password_secret, persistence, cluster_node_timeout_ms, node_selector,
            tolerations: None, affinity: None, host_network, redis_config,
            rebalance_threshold_percent, migration_batch_keys,
        }
    }
}

prop_compose! {
    /// Specs built to pass validation, with free text (names, images, config values) left
    /// arbitrary so the round trip exercises quoting and escaping.
    fn valid_spec()(
        image in option::of("[a-z][\\PC]{0,20}"),
        masters in 3u32..40,
        replicas in option::of(0u32..=5),
        base_port in option::of(1u32..20_000),
        max_memory in option::of((0u64..100_000, prop::sample::select(vec!["", "b", "k", "KB", "mb", "g", "Gb"]))
            .prop_map(|(n, u)| format!("{n}{u}"))),
        resources in option::of(valid_resources()),
        exporter_image in option::of("[a-z][\\PC]{0,20}"),
        password_secret in option::of(("[a-z][a-z0-9-]{0,10}", option::of("[a-z][\\PC]{0,8}"))
            .prop_map(|(name, key)| PasswordSecret { name, key })),
        persistence in option::of((option::of(any::<bool>()), option::of("[a-z][a-z0-9-]{0,10}"), option::of((1u32..100).prop_map(|n| format!("{n}Gi"))))
            .prop_map(|(enabled, storage_class_name, size)| Persistence { enabled, storage_class_name, size })),
        cluster_node_timeout_ms in option::of(100u64..=600_000),
        node_selector in option::of(btree_map("[a-z/.]{1,10}", "\\PC{0,6}", 0..3)),
        host_network in option::of(any::<bool>()),
        redis_config in option::of(btree_map("(appendonly|save|hz|maxclients|lazyfree-[a-z]{1,6})", "\\PC{0,12}", 0..4)),
        rebalance_threshold_percent in option::of(1u32..=50),
        migration_batch_keys in option::of(1u32..=100_000),
    ) -> RedisClusterSpec {
        RedisClusterSpec {
            image, masters, replicas, base_port, max_memory, resources: resources.clone(),
            exporter_resources: resources, exporter_image, password_secret, persistence,
            cluster_node_timeout_ms, node_selector, tolerations: None, affinity: None,
            host_network, redis_config, rebalance_threshold_percent, migration_batch_keys,
        }
    }
}

fn valid_resources() -> impl Strategy<Value = ResourceRequirements> {
    let q = || {
        (
            0u32..5000,
            prop::sample::select(vec!["", "m", "Mi", "Gi", "k", "e3"]),
        )
            .prop_map(|(n, s)| Quantity(format!("{n}{s}")))
    };
    let map = move || {
        option::of(btree_map(
            prop::sample::select(vec!["cpu", "memory"]).prop_map(String::from),
            q(),
            0..3,
        ))
    };
    (map(), map()).prop_map(|(limits, requests)| ResourceRequirements {
        limits,
        requests,
        ..Default::default()
    })
}

proptest! {
    // Failures print the minimal input; persisting them would need a src/ dir next to tests/.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn validate_never_panics_on_any_spec(
        spec in any_spec().boxed(),
        previous_masters in option::of(any::<u32>()),
    ) {
        // The previous spec differs in masters only: that is the one field whose change
        // validation looks at.
        let previous = previous_masters.map(|masters| RedisClusterSpec { masters, ..spec.clone() });
        let problems = validate(&spec, previous.as_ref());
        for problem in problems {
            prop_assert!(problem.field.starts_with("spec."));
            prop_assert!(!problem.reason.is_empty());
        }
    }

    #[test]
    fn parse_manifest_never_panics_on_any_string(text in any::<String>()) {
        let _ = parse_manifest(&text);
    }

    #[test]
    fn parse_manifest_never_panics_on_yaml_shaped_text(
        lines in vec("[ a-zA-Z0-9:\\-{}\\[\\]\",.#/]{0,30}", 0..12)
    ) {
        let text = format!("apiVersion: redis.redis/v1beta1\nkind: RedisCluster\n{}", lines.join("\n"));
        let _ = parse_manifest(&text);
    }

    #[test]
    fn a_valid_spec_survives_serialize_then_parse_unchanged(spec in valid_spec().boxed(), json in any::<bool>()) {
        prop_assert_eq!(validate(&spec, None), vec![]);
        let cluster = RedisCluster::new("roundtrip", spec);
        let text = if json {
            serde_json::to_string_pretty(&cluster).expect("serialise to JSON")
        } else {
            serde_yaml::to_string(&cluster).expect("serialise to YAML")
        };
        let parsed = parse_manifest(&text);
        prop_assert_eq!(parsed, Ok(cluster), "text was:\n{}", text);
    }
}
