//! The chart ships the CRD as a file; it must be exactly what the Rust types generate, or the
//! API server would accept (or reject) fields the operator does not expect.

use redis_operator_spec::crd_yaml;

const CHART_CRD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../charts/redis-operator/crds/redisclusters.redis.redis.yaml"
));

#[test]
fn the_chart_crd_is_exactly_the_generated_one() {
    let generated = crd_yaml();
    if generated != CHART_CRD {
        let first_difference = generated
            .lines()
            .zip(CHART_CRD.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| generated.lines().count().min(CHART_CRD.lines().count()) + 1);
        panic!(
            "charts/redis-operator/crds/redisclusters.redis.redis.yaml is out of date \
             (first difference at line {first_difference}). Regenerate it with:\n  \
             cargo run -p redis-operator -- crd > charts/redis-operator/crds/redisclusters.redis.redis.yaml\n\
             or, without building the operator:\n  \
             cargo run -p redis-operator-spec --example print_crd > charts/redis-operator/crds/redisclusters.redis.redis.yaml"
        );
    }
}

#[test]
fn the_crd_names_the_group_version_kind_and_short_name() {
    let crd = crd_yaml();
    for needle in [
        "name: redisclusters.redis.redis",
        "group: redis.redis",
        "kind: RedisCluster",
        "- rdc",
        "name: v1beta1",
        "scope: Namespaced",
        "name: Masters",
        "name: Replicas",
        "name: Phase",
        "name: Age",
        "status: {}",
    ] {
        assert!(crd.contains(needle), "CRD lacks {needle:?}");
    }
}
