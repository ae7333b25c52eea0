//! The StatefulSet of one Redis node: one pod, `OnDelete`, its port and its volume.

use super::script::{ENV_PASSWORD, ENV_POD_IP, server_script};
use super::{ClusterCtx, NodePorts, fingerprint, labels_for};
use crate::names;
use engine::Ordinal;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodSpec, PodTemplateSpec,
    Probe, SecretKeySelector, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";

/// The StatefulSet of node `ordinal` with the spec's current configuration.
pub fn statefulset(ctx: &ClusterCtx<'_>, ordinal: Ordinal, ports: NodePorts) -> StatefulSet {
    let labels = labels_for(ctx, ordinal);
    let persistent = ctx.spec.persistence_enabled();
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(names::statefulset(ctx.name, ordinal)),
            namespace: Some(ctx.namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![ctx.owner()]),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names::service(ctx.name)),
            selector: LabelSelector {
                match_labels: Some(names::node_labels(ctx.name, ordinal)),
                ..LabelSelector::default()
            },
            // Only the engine replaces a running node (after a failover, one shard member at
            // a time); Kubernetes re-creates a pod that is gone, never one that runs.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                rolling_update: None,
            }),
            pod_management_policy: Some("Parallel".to_string()),
            // The claim outlives the StatefulSet: the engine's `DeleteNode` removes the
            // member, and only `DeleteData` (a drained node) removes its claim.
            persistent_volume_claim_retention_policy: persistent.then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_string()),
                    when_scaled: Some("Retain".to_string()),
                }
            }),
            volume_claim_templates: persistent.then(|| vec![claim_template(ctx)]),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        names::ANNOTATION_FINGERPRINT.to_string(),
                        fingerprint(ctx),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(ctx, ordinal, ports)),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn pod_spec(ctx: &ClusterCtx<'_>, ordinal: Ordinal, ports: NodePorts) -> PodSpec {
    let spec = ctx.spec;
    let host_network = spec.host_network();
    PodSpec {
        host_network: Some(host_network),
        // Host-network pods still resolve cluster names.
        dns_policy: host_network.then(|| "ClusterFirstWithHostNet".to_string()),
        // Redis stops in well under a second; persistent nodes write their file first.
        termination_grace_period_seconds: Some(30),
        automount_service_account_token: Some(false),
        node_selector: spec.node_selector.clone(),
        tolerations: spec.tolerations.clone(),
        affinity: Some(affinity(ctx, ordinal)),
        volumes: (!spec.persistence_enabled()).then(|| {
            vec![Volume {
                name: names::DATA_VOLUME.to_string(),
                empty_dir: Some(Default::default()),
                ..Volume::default()
            }]
        }),
        containers: vec![redis_container(ctx, ports), exporter_container(ctx, ports)],
        ..PodSpec::default()
    }
}

fn redis_container(ctx: &ClusterCtx<'_>, ports: NodePorts) -> Container {
    let mut env = vec![pod_ip_env()];
    env.extend(password_env(ctx));
    // A TCP check: a node busy with a large migration still accepts connections, so the
    // probes do not flap while slots move; a hung process fails it.
    let tcp = |period: i32, failures: i32| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(ports.client)),
            host: None,
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    Container {
        name: names::REDIS_CONTAINER.to_string(),
        image: Some(ctx.spec.image().to_string()),
        command: Some(vec![
            "sh".to_string(),
            "-c".to_string(),
            server_script(ctx, ports),
        ]),
        env: Some(env),
        ports: Some(vec![
            port("redis", ports.client, ctx.spec.host_network()),
            port("bus", ports.bus, ctx.spec.host_network()),
        ]),
        resources: ctx.spec.resources.clone(),
        readiness_probe: Some(tcp(2, 3)),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            ..tcp(10, 6)
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: names::DATA_VOLUME.to_string(),
            mount_path: names::DATA_DIR.to_string(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// The exporter reads its settings from the environment (redis_exporter's own variables), so
/// the password never appears in its command line.
fn exporter_container(ctx: &ClusterCtx<'_>, ports: NodePorts) -> Container {
    let mut env = vec![
        pod_ip_env(),
        value_env(
            "REDIS_ADDR",
            format!("redis://$({ENV_POD_IP}):{}", ports.client),
        ),
        value_env(
            "REDIS_EXPORTER_WEB_LISTEN_ADDRESS",
            format!("$({ENV_POD_IP}):{}", ports.exporter),
        ),
    ];
    env.extend(password_env(ctx));
    Container {
        name: names::EXPORTER_CONTAINER.to_string(),
        image: Some(ctx.spec.exporter_image().to_string()),
        env: Some(env),
        ports: Some(vec![port(
            "metrics",
            ports.exporter,
            ctx.spec.host_network(),
        )]),
        resources: ctx.spec.exporter_resources.clone(),
        ..Container::default()
    }
}

fn port(name: &str, number: u16, host_network: bool) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: i32::from(number),
        host_port: host_network.then_some(i32::from(number)),
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

fn pod_ip_env() -> EnvVar {
    EnvVar {
        name: ENV_POD_IP.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "status.podIP".to_string(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

fn value_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    }
}

fn password_env(ctx: &ClusterCtx<'_>) -> Option<EnvVar> {
    let secret = ctx.spec.password_secret.as_ref()?;
    Some(EnvVar {
        name: ENV_PASSWORD.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key().to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    })
}

/// The spec's affinity, plus: the nodes of one shard on different hosts (required when
/// enough schedulable nodes exist, else preferred), and the cluster's pods spread.
fn affinity(ctx: &ClusterCtx<'_>, ordinal: Ordinal) -> Affinity {
    let mut affinity = ctx.spec.affinity.clone().unwrap_or_default();
    let mut anti = affinity.pod_anti_affinity.take().unwrap_or_default();
    let shard_term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([
                (names::LABEL_INSTANCE.to_string(), ctx.name.to_string()),
                (
                    names::LABEL_SHARD.to_string(),
                    ctx.shard(ordinal).to_string(),
                ),
            ])),
            ..LabelSelector::default()
        }),
        topology_key: HOSTNAME_TOPOLOGY.to_string(),
        ..PodAffinityTerm::default()
    };
    let cluster_term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                names::LABEL_INSTANCE.to_string(),
                ctx.name.to_string(),
            )])),
            ..LabelSelector::default()
        }),
        topology_key: HOSTNAME_TOPOLOGY.to_string(),
        ..PodAffinityTerm::default()
    };
    let preferred = anti
        .preferred_during_scheduling_ignored_during_execution
        .get_or_insert_with(Vec::new);
    preferred.push(WeightedPodAffinityTerm {
        weight: 10,
        pod_affinity_term: cluster_term,
    });
    if ctx.spread_required {
        anti.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(shard_term);
    } else {
        preferred.push(WeightedPodAffinityTerm {
            weight: 100,
            pod_affinity_term: shard_term,
        });
    }
    affinity.pod_anti_affinity = Some(anti);
    affinity
}

fn claim_template(ctx: &ClusterCtx<'_>) -> PersistentVolumeClaim {
    let persistence = ctx.spec.persistence.clone().unwrap_or_default();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(names::DATA_VOLUME.to_string()),
            labels: Some(names::cluster_labels(ctx.name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: persistence.storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(ctx.spec.persistence_size().to_string()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::RedisClusterSpec;

    fn build(yaml: &str, ordinal: Ordinal) -> StatefulSet {
        let spec: RedisClusterSpec = serde_yaml::from_str(yaml).expect("spec");
        let ctx = ClusterCtx {
            name: "cache",
            namespace: "ns",
            uid: "uid-1",
            spec: &spec,
            spread_required: true,
        };
        let ports = super::super::node_ports(&spec, ordinal).expect("ports");
        statefulset(&ctx, ordinal, ports)
    }

    #[test]
    fn the_seed_manifest_builds_an_on_delete_set_of_one_host_network_pod() {
        let seed = include_str!("../../../../examples/seed-cluster.yaml");
        let doc: serde_yaml::Value = serde_yaml::from_str(seed).expect("yaml");
        let spec_yaml = serde_yaml::to_string(&doc["spec"]).expect("spec");
        let set = build(&spec_yaml, 4);
        let s = set.spec.expect("spec");
        assert_eq!(set.metadata.name.as_deref(), Some("cache-4"));
        assert_eq!(s.replicas, Some(1));
        assert_eq!(
            s.update_strategy.and_then(|u| u.type_).as_deref(),
            Some("OnDelete")
        );
        let pod = s.template.spec.expect("pod");
        assert_eq!(pod.host_network, Some(true));
        let redis = &pod.containers[0];
        assert_eq!(redis.image.as_deref(), Some("awbrg789/redis:latest"));
        let ports: Vec<_> = redis
            .ports
            .iter()
            .flatten()
            .map(|p| (p.container_port, p.host_port))
            .collect();
        assert_eq!(ports, vec![(10004, Some(10004)), (20004, Some(20004))]);
        assert!(
            redis
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .is_some(),
            "the seed's resources reach the container"
        );
        assert_eq!(pod.containers[1].name, "exporter");
        assert_eq!(
            set.metadata.owner_references.expect("owner")[0].uid,
            "uid-1"
        );
    }

    #[test]
    fn a_shards_nodes_must_land_on_different_hosts_when_there_are_enough() {
        let set = build("masters: 3", 4);
        let pod = set.spec.expect("spec").template.spec.expect("pod");
        let anti = pod
            .affinity
            .expect("affinity")
            .pod_anti_affinity
            .expect("anti");
        let required = anti
            .required_during_scheduling_ignored_during_execution
            .expect("required");
        let labels = required[0]
            .label_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .expect("labels");
        assert_eq!(
            labels.get(names::LABEL_SHARD).map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn persistence_adds_a_retained_claim_instead_of_an_empty_dir() {
        let set = build("masters: 3\npersistence:\n  enabled: true\n  size: 2Gi", 0);
        let s = set.spec.expect("spec");
        let policy = s.persistent_volume_claim_retention_policy.expect("policy");
        assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(s.volume_claim_templates.expect("claims").len(), 1);
        assert!(s.template.spec.expect("pod").volumes.is_none());
    }
}
