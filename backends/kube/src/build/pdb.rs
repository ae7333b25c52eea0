//! The PodDisruptionBudget: a drain takes at most one Redis node of the cluster at a time, so
//! no shard ever loses its master and its replica to the same voluntary disruption.

use super::ClusterCtx;
use crate::names;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub fn pdb(ctx: &ClusterCtx<'_>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(names::pdb(ctx.name)),
            namespace: Some(ctx.namespace.to_string()),
            labels: Some(names::cluster_labels(ctx.name)),
            owner_references: Some(vec![ctx.owner()]),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names::cluster_labels(ctx.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}
