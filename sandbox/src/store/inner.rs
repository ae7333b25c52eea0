//! The store's write primitives under its lock: insert, replace, remove, and the cascades
//! a removal starts (a CRD's objects, orphaned dependents).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{Change, EventType, Inner, Key, key, served};
use crate::crd;
use crate::error::ApiError;
use crate::object;
use crate::registry::ResourceType;

impl Inner {
    pub(super) fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub(super) fn record(&mut self, change: Change, events: &broadcast::Sender<Arc<Change>>) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        self.dirty = true;
        // No receivers is normal (nobody watching).
        let _ = events.send(change);
    }

    pub(super) fn insert_new(
        &mut self,
        rt: &ResourceType,
        mut obj: Value,
        dry_run: bool,
        events: &broadcast::Sender<Arc<Change>>,
    ) -> Result<Value, ApiError> {
        if rt.kind == "CustomResourceDefinition" {
            crd::validate(&obj)?;
            crd::set_status(&mut obj);
        }
        let k = key(rt, object::namespace(&obj), object::name(&obj));
        if self.objects.contains_key(&k) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &k.3));
        }
        if dry_run {
            return Ok(served(rt, &obj));
        }
        let rv = self.next_rv();
        object::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        if rt.kind == "CustomResourceDefinition" {
            for t in crd::resource_types(&obj)? {
                self.registry.upsert(t);
            }
        }
        self.uids.insert(object::uid(&obj).to_string(), k.clone());
        self.objects.insert(k.clone(), obj.clone());
        self.record(
            Change {
                rv,
                kind: EventType::Added,
                group: k.0,
                plural: k.1,
                namespace: k.2,
                object: obj.clone(),
                old: None,
            },
            events,
        );
        Ok(served(rt, &obj))
    }

    pub(super) fn replace(
        &mut self,
        rt: &ResourceType,
        k: Key,
        old: Value,
        mut next: Value,
        events: &broadcast::Sender<Arc<Change>>,
    ) -> Value {
        let rv = self.next_rv();
        object::meta_mut(&mut next).insert("resourceVersion".into(), json!(rv.to_string()));
        if rt.kind == "CustomResourceDefinition"
            && let Ok(types) = crd::resource_types(&next)
        {
            // Versions the CRD no longer serves stop being served.
            if let (Some(g), Some(p)) = (
                old["spec"]["group"].as_str(),
                old["spec"]["names"]["plural"].as_str(),
            ) {
                self.registry.remove_group_resource(g, p);
            }
            for t in types {
                self.registry.upsert(t);
            }
        }
        self.objects.insert(k.clone(), next.clone());
        self.record(
            Change {
                rv,
                kind: EventType::Modified,
                group: k.0,
                plural: k.1,
                namespace: k.2,
                object: next.clone(),
                old: Some(old),
            },
            events,
        );
        served(rt, &next)
    }

    /// Starts a Pod's graceful deletion (or shortens one under way); the kubelet finishes it.
    pub(super) fn mark_pod_deleting(
        &mut self,
        rt: &ResourceType,
        k: Key,
        current: Value,
        grace: i64,
        events: &broadcast::Sender<Arc<Change>>,
    ) -> Value {
        let already = current["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if object::is_deleting(&current) && already.is_some_and(|g| g <= grace) {
            return super::served(rt, &current);
        }
        let mut next = current.clone();
        let meta = object::meta_mut(&mut next);
        if !object::is_deleting(&current) {
            meta.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
        }
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        self.replace(rt, k, current, next, events)
    }

    pub(super) fn remove(
        &mut self,
        rt: &ResourceType,
        k: &Key,
        mut last: Value,
        events: &broadcast::Sender<Arc<Change>>,
    ) -> Value {
        let rv = self.next_rv();
        object::meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        let old = self.objects.remove(k);
        self.uids.remove(object::uid(&last));
        if rt.kind == "CustomResourceDefinition" {
            self.drop_custom_resources(&last, events);
            if let (Some(g), Some(p)) = (
                last["spec"]["group"].as_str(),
                last["spec"]["names"]["plural"].as_str(),
            ) {
                self.registry.remove_group_resource(g, p);
            }
        }
        self.record(
            Change {
                rv,
                kind: EventType::Deleted,
                group: k.0.clone(),
                plural: k.1.clone(),
                namespace: k.2.clone(),
                object: last.clone(),
                old,
            },
            events,
        );
        served(rt, &last)
    }

    /// Deleting a CRD deletes every object of its resource, as the API server's
    /// customresourcecleanup finalizer does.
    pub(super) fn drop_custom_resources(
        &mut self,
        crd_obj: &Value,
        events: &broadcast::Sender<Arc<Change>>,
    ) {
        let (Some(group), Some(plural)) = (
            crd_obj["spec"]["group"].as_str(),
            crd_obj["spec"]["names"]["plural"].as_str(),
        ) else {
            return;
        };
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.0 == group && k.1 == plural)
            .cloned()
            .collect();
        let Some(rt) = self
            .registry
            .all()
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
        else {
            return;
        };
        for k in keys {
            if let Some(obj) = self.objects.get(&k).cloned() {
                self.remove(&rt, &k, obj, events);
            }
        }
    }

    /// `propagationPolicy: Orphan`: dependents lose their reference to the owner.
    pub(super) fn orphan_dependents(
        &mut self,
        owner_uid: &str,
        events: &broadcast::Sender<Arc<Change>>,
    ) {
        let keys: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| object::owner_uids(o).iter().any(|u| u == owner_uid))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let Some(old) = self.objects.get(&k).cloned() else {
                continue;
            };
            let Some(rt) = self
                .registry
                .all()
                .iter()
                .find(|t| t.group == k.0 && t.plural == k.1)
                .cloned()
            else {
                continue;
            };
            let mut next = old.clone();
            if let Some(refs) = object::meta_mut(&mut next)
                .get_mut("ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
            }
            self.replace(&rt, k, old, next, events);
        }
    }
}
