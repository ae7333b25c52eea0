//! Which key identifies the items of a list, for strategic merge patches and server-side
//! apply. Built-in kinds use Kubernetes' `patchMergeKey` tags; CRDs use their schema's
//! `x-kubernetes-list-map-keys`. Lists without a key are atomic (replaced whole).

use crate::registry::{MergeKeys, ResourceType};

/// Whether the list at `path` is a set of scalars (`x-kubernetes-list-type: set`), whose
/// items are owned one by one: `metadata.finalizers` everywhere, and what a CRD declares.
pub fn is_set(rt: &ResourceType, path: &str) -> bool {
    if path == "metadata.finalizers" {
        return true;
    }
    match &rt.merge_keys {
        MergeKeys::Schema(map) => map.get(path).is_some_and(Vec::is_empty),
        MergeKeys::Builtin => false,
    }
}

/// `path` is the list's location with fields joined by `.` and list items written `[]`,
/// e.g. `spec.template.spec.containers` or `spec.template.spec.containers[].ports`.
pub fn list_keys(rt: &ResourceType, path: &str) -> Option<Vec<String>> {
    let last = path.rsplit('.').next().unwrap_or(path);
    if path == "metadata.ownerReferences" {
        return Some(vec!["uid".into()]);
    }
    match &rt.merge_keys {
        MergeKeys::Schema(map) => map.get(path).filter(|k| !k.is_empty()).cloned(),
        MergeKeys::Builtin => builtin_key(path, last).map(|k| vec![k.to_string()]),
    }
}

fn builtin_key(path: &str, last: &str) -> Option<&'static str> {
    Some(match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        // Container ports are keyed by their number; Service ports by the service port.
        "ports" if path.contains("containers[]") || path.contains("Containers[]") => {
            "containerPort"
        }
        "ports" if path.starts_with("spec") => "port",
        "conditions" | "addresses" => "type",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "readinessGates" => "conditionType",
        "containerStatuses" | "initContainerStatuses" => "name",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pod_type() -> ResourceType {
        crate::builtin::types()
            .into_iter()
            .find(|t| t.kind == "Pod")
            .unwrap()
    }

    #[test]
    fn built_in_lists_are_keyed_like_kubernetes_patch_merge_keys() {
        let rt = pod_type();
        assert_eq!(list_keys(&rt, "spec.containers"), Some(vec!["name".into()]));
        assert_eq!(
            list_keys(&rt, "spec.containers[].ports"),
            Some(vec!["containerPort".into()])
        );
        assert_eq!(
            list_keys(&rt, "status.conditions"),
            Some(vec!["type".into()])
        );
        assert_eq!(list_keys(&rt, "spec.containers[].args"), None);
    }
}
