//! Controllers kube-controller-manager runs (StatefulSet, Deployment, ReplicaSet, Endpoints
//! and EndpointSlice), and the small store helpers they, the scheduler, the node registry
//! and the kubelet share.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::addresses::Addresses;
use crate::error::ApiError;
use crate::object;
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{DeleteOpts, Store, Subresource, WriteOpts};

pub mod deployment;
pub mod endpoint_slices;
pub mod endpoints;
pub mod replicaset;
pub mod statefulset;

/// The field manager the emulated cluster components write as.
pub const MANAGER: &str = "kube-sandbox-cluster";

/// What cluster components need to reach the store.
#[derive(Clone)]
pub struct Ctl {
    pub store: Arc<Store>,
    pub addrs: Arc<Addresses>,
}

fn opts(subresource: Subresource) -> WriteOpts {
    WriteOpts {
        subresource,
        manager: MANAGER.into(),
        is_apply: false,
        create_if_missing: false,
        dry_run: false,
    }
}

impl Ctl {
    pub fn rt(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.store.registry().find(group, "v1", plural).cloned()
    }

    /// Every object of a type, in every namespace.
    pub fn list(&self, group: &str, plural: &str) -> Vec<Value> {
        let Some(rt) = self.rt(group, plural) else {
            return Vec::new();
        };
        let everything = LabelSelector::parse("")
            .and_then(|l| FieldSelector::parse("", &rt.group, &rt.kind).map(|f| (l, f)));
        let Ok((labels, fields)) = everything else {
            return Vec::new();
        };
        match self.store.list(&rt, None, &labels, &fields, None, None) {
            Ok(page) => page.items,
            Err(e) => {
                tracing::warn!(resource = plural, error = %e, "cannot list");
                Vec::new()
            }
        }
    }

    /// Replaces the status of an object (last writer wins, as the owner of the status).
    pub fn write_status(&self, rt: &ResourceType, ns: &str, name: &str, status: Value) {
        let result = self
            .store
            .write(rt, ns, name, &opts(Subresource::Status), |live| {
                let mut next = live.cloned().unwrap_or(Value::Null);
                next["status"] = status;
                object::meta_mut(&mut next).remove("resourceVersion");
                Ok(next)
            });
        log_failure(result, "status", &rt.kind, name);
    }

    /// Changes the main part of an object with `f`.
    pub fn update(&self, rt: &ResourceType, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let result = self
            .store
            .write(rt, ns, name, &opts(Subresource::Main), |live| {
                let mut next = live.cloned().unwrap_or(Value::Null);
                f(&mut next);
                object::meta_mut(&mut next).remove("resourceVersion");
                Ok(next)
            });
        log_failure(result, "update", &rt.kind, name);
    }

    pub fn create(&self, rt: &ResourceType, ns: &str, obj: Value) -> bool {
        match self.store.create(rt, ns, obj, MANAGER, false) {
            Ok(_) => true,
            Err(ApiError::AlreadyExists { .. }) => false,
            Err(e) => {
                tracing::warn!(kind = %rt.kind, error = %e, "cannot create");
                false
            }
        }
    }

    pub fn delete(&self, rt: &ResourceType, ns: &str, name: &str, grace: Option<i64>) {
        let opts = DeleteOpts {
            grace_period: grace,
            ..DeleteOpts::default()
        };
        log_failure(
            self.store.delete(rt, ns, name, &opts),
            "delete",
            &rt.kind,
            name,
        );
    }
}

fn log_failure(result: Result<Value, ApiError>, what: &str, kind: &str, name: &str) {
    match result {
        Ok(_) | Err(ApiError::NotFound { .. }) => {}
        Err(e) => tracing::warn!(kind, name, error = %e, "cluster {what} failed"),
    }
}

/// An ownerReference to `owner` as its controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"].clone(),
        "kind": owner["kind"].clone(),
        "name": object::name(owner),
        "uid": object::uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `obj` names `owner` as its controller.
pub fn controlled_by(obj: &Value, owner: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == object::uid(owner) && r["controller"] == true)
        })
}

/// Whether a condition of `kind` is True in an object's status.
pub fn condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// Whether a Pod counts as running and Ready for its controller.
pub fn pod_ready(pod: &Value) -> bool {
    !object::is_deleting(pod) && pod["status"]["phase"] == "Running" && condition_true(pod, "Ready")
}
