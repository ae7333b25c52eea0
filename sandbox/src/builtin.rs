//! The built-in kinds this server serves, as a real v1.33 API server names them.

use crate::registry::{MergeKeys, ResourceType};

struct Def {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
}

const DEFS: &[Def] = &[
    def("", "v1", "namespaces", "Namespace", false, &["ns"], true),
    def("", "v1", "pods", "Pod", true, &["po"], true),
    def("", "v1", "services", "Service", true, &["svc"], true),
    def("", "v1", "endpoints", "Endpoints", true, &["ep"], false),
    def("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
    def("", "v1", "secrets", "Secret", true, &[], false),
    def(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        false,
    ),
    def(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        true,
    ),
    def(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        &["pv"],
        true,
    ),
    def("", "v1", "nodes", "Node", false, &["no"], true),
    def("", "v1", "events", "Event", true, &["ev"], false),
    def(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        true,
    ),
    def(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        true,
    ),
    def(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        true,
    ),
    def(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        &["ev"],
        false,
    ),
    def(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        false,
    ),
    def(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        true,
    ),
    def(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
        false,
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        false,
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        false,
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        false,
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        false,
    ),
    def(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        &[],
        false,
    ),
    def(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
        false,
    ),
    def(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
    ),
];

const fn def(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
) -> Def {
    Def {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        status,
    }
}

const ALL: &[&str] = &["Pod", "Service", "StatefulSet", "Deployment", "ReplicaSet"];

pub fn types() -> Vec<ResourceType> {
    DEFS.iter()
        .map(|d| ResourceType {
            group: d.group.into(),
            version: d.version.into(),
            plural: d.plural.into(),
            singular: d.kind.to_lowercase(),
            kind: d.kind.into(),
            namespaced: d.namespaced,
            short_names: d.short.iter().map(|s| s.to_string()).collect(),
            has_status: d.status,
            // kubectl resolves `get all` through this category.
            categories: if ALL.contains(&d.kind) {
                vec!["all".into()]
            } else {
                Vec::new()
            },
            columns: Vec::new(),
            merge_keys: MergeKeys::Builtin,
            schema: None,
            scale: crate::scale::builtin_paths(d.kind),
        })
        .collect()
}

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces Kubernetes refuses to delete.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
