//! The headless Service every node's StatefulSet names: stable DNS names for the pods and
//! one selector for everything that scrapes or looks up the cluster's nodes.

use super::ClusterCtx;
use crate::names;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub fn headless_service(ctx: &ClusterCtx<'_>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(names::service(ctx.name)),
            namespace: Some(ctx.namespace.to_string()),
            labels: Some(names::cluster_labels(ctx.name)),
            owner_references: Some(vec![ctx.owner()]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            // Nodes gossip and sync before they are ready; their names must resolve then.
            publish_not_ready_addresses: Some(true),
            selector: Some(names::cluster_labels(ctx.name)),
            ports: Some(vec![
                ServicePort {
                    name: Some("redis".to_string()),
                    port: i32::from(ctx.spec.client_port(0).unwrap_or(6379)),
                    target_port: Some(IntOrString::String("redis".to_string())),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("metrics".to_string()),
                    port: 9121,
                    target_port: Some(IntOrString::String("metrics".to_string())),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
