//! The object store: every object as JSON, one global resourceVersion, and the bounded
//! event history watches resume from. All writes go through one lock, so resourceVersions
//! and the event order agree.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::object;
use crate::registry::{Registry, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::{crd, managed};

/// Where an object lives: group, plural resource, namespace ("" if cluster-scoped), name.
pub type Key = (String, String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watchers. `old` is what the object was
/// before, so a filtered watch can turn "stopped matching" into DELETED.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: EventType,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub object: Value,
    pub old: Option<Value>,
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
}

/// How a write is attributed in `managedFields`.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    pub subresource: Subresource,
    pub manager: String,
    /// Server-side apply computes managedFields itself; other writes are recorded as
    /// `Update` operations of `manager`.
    pub is_apply: bool,
    pub create_if_missing: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: usize,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// Current state as synthetic ADDED events, then live changes.
    Now,
    /// Changes after this resourceVersion.
    Version(u64),
}

/// What a watch starts from: the backlog, the version it reaches, and live changes.
pub type WatchStart = (Vec<Arc<Change>>, u64, broadcast::Receiver<Arc<Change>>);

pub(crate) struct Inner {
    pub registry: Registry,
    objects: BTreeMap<Key, Value>,
    uids: HashMap<String, Key>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes at or below this version are no longer in the history.
    compacted: u64,
    pub dirty: bool,
}

pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Change>>,
}

pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
    let ns = if rt.namespaced { namespace } else { "" };
    (rt.group.clone(), rt.plural.clone(), ns.into(), name.into())
}

impl Store {
    pub fn new(history_limit: usize) -> Arc<Store> {
        let (events, _) = broadcast::channel(8192);
        Arc::new(Store {
            inner: Mutex::new(Inner {
                registry: Registry::with_builtins(),
                objects: BTreeMap::new(),
                uids: HashMap::new(),
                rv: 0,
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted: 0,
                dirty: false,
            }),
            events,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves data that is still consistent JSON; keep
        // serving rather than poisoning every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.events.subscribe()
    }

    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Drops the whole event history, so any watch from an older version gets 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let inner = self.lock();
        inner
            .objects
            .get(&key(rt, namespace, name))
            .map(|o| served(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    pub fn exists_uid(&self, uid: &str) -> bool {
        self.lock().uids.contains_key(uid)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let inner = self.lock();
        let after = match continue_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, after) = decode_continue(token)?;
                if rv < inner.compacted {
                    return Err(ApiError::Expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                    ));
                }
                Some((rv, after))
            }
            None => None,
        };
        let list_rv = after.as_ref().map(|(rv, _)| *rv).unwrap_or(inner.rv);
        let group_resource = (rt.group.clone(), rt.plural.clone());
        let matching = inner
            .objects
            .iter()
            .filter(|((g, r, ns, _), _)| {
                (g, r) == (&group_resource.0, &group_resource.1)
                    && namespace.is_none_or(|want| want == ns)
            })
            .filter(|(k, _)| match &after {
                Some((_, last)) => {
                    (k.2.as_str(), k.3.as_str()) > (last.0.as_str(), last.1.as_str())
                }
                None => true,
            })
            .filter(|(_, o)| labels.matches(o) && fields.matches(o));
        let mut items = Vec::new();
        let mut remaining = 0;
        let mut last_key = None;
        for (k, o) in matching {
            if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(served(rt, o));
            last_key = Some((k.2.clone(), k.3.clone()));
        }
        let continue_token = match (remaining, last_key) {
            (n, Some(last)) if n > 0 => Some(encode_continue(list_rv, &last)),
            _ => None,
        };
        Ok(ListPage {
            items,
            resource_version: list_rv,
            continue_token,
            remaining,
        })
    }

    /// Creates an object (POST).
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        mut obj: Value,
        manager: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        prepare_create(&inner, rt, namespace, &mut obj)?;
        managed::record_update(rt, None, &mut obj, manager, Subresource::Main);
        inner.insert_new(rt, obj, dry_run, &self.events)
    }

    /// Reads the current object, lets `change` propose the next one, and stores it with the
    /// rules of a real API server (resourceVersion check, immutable metadata, status
    /// separation, generation, finalizers).
    pub fn write<F>(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &WriteOpts,
        change: F,
    ) -> Result<Value, ApiError>
    where
        F: FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    {
        let mut inner = self.lock();
        let k = key(rt, namespace, name);
        let current = inner.objects.get(&k).cloned();
        let Some(current) = current else {
            if !opts.create_if_missing {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            }
            let mut obj = change(None)?;
            let meta = object::meta_mut(&mut obj);
            meta.insert("name".into(), json!(name));
            if rt.namespaced {
                meta.insert("namespace".into(), json!(namespace));
            }
            // Apply has already recorded its manager; creation must not wipe that.
            let applied_fields = obj["metadata"]["managedFields"].clone();
            prepare_create(&inner, rt, namespace, &mut obj)?;
            if opts.is_apply {
                object::meta_mut(&mut obj).insert("managedFields".into(), applied_fields);
            } else {
                managed::record_update(rt, None, &mut obj, &opts.manager, opts.subresource);
            }
            return inner.insert_new(rt, obj, opts.dry_run, &self.events);
        };
        let proposed = change(Some(&current))?;
        let mut next = merge_write(rt, &current, proposed, opts.subresource)?;
        if next == current && !finalized(&next) {
            // Kubernetes skips no-op writes: no new resourceVersion, no event.
            return Ok(served(rt, &current));
        }
        if !opts.is_apply {
            managed::record_update(
                rt,
                Some(&current),
                &mut next,
                &opts.manager,
                opts.subresource,
            );
        }
        if rt.kind == "CustomResourceDefinition" {
            crd::validate(&next)?;
            crd::set_status(&mut next);
        }
        if opts.dry_run {
            return Ok(served(rt, &next));
        }
        if finalized(&next) {
            return Ok(inner.remove(rt, &k, next, &self.events));
        }
        Ok(inner.replace(rt, k, current, next, &self.events))
    }

    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let k = key(rt, namespace, name);
        let Some(current) = inner.objects.get(&k).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if let Some(uid) = &opts.precondition_uid
            && uid != object::uid(&current)
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::uid(&current)
                ),
                details: crate::error::details(&rt.group, &rt.plural, name),
            });
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != object::resource_version(&current)
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        if opts.dry_run {
            return Ok(served(rt, &current));
        }
        let mut next = current.clone();
        let mut finalizers = object::finalizers(&current);
        if rt.kind == "Namespace" {
            // The namespace lifecycle (gc.rs) empties it and then removes it.
            next["status"]["phase"] = json!("Terminating");
            if !finalizers.iter().any(|f| f == "kubernetes") {
                let mut spec_finalizers = next["spec"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if spec_finalizers.is_empty() {
                    spec_finalizers.push(json!("kubernetes"));
                }
                next["spec"]["finalizers"] = Value::Array(spec_finalizers);
            }
        }
        match opts.propagation {
            Propagation::Foreground if !finalizers.iter().any(|f| f == crate::gc::FOREGROUND) => {
                finalizers.push(crate::gc::FOREGROUND.into());
            }
            Propagation::Orphan => inner.orphan_dependents(object::uid(&current), &self.events),
            _ => {}
        }
        if rt.kind == "CustomResourceDefinition" && finalizers.is_empty() {
            inner.drop_custom_resources(&current, &self.events);
        }
        object::meta_mut(&mut next).insert("finalizers".into(), json!(finalizers));
        if finalizers.is_empty() {
            object::meta_mut(&mut next).remove("finalizers");
        }
        if rt.kind != "Namespace" && finalizers.is_empty() {
            return Ok(inner.remove(rt, &k, next, &self.events));
        }
        if object::is_deleting(&current) {
            return Ok(served(rt, &current));
        }
        let meta = object::meta_mut(&mut next);
        meta.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        Ok(inner.replace(rt, k, current, next, &self.events))
    }

    /// Every stored object with its type, for the garbage collector's sweep.
    pub fn snapshot(&self) -> Vec<(ResourceType, Value)> {
        let inner = self.lock();
        inner
            .objects
            .iter()
            .filter_map(|((g, r, _, _), o)| {
                let rt = inner
                    .registry
                    .all()
                    .iter()
                    .find(|t| t.group == *g && t.plural == *r)?;
                Some((rt.clone(), o.clone()))
            })
            .collect()
    }

    /// Where a watch starts: the backlog to send first (synthetic ADDED objects or
    /// history) and a receiver for what follows, taken under one lock so nothing is missed.
    pub fn watch_from(&self, rt: &ResourceType, since: Since) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        let receiver = self.events.subscribe();
        let backlog = match since {
            Since::Now => inner
                .objects
                .iter()
                .filter(|((g, r, _, _), _)| *g == rt.group && *r == rt.plural)
                .map(|((g, r, ns, _), o)| {
                    Arc::new(Change {
                        rv: inner.rv,
                        kind: EventType::Added,
                        group: g.clone(),
                        plural: r.clone(),
                        namespace: ns.clone(),
                        object: o.clone(),
                        old: None,
                    })
                })
                .collect(),
            Since::Version(v) => {
                if v < inner.compacted {
                    return Err(ApiError::Expired(format!(
                        "too old resource version: {v} ({})",
                        inner.compacted + 1
                    )));
                }
                inner
                    .history
                    .iter()
                    .filter(|c| c.rv > v && c.group == rt.group && c.plural == rt.plural)
                    .cloned()
                    .collect()
            }
        };
        Ok((backlog, inner.rv, receiver))
    }

    /// The state file's content: every object and the current version.
    pub fn to_state(&self) -> Value {
        let mut inner = self.lock();
        inner.dirty = false;
        let objects: Vec<Value> = inner
            .objects
            .iter()
            .map(|((g, r, _, _), o)| json!({"group": g, "resource": r, "object": o}))
            .collect();
        json!({"resourceVersion": inner.rv, "objects": objects})
    }

    pub fn is_dirty(&self) -> bool {
        self.lock().dirty
    }

    /// Restores objects saved by [`Store::to_state`]; CRDs come first so their resources
    /// are served again.
    pub fn load_state(&self, state: &Value) {
        let mut inner = self.lock();
        inner.rv = state["resourceVersion"].as_u64().unwrap_or(0);
        inner.compacted = inner.rv;
        let entries = state["objects"].as_array().cloned().unwrap_or_default();
        for e in &entries {
            let (Some(g), Some(r)) = (e["group"].as_str(), e["resource"].as_str()) else {
                continue;
            };
            let obj = e["object"].clone();
            if g == "apiextensions.k8s.io" && r == "customresourcedefinitions" {
                for rt in crd::resource_types(&obj).unwrap_or_default() {
                    inner.registry.upsert(rt);
                }
            }
            let k = (
                g.to_string(),
                r.to_string(),
                object::namespace(&obj).to_string(),
                object::name(&obj).to_string(),
            );
            inner.uids.insert(object::uid(&obj).to_string(), k.clone());
            inner.objects.insert(k, obj);
        }
    }
}

impl Inner {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, change: Change, events: &broadcast::Sender<Arc<Change>>) {
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

    fn insert_new(
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

    fn replace(
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

    fn remove(
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
    fn drop_custom_resources(&mut self, crd_obj: &Value, events: &broadcast::Sender<Arc<Change>>) {
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
    fn orphan_dependents(&mut self, owner_uid: &str, events: &broadcast::Sender<Arc<Change>>) {
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

/// Whether a deleting object may go: no finalizers left (for a Namespace, also none in
/// `spec.finalizers`, which the namespace lifecycle clears once it is empty).
pub fn finalized(obj: &Value) -> bool {
    let spec_finalizers = obj["spec"]["finalizers"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let is_namespace = obj["kind"].as_str() == Some("Namespace");
    object::is_deleting(obj)
        && object::finalizers(obj).is_empty()
        && !(is_namespace && spec_finalizers)
}

/// The object as served under `rt`'s version (objects of a multi-version CRD are stored
/// once; no conversion beyond the apiVersion is done).
pub fn served(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
    }
    out
}

fn prepare_create(
    inner: &Inner,
    rt: &ResourceType,
    namespace: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request was not a JSON object".into(),
        ));
    }
    check_type(rt, obj)?;
    stamp_type(rt, obj);
    let meta = object::meta_mut(obj);
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        name = format!("{prefix}{}", object::random_suffix());
        meta.insert("name".into(), json!(name));
    }
    check_name(&rt.kind, &name)?;
    if rt.namespaced {
        let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        meta.insert("namespace".into(), json!(namespace));
        match inner.objects.get(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            namespace.into(),
        )) {
            None => return Err(ApiError::not_found("", "namespaces", namespace)),
            Some(ns) if object::is_deleting(ns) => {
                return Err(ApiError::Forbidden(format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    rt.plural
                )));
            }
            Some(_) => {}
        }
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(f);
    }
    if rt.has_status
        && let Some(map) = obj.as_object_mut()
    {
        // Status is the controllers' to write, through /status.
        map.remove("status");
        match rt.kind.as_str() {
            "Pod" => {
                map.insert("status".into(), json!({"phase": "Pending"}));
            }
            "Namespace" => {
                map.insert("status".into(), json!({"phase": "Active"}));
            }
            _ => {}
        }
    }
    if rt.kind == "Namespace" && obj["spec"]["finalizers"].is_null() {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    Ok(())
}

/// Stored objects always carry their type, so code that sees only the JSON knows it.
fn stamp_type(rt: &ResourceType, obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
    }
}

fn check_type(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind {kind} does not match the resource {}",
            rt.kind
        )));
    }
    Ok(())
}

/// DNS subdomain names (RFC 1123), as most kinds require.
fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let ok = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            kind,
            name,
            format!(
                "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ))
    }
}

/// Applies the update rules to a proposed object: resourceVersion precondition, metadata
/// the client may not change, status separation and generation.
fn merge_write(
    rt: &ResourceType,
    current: &Value,
    mut proposed: Value,
    sub: Subresource,
) -> Result<Value, ApiError> {
    if !proposed.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request was not a JSON object".into(),
        ));
    }
    check_type(rt, &proposed)?;
    stamp_type(rt, &mut proposed);
    let name = object::name(current).to_string();
    let proposed_name = object::name(&proposed);
    if !proposed_name.is_empty() && proposed_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({proposed_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(rv) = object::resource_version(&proposed)
        && Some(rv) != object::resource_version(current)
    {
        return Err(ApiError::stale(&rt.group, &rt.plural, &name));
    }
    let mut next = match sub {
        Subresource::Main => {
            if rt.has_status
                && let Some(map) = proposed.as_object_mut()
            {
                match current.get("status") {
                    Some(s) => map.insert("status".into(), s.clone()),
                    None => map.remove("status"),
                };
            }
            proposed
        }
        Subresource::Status => {
            // Only .status comes from the request.
            let mut next = current.clone();
            if let Some(map) = next.as_object_mut() {
                match proposed.get("status") {
                    Some(s) => map.insert("status".into(), s.clone()),
                    None => map.remove("status"),
                };
            }
            next
        }
    };
    // Identity and lifecycle fields stay as the server set them.
    let cur_meta = object::meta(current).cloned().unwrap_or_default();
    let meta = object::meta_mut(&mut next);
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match cur_meta.get(f) {
            Some(v) => meta.insert(f.into(), v.clone()),
            None => meta.remove(f),
        };
    }
    if sub == Subresource::Status {
        return Ok(next);
    }
    if object::is_deleting(current) {
        // While deleting, finalizers may only be removed, never added.
        let before = object::finalizers(current);
        let added = object::finalizers(&next)
            .into_iter()
            .any(|f| !before.contains(&f));
        if added {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if spec_changed(current, &next) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object::meta_mut(&mut next).insert("generation".into(), json!(generation));
    }
    Ok(next)
}

/// Whether a write changes what `generation` counts: `.spec` where the kind has one,
/// otherwise anything outside metadata and status.
fn spec_changed(old: &Value, new: &Value) -> bool {
    if old.get("spec").is_some() || new.get("spec").is_some() {
        return old.get("spec") != new.get("spec");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

fn encode_continue(rv: u64, last: &(String, String)) -> String {
    let raw = json!({"rv": rv, "ns": last.0, "name": last.1}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect();
    let value: Value = serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let rv = value["rv"].as_u64().ok_or_else(bad)?;
    let ns = value["ns"].as_str().unwrap_or("").to_string();
    let name = value["name"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}

/// Seeds the namespaces a cluster starts with.
pub fn seed(store: &Store) {
    let registry = store.registry();
    let Some(rt) = registry.find("", "v1", "namespaces") else {
        return;
    };
    for ns in crate::builtin::INITIAL_NAMESPACES {
        if store.get(rt, "", ns).is_err() {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Err(e) = store.create(rt, "", obj, "kube-apiserver", false) {
                tracing::warn!(namespace = ns, error = %e, "cannot seed namespace");
            }
        }
    }
}
