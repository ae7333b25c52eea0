//! Defaults a real API server fills into built-in kinds on every write, so objects read back
//! look as they would from a cluster and re-sending a manifest that omits them is no change.
//! The table covers the kinds the operator and its chart write; others are stored as sent.

use serde_json::{Map, Value, json};

/// Sets `key` to `value` unless the object already has it.
fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

fn object_at<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut)
}

fn each_item(v: &mut Value, key: &str, mut f: impl FnMut(&mut Map<String, Value>)) {
    if let Some(items) = v.get_mut(key).and_then(Value::as_array_mut) {
        items
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(&mut f);
    }
}

/// Fills in defaults for `kind` in place.
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
                if let Some(s) = spec.as_object_mut() {
                    // Admission plugins, not defaulting, set these on Pods alone.
                    default(s, "serviceAccountName", json!("default"));
                    default(s, "enableServiceLinks", json!(true));
                    default(s, "priority", json!(0));
                    default(s, "preemptionPolicy", json!("PreemptLowerPriority"));
                }
            }
        }
        "Deployment" => workload(obj, |spec| {
            default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
        }),
        "StatefulSet" => {
            workload(obj, |spec| {
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            });
            if let Some(spec) = obj.get_mut("spec") {
                each_item(spec, "volumeClaimTemplates", |pvc| {
                    default(pvc, "apiVersion", json!("v1"));
                    default(pvc, "kind", json!("PersistentVolumeClaim"));
                    if let Some(s) = pvc.get_mut("spec").and_then(Value::as_object_mut) {
                        default(s, "volumeMode", json!("Filesystem"));
                    }
                });
            }
        }
        "ReplicaSet" => workload(obj, |_| {}),
        "Service" => {
            if let Some(spec) = object_at(obj, "spec") {
                default(spec, "type", json!("ClusterIP"));
                default(spec, "sessionAffinity", json!("None"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(spec) = obj.get_mut("spec") {
                each_item(spec, "ports", |port| {
                    default(port, "protocol", json!("TCP"));
                    if let Some(p) = port.get("port").cloned() {
                        default(port, "targetPort", p);
                    }
                });
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = object_at(obj, "spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        "Secret" => {
            if let Some(map) = obj.as_object_mut() {
                default(map, "type", json!("Opaque"));
                // `stringData` is write-only, as in Kubernetes: merged into `data` (base64)
                // on every write, where readers (env, volumes, clients) find it.
                if let Some(Value::Object(strings)) = map.remove("stringData") {
                    let data = map.entry("data").or_insert_with(|| json!({}));
                    if let Some(data) = data.as_object_mut() {
                        for (k, v) in strings {
                            let text = v.as_str().unwrap_or_default();
                            data.insert(
                                k,
                                json!(crate::kubelet::volumes::base64_encode(text.as_bytes())),
                            );
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// Deployments, StatefulSets, ReplicaSets: replicas, their own fields, the pod template.
fn workload(obj: &mut Value, own: impl FnOnce(&mut Map<String, Value>)) {
    let Some(spec) = object_at(obj, "spec") else {
        return;
    };
    default(spec, "replicas", json!(1));
    own(spec);
    if let Some(template_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(template_spec);
    }
}

fn pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    default(s, "restartPolicy", json!("Always"));
    default(s, "terminationGracePeriodSeconds", json!(30));
    default(s, "dnsPolicy", json!("ClusterFirst"));
    default(s, "schedulerName", json!("default-scheduler"));
    default(s, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        each_item(spec, key, container);
    }
    each_item(spec, "volumes", |v| {
        for source in ["configMap", "secret"] {
            if let Some(src) = v.get_mut(source).and_then(Value::as_object_mut) {
                default(src, "defaultMode", json!(420));
            }
        }
    });
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    // `:latest` or no tag (and no digest) pulls always, as Kubernetes decides it.
    let tag = image
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once(':'))
        .map(|(_, t)| t);
    let always = !image.contains('@') && matches!(tag, None | Some("latest"));
    default(
        c,
        "imagePullPolicy",
        json!(if always { "Always" } else { "IfNotPresent" }),
    );
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_statefulset_gets_the_defaults_a_cluster_gives_it() {
        let mut sts = json!({"spec": {
            "selector": {"matchLabels": {"app": "r"}},
            "template": {"spec": {"containers": [
                {"name": "redis", "image": "redis:7", "ports": [{"containerPort": 6379}]},
                {"name": "side", "image": "busybox"}
            ]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]
        }});
        apply("StatefulSet", &mut sts);
        let spec = &sts["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"]["rollingUpdate"]["partition"], 0);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert!(
            pod.get("serviceAccountName").is_none(),
            "templates are not admitted pods"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
    }

    #[test]
    fn a_secrets_string_data_is_stored_as_base64_data_and_not_kept() {
        let mut obj = json!({"stringData": {"password": "hunter2"}, "data": {"a": "YQ=="}});
        apply("Secret", &mut obj);
        assert_eq!(obj["data"]["password"], json!("aHVudGVyMg=="));
        assert_eq!(obj["data"]["a"], json!("YQ=="));
        assert!(obj.get("stringData").is_none());
    }

    #[test]
    fn defaults_never_overwrite_what_was_sent() {
        let mut svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": 8080, "protocol": "UDP"}]}});
        apply("Service", &mut svc);
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "targetPort": 8080, "protocol": "UDP"})
        );
    }
}
