//! The ReplicaSet controller: keeps `spec.replicas` Pods (named `<set>-<suffix>`) owned by
//! each ReplicaSet, replacing Failed ones and removing surplus ones not Ready first.

use serde_json::{Value, json};

use super::{Ctl, controlled_by, controller_ref, pod_ready};
use crate::object;

pub fn reconcile(ctl: &Ctl) {
    let (Some(pod_rt), Some(rs_rt)) = (ctl.rt("", "pods"), ctl.rt("apps", "replicasets")) else {
        return;
    };
    let pods = ctl.list("", "pods");
    for rs in ctl.list("apps", "replicasets") {
        if object::is_deleting(&rs) {
            continue;
        }
        let ns = object::namespace(&rs);
        let mut live: Vec<&Value> = pods
            .iter()
            .filter(|p| controlled_by(p, &rs) && !object::is_deleting(p))
            .collect();
        for failed in live.iter().filter(|p| p["status"]["phase"] == "Failed") {
            ctl.delete(&pod_rt, ns, object::name(failed), Some(0));
        }
        live.retain(|p| p["status"]["phase"] != "Failed");
        let want =
            usize::try_from(rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0)).unwrap_or(0);
        if live.len() < want {
            for _ in live.len()..want {
                ctl.create(&pod_rt, ns, new_pod(&rs));
            }
        } else if live.len() > want {
            // Not-Ready pods go first, then the newest.
            live.sort_by_key(|p| {
                (
                    pod_ready(p),
                    std::cmp::Reverse(
                        p["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ),
                )
            });
            for p in &live[..live.len() - want] {
                ctl.delete(&pod_rt, ns, object::name(p), None);
            }
        }
        let ready = live.iter().filter(|p| pod_ready(p)).count();
        let status = json!({
            "replicas": live.len(),
            "fullyLabeledReplicas": live.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"].clone(),
        });
        if status != rs["status"] {
            ctl.write_status(&rs_rt, ns, object::name(&rs), status);
        }
    }
}

fn new_pod(rs: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["name"] = json!(format!("{}-{}", object::name(rs), object::random_suffix()));
    metadata["ownerReferences"] = json!([controller_ref(rs)]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}
