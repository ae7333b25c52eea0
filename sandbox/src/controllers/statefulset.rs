//! The StatefulSet controller: Pods `<set>-<ordinal>` from the template, PVCs
//! `<claim>-<set>-<ordinal>` from `volumeClaimTemplates` (Bound at once; they outlive their
//! Pods), OrderedReady or Parallel management, scaling from the highest ordinal down,
//! `OnDelete` and `RollingUpdate` (highest ordinal first, each waiting for the last to be
//! Ready, honouring `partition`) and the status a real controller reports.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Ctl, controlled_by, controller_ref, pod_ready};
use crate::object;

pub const REVISION_LABEL: &str = "controller-revision-hash";

pub fn reconcile(ctl: &Ctl) {
    let (Some(pod_rt), Some(sts_rt)) = (ctl.rt("", "pods"), ctl.rt("apps", "statefulsets")) else {
        return;
    };
    let pods = ctl.list("", "pods");
    for sts in ctl.list("apps", "statefulsets") {
        if object::is_deleting(&sts) {
            continue;
        }
        let owned: BTreeMap<u32, &Value> = pods
            .iter()
            .filter(|p| controlled_by(p, &sts))
            .filter_map(|p| ordinal(object::name(&sts), object::name(p)).map(|o| (o, p)))
            .collect();
        let status = step(ctl, &pod_rt, &sts, &owned);
        if status != sts["status"] {
            ctl.write_status(&sts_rt, object::namespace(&sts), object::name(&sts), status);
        }
    }
}

fn ordinal(set: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// One pass for one set: at most the changes its policy allows, then its status.
fn step(
    ctl: &Ctl,
    pod_rt: &crate::registry::ResourceType,
    sts: &Value,
    owned: &BTreeMap<u32, &Value>,
) -> Value {
    let ns = object::namespace(sts);
    let name = object::name(sts);
    let spec = &sts["spec"];
    let replicas = u32::try_from(spec["replicas"].as_i64().unwrap_or(1).max(0)).unwrap_or(0);
    let parallel = spec["podManagementPolicy"] == "Parallel";
    let update_revision = format!("{name}-{}", template_hash(&spec["template"]));
    let revision_of = |p: &Value| {
        p["metadata"]["labels"][REVISION_LABEL]
            .as_str()
            .map(str::to_string)
    };
    let terminating = owned.values().any(|p| object::is_deleting(p));

    // Failed pods are replaced, as the real controller does.
    for p in owned.values() {
        if p["status"]["phase"] == "Failed" && !object::is_deleting(p) {
            ctl.delete(pod_rt, ns, object::name(p), Some(0));
        }
    }

    // Create missing pods below `replicas`.
    for ord in 0..replicas {
        match owned.get(&ord) {
            Some(p) if !parallel && !pod_ready(p) => break,
            Some(_) => {}
            None => {
                ensure_claims(ctl, sts, ord);
                ctl.create(pod_rt, ns, new_pod(sts, ord, &update_revision));
                if !parallel {
                    break;
                }
            }
        }
    }

    // Scale down from the highest ordinal; OrderedReady waits for each to go.
    let extra: Vec<&Value> = owned
        .range(replicas..)
        .rev()
        .map(|(_, p)| *p)
        .filter(|p| !object::is_deleting(p))
        .collect();
    for p in extra {
        if !parallel && terminating {
            break;
        }
        ctl.delete(pod_rt, ns, object::name(p), None);
        if !parallel {
            break;
        }
    }

    // RollingUpdate: replace the highest outdated ordinal once all are Ready.
    let rolling = spec["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition = u32::try_from(
        spec["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .unwrap_or(0)
            .max(0),
    )
    .unwrap_or(0);
    let all_ready = (0..replicas).all(|o| owned.get(&o).is_some_and(|p| pod_ready(p)));
    if rolling && all_ready && !terminating {
        let outdated = owned
            .range(partition..replicas)
            .rev()
            .find(|(_, p)| revision_of(p).as_deref() != Some(update_revision.as_str()));
        if let Some((_, p)) = outdated {
            ctl.delete(pod_rt, ns, object::name(p), None);
        }
    }

    let live: Vec<&Value> = owned
        .values()
        .copied()
        .filter(|p| !object::is_deleting(p))
        .collect();
    let updated = live
        .iter()
        .filter(|p| revision_of(p).as_deref() == Some(update_revision.as_str()))
        .count();
    let ready = live.iter().filter(|p| pod_ready(p)).count();
    let count = |n: usize| json!(n);
    let current_revision = if updated == live.len() && live.len() >= replicas as usize {
        update_revision.clone()
    } else {
        sts["status"]["currentRevision"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| update_revision.clone())
    };
    let current = live
        .iter()
        .filter(|p| revision_of(p).as_deref() == Some(current_revision.as_str()))
        .count();
    json!({
        "observedGeneration": sts["metadata"]["generation"].clone(),
        "replicas": count(live.len()),
        "readyReplicas": count(ready),
        "availableReplicas": count(ready),
        "currentReplicas": count(current),
        "updatedReplicas": count(updated),
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": 0,
    })
}

/// A short stable hash of the pod template (FNV-1a over its JSON text; serde_json keeps
/// keys sorted, so equal templates hash equal).
pub fn template_hash(template: &Value) -> String {
    let text = template.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn claim_name(claim: &Value, set: &str, ord: u32) -> String {
    format!("{}-{set}-{ord}", object::name(claim))
}

fn new_pod(sts: &Value, ord: u32, revision: &str) -> Value {
    let set = object::name(sts);
    let pod_name = format!("{set}-{ord}");
    let template = &sts["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["name"] = json!(pod_name);
    metadata["ownerReferences"] = json!([controller_ref(sts)]);
    for (k, v) in [
        (REVISION_LABEL, revision.to_string()),
        ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
        ("apps.kubernetes.io/pod-index", ord.to_string()),
    ] {
        object::set_path(&mut metadata, &["labels", k], json!(v));
    }
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pod_name);
    if let Some(service) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(service);
    }
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    for claim in sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let volume = json!({"name": object::name(claim),
            "persistentVolumeClaim": {"claimName": claim_name(claim, set, ord)}});
        volumes.retain(|v| v["name"] != object::name(claim));
        volumes.push(volume);
    }
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// Creates the set's claims for `ord` that do not exist yet, Bound from the start.
fn ensure_claims(ctl: &Ctl, sts: &Value, ord: u32) {
    let Some(rt) = ctl.rt("", "persistentvolumeclaims") else {
        return;
    };
    let ns = object::namespace(sts);
    let set = object::name(sts);
    let labels = sts["spec"]["selector"]["matchLabels"].clone();
    for claim in sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = claim_name(claim, set, ord);
        if ctl.store.get(&rt, ns, &name).is_ok() {
            continue;
        }
        let mut pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "labels": labels}, "spec": claim["spec"].clone()});
        if pvc["spec"]["storageClassName"].is_null() {
            pvc["spec"]["storageClassName"] = json!("kube-sandbox");
        }
        pvc["spec"]["volumeName"] = json!(format!("pvc-{}", object::new_uid()));
        if ctl.create(&rt, ns, pvc.clone()) {
            let status = json!({"phase": "Bound",
                "accessModes": pvc["spec"]["accessModes"].clone(),
                "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"].clone()}});
            ctl.write_status(&rt, ns, &name, status);
        }
    }
}
