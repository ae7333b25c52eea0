//! Every metric the operator exports: its name, its help text and its labels, in one place.
//! Per-cluster series carry `namespace` and `cluster` labels, so two clusters never overwrite
//! each other's values (local clusters use the namespace `local`).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub const CLUSTER_READY: &str = "redis_operator_cluster_ready";
pub const CLUSTER_CONDITION: &str = "redis_operator_cluster_condition";
pub const CLUSTER_PHASE: &str = "redis_operator_cluster_phase";
pub const CLUSTER_NODES: &str = "redis_operator_cluster_nodes";
pub const RECONCILE_DURATION: &str = "redis_operator_reconcile_duration_seconds";
pub const RECONCILE_PASSES: &str = "redis_operator_reconcile_passes_total";
pub const EFFECTS: &str = "redis_operator_effects_total";
pub const DATA_LOSSES: &str = "redis_operator_data_losses_total";
pub const HTTP_REQUESTS: &str = "redis_operator_http_requests_total";
pub const LEADER: &str = "redis_operator_leader";
pub const RECONCILE_ERRORS: &str = "redis_operator_reconcile_errors_total";
pub const VIEWS: &str = "redis_operator_views_total";

/// Buckets of [`RECONCILE_DURATION`]: a quiet pass takes milliseconds, one that moves slots
/// can take minutes.
pub const RECONCILE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Registers the help text and unit of every metric (the adapter's migration metrics too).
/// Call once, after installing the recorder.
pub fn describe() {
    describe_gauge!(
        CLUSTER_READY,
        "1 when the cluster serves every slot with the masters and replicas its spec asks for"
    );
    describe_gauge!(
        CLUSTER_CONDITION,
        "1 when the condition named by `type` (Ready, Progressing, Degraded, Invalid) is true"
    );
    describe_gauge!(
        CLUSTER_PHASE,
        "1 for the phase the cluster is in (`phase`: Pending, Bootstrapping, Ready, ScalingOut, ScalingIn, ReplicaScaling, Recovering, Rolling, Deleting), 0 for the others"
    );
    describe_gauge!(
        CLUSTER_NODES,
        "Redis nodes that answered the last observation, by `role` (master, replica)"
    );
    describe_histogram!(
        RECONCILE_DURATION,
        Unit::Seconds,
        "Time one reconcile pass took: observe, decide and execute"
    );
    describe_counter!(
        RECONCILE_PASSES,
        "Reconcile passes, by `outcome`: ok, or effect_failed when an effect of the pass failed"
    );
    describe_counter!(
        EFFECTS,
        "Effects executed, by `kind` and `outcome` (ok, failed); effects after a failed one in the same pass are not run and not counted"
    );
    describe_counter!(
        DATA_LOSSES,
        "Masters found back without the keys they held (replicas 0 and no persistence, or every copy lost)"
    );
    describe_counter!(HTTP_REQUESTS, "HTTP API requests, by `route` and `status`");
    describe_gauge!(
        LEADER,
        "1 while this operator process holds the leader lease (always 1 without leader election)"
    );
    describe_counter!(
        RECONCILE_ERRORS,
        "Reconciles of the Kubernetes controller that failed outside the core's pass (an API write refused), by `reason`"
    );
    describe_counter!(
        VIEWS,
        "Full views (CLUSTER NODES) the passes used, by `source`: read from the node, or reused from an earlier pass"
    );
    redis_backend::describe_metrics();
}
