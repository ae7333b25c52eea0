//! Prints the RedisCluster CRD, like `redis-operator crd`, without building the operator and
//! its backends: `cargo run -p redis-operator-spec --example print_crd`.

fn main() {
    print!("{}", redis_operator_spec::crd_yaml());
}
