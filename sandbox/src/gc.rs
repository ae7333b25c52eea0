//! Background controllers a real cluster runs in kube-controller-manager: the garbage
//! collector (owner references, foreground deletion), the namespace lifecycle (a deleted
//! namespace is emptied, then removed) and the service-account controller (every active
//! namespace has a `default` ServiceAccount).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::error::ApiError;
use crate::object;
use crate::registry::ResourceType;
use crate::store::{Change, DeleteOpts, EventType, Store, Subresource, WriteOpts};

/// The finalizer that holds an owner until its dependents are gone.
pub const FOREGROUND: &str = "foregroundDeletion";

const MANAGER: &str = "kube-controller-manager";

/// Sweeps after each burst of changes that can give the collector work (and every few
/// seconds as a backstop) until `shutdown` turns true. Plain updates, the bulk of
/// traffic, cause no sweep.
pub async fn run(store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    let mut changes = store.subscribe();
    loop {
        let needed = tokio::select! {
            received = changes.recv() => {
                let mut needed = match received {
                    Ok(c) => relevant(&c),
                    // Missed changes may have mattered.
                    Err(_) => true,
                };
                loop {
                    match changes.try_recv() {
                        Ok(c) => needed |= relevant(&c),
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(_) => {
                            needed = true;
                            break;
                        }
                    }
                }
                needed
            }
            _ = tokio::time::sleep(Duration::from_secs(5)) => true,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if needed {
            sweep(&store);
        }
    }
}

/// Whether a change can start or finish collection: something went away, is being
/// deleted, or arrived owned (its owners may already be gone).
fn relevant(change: &Change) -> bool {
    change.kind == EventType::Deleted
        || object::is_deleting(&change.object)
        || (change.kind == EventType::Added
            && change.plural == "namespaces"
            && change.group.is_empty())
        || (change.kind == EventType::Added && !object::owner_uids(&change.object).is_empty())
}

/// One pass over every object. Each step is idempotent, so a later sweep finishes what an
/// earlier one started.
pub fn sweep(store: &Store) {
    let all = store.snapshot();
    let uids: HashSet<&str> = all.iter().map(|(_, o)| object::uid(o)).collect();
    let foreground_owners: HashSet<&str> = all
        .iter()
        .filter(|(_, o)| {
            object::is_deleting(o) && object::finalizers(o).iter().any(|f| f == FOREGROUND)
        })
        .map(|(_, o)| object::uid(o))
        .collect();
    let terminating: HashSet<&str> = all
        .iter()
        .filter(|(rt, o)| rt.kind == "Namespace" && rt.group.is_empty() && object::is_deleting(o))
        .map(|(_, o)| object::name(o))
        .collect();

    for (rt, obj) in &all {
        if object::is_deleting(obj) {
            continue;
        }
        let owners = object::owner_uids(obj);
        let orphaned = !owners.is_empty() && owners.iter().all(|u| !uids.contains(u.as_str()));
        let owner_going = owners
            .iter()
            .any(|u| foreground_owners.contains(u.as_str()));
        let in_terminating = rt.namespaced && terminating.contains(object::namespace(obj));
        if orphaned || owner_going || in_terminating {
            delete(store, rt, obj);
        }
    }

    ensure_default_service_accounts(store, &all);

    for (rt, obj) in &all {
        if !object::is_deleting(obj) {
            continue;
        }
        let uid = object::uid(obj);
        if foreground_owners.contains(uid) {
            let has_dependents = all
                .iter()
                .any(|(_, o)| object::owner_uids(o).iter().any(|u| u == uid));
            if !has_dependents {
                drop_finalizer(store, rt, obj, FOREGROUND);
            }
        }
        if rt.kind == "Namespace" && rt.group.is_empty() {
            let name = object::name(obj);
            let has_content = all
                .iter()
                .any(|(t, o)| t.namespaced && object::namespace(o) == name);
            if !has_content {
                finish_namespace(store, rt, name);
            }
        }
    }
}

fn ensure_default_service_accounts(store: &Store, all: &[(ResourceType, Value)]) {
    let registry = store.registry();
    let Some(sa_type) = registry.find("", "v1", "serviceaccounts") else {
        return;
    };
    for (rt, ns) in all {
        if rt.kind != "Namespace" || !rt.group.is_empty() || object::is_deleting(ns) {
            continue;
        }
        let name = object::name(ns);
        let has_default = all.iter().any(|(t, o)| {
            t.kind == "ServiceAccount"
                && object::namespace(o) == name
                && object::name(o) == "default"
        });
        if has_default {
            continue;
        }
        let sa =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
        match store.create(sa_type, name, sa, MANAGER, false) {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => {
                tracing::warn!(namespace = name, error = %e, "cannot create the default service account")
            }
        }
    }
}

fn delete(store: &Store, rt: &ResourceType, obj: &Value) {
    match store.delete(
        rt,
        object::namespace(obj),
        object::name(obj),
        &DeleteOpts::default(),
    ) {
        Ok(_) | Err(ApiError::NotFound { .. }) => {}
        Err(e) => {
            tracing::warn!(kind = %rt.kind, name = object::name(obj), error = %e, "garbage collection failed")
        }
    }
}

fn update_opts() -> WriteOpts {
    WriteOpts {
        subresource: Subresource::Main,
        manager: MANAGER.into(),
        is_apply: false,
        create_if_missing: false,
        dry_run: false,
    }
}

fn drop_finalizer(store: &Store, rt: &ResourceType, obj: &Value, finalizer: &str) {
    let result = store.write(
        rt,
        object::namespace(obj),
        object::name(obj),
        &update_opts(),
        |live| {
            let mut next = live.cloned().unwrap_or(Value::Null);
            let kept: Vec<String> = object::finalizers(&next)
                .into_iter()
                .filter(|f| f != finalizer)
                .collect();
            object::meta_mut(&mut next).insert("finalizers".into(), json!(kept));
            object::meta_mut(&mut next).remove("resourceVersion");
            Ok(next)
        },
    );
    if let Err(e) = result
        && !matches!(e, ApiError::NotFound { .. })
    {
        tracing::warn!(kind = %rt.kind, name = object::name(obj), error = %e, "cannot remove finalizer");
    }
}

/// The namespace is empty: clear `spec.finalizers`, which lets it go once no
/// `metadata.finalizers` remain.
fn finish_namespace(store: &Store, rt: &ResourceType, name: &str) {
    let result = store.write(rt, "", name, &update_opts(), |live| {
        let mut next = live.cloned().unwrap_or(Value::Null);
        object::set_path(&mut next, &["spec", "finalizers"], json!([]));
        object::meta_mut(&mut next).remove("resourceVersion");
        Ok(next)
    });
    if let Err(e) = result
        && !matches!(e, ApiError::NotFound { .. })
    {
        tracing::warn!(namespace = name, error = %e, "cannot finish namespace deletion");
    }
}
