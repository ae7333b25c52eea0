//! The Deployment controller: one ReplicaSet per pod template (`<deployment>-<hash>`, label
//! `pod-template-hash`). `RollingUpdate` scales the new ReplicaSet to the full count at
//! once and the old ones to zero when the new one is all Ready (a 100% surge); `Recreate`
//! scales the old ones to zero first and starts the new one when their pods are gone.

use serde_json::{Value, json};

use super::statefulset::template_hash;
use super::{Ctl, controlled_by, controller_ref};
use crate::object;

const HASH_LABEL: &str = "pod-template-hash";

pub fn reconcile(ctl: &Ctl) {
    let (Some(rs_rt), Some(dep_rt)) =
        (ctl.rt("apps", "replicasets"), ctl.rt("apps", "deployments"))
    else {
        return;
    };
    let sets = ctl.list("apps", "replicasets");
    let pods = ctl.list("", "pods");
    for dep in ctl.list("apps", "deployments") {
        if object::is_deleting(&dep) {
            continue;
        }
        let ns = object::namespace(&dep);
        let want = dep["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let hash = template_hash(&dep["spec"]["template"]);
        let new_name = format!("{}-{hash}", object::name(&dep));
        let owned: Vec<&Value> = sets.iter().filter(|rs| controlled_by(rs, &dep)).collect();
        let new = owned
            .iter()
            .find(|rs| object::name(rs) == new_name)
            .copied();
        let old: Vec<&Value> = owned
            .iter()
            .filter(|rs| object::name(rs) != new_name)
            .copied()
            .collect();
        let recreate = dep["spec"]["strategy"]["type"] == "Recreate";
        let old_pods_left = pods
            .iter()
            .any(|p| old.iter().any(|rs| controlled_by(p, rs)));
        let new_target = if recreate && old_pods_left { 0 } else { want };
        match new {
            None => {
                ctl.create(&rs_rt, ns, new_set(&dep, &new_name, &hash, new_target));
            }
            Some(rs) if rs["spec"]["replicas"].as_i64() != Some(new_target) => {
                ctl.update(&rs_rt, ns, &new_name, |r| {
                    r["spec"]["replicas"] = json!(new_target)
                });
            }
            Some(_) => {}
        }
        let new_ready = new
            .and_then(|rs| rs["status"]["readyReplicas"].as_i64())
            .unwrap_or(0);
        if recreate || new_ready >= want {
            for rs in &old {
                if rs["spec"]["replicas"].as_i64() != Some(0) {
                    ctl.update(&rs_rt, ns, object::name(rs), |r| {
                        r["spec"]["replicas"] = json!(0)
                    });
                }
            }
        }
        let sum = |field: &str| -> i64 {
            owned
                .iter()
                .filter_map(|rs| rs["status"][field].as_i64())
                .sum()
        };
        let available = sum("availableReplicas");
        let updated = new
            .and_then(|rs| rs["status"]["replicas"].as_i64())
            .unwrap_or(0);
        let mut status = dep["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["observedGeneration"] = dep["metadata"]["generation"].clone();
        status["replicas"] = json!(sum("replicas"));
        status["readyReplicas"] = json!(sum("readyReplicas"));
        status["availableReplicas"] = json!(available);
        status["updatedReplicas"] = json!(updated);
        status["unavailableReplicas"] = json!((want - available).max(0));
        let (value, reason) = if available >= want {
            ("True", "MinimumReplicasAvailable")
        } else {
            ("False", "MinimumReplicasUnavailable")
        };
        crate::scheduler::set_condition(&mut status, "Available", value, Some(reason), None);
        crate::scheduler::set_condition(
            &mut status,
            "Progressing",
            "True",
            Some("NewReplicaSetAvailable"),
            None,
        );
        if status != dep["status"] {
            ctl.write_status(&dep_rt, ns, object::name(&dep), status);
        }
    }
}

fn new_set(dep: &Value, name: &str, hash: &str, replicas: i64) -> Value {
    let mut template = dep["spec"]["template"].clone();
    object::set_path(
        &mut template,
        &["metadata", "labels", HASH_LABEL],
        json!(hash),
    );
    let mut selector = dep["spec"]["selector"].clone();
    object::set_path(&mut selector, &["matchLabels", HASH_LABEL], json!(hash));
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH_LABEL] = json!(hash);
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [controller_ref(dep)]},
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    })
}
