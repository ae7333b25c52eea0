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
use crate::{crd, events, managed};

mod inner;
mod paging;
mod rules;
mod state;

use paging::{decode_continue, encode_continue};
pub use rules::finalized;
use rules::{merge_write, prepare_create};

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
    /// `gracePeriodSeconds` of the request; a Pod on a node otherwise takes its
    /// `terminationGracePeriodSeconds`.
    pub grace_period: Option<i64>,
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
    /// Set while a kubelet runs: deleting a Pod bound to a node then only marks it, and
    /// the kubelet removes it once its processes have stopped.
    graceful_pods: std::sync::atomic::AtomicBool,
}

pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
    let ns = if rt.namespaced { namespace } else { "" };
    let (group, plural) = rt.group_resource();
    (group, plural, ns.into(), name.into())
}

impl Inner {
    /// The type `rt`'s objects are stored as: itself, except for a view like
    /// `events.k8s.io` Events, stored as core Events.
    fn storage_type(&self, rt: &ResourceType) -> ResourceType {
        if events::is_view(rt)
            && let Some(core) = self.registry.find("", "v1", "events")
        {
            return core.clone();
        }
        rt.clone()
    }
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
            graceful_pods: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Turns graceful Pod deletion on (a kubelet is running) or off.
    pub fn set_graceful_pods(&self, on: bool) {
        self.graceful_pods
            .store(on, std::sync::atomic::Ordering::SeqCst);
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

    /// Every Role, ClusterRole, RoleBinding and ClusterRoleBinding, with its kind.
    pub fn rbac_objects(&self) -> Vec<(String, Value)> {
        let inner = self.lock();
        inner
            .objects
            .iter()
            .filter(|((g, _, _, _), _)| g == "rbac.authorization.k8s.io")
            .map(|(_, o)| (o["kind"].as_str().unwrap_or("").to_string(), o.clone()))
            .collect()
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
        let group_resource = rt.group_resource();
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
        let srt = inner.storage_type(rt);
        obj = events::to_storage(rt, obj);
        prepare_create(&inner, &srt, namespace, &mut obj)?;
        managed::record_update(&srt, None, &mut obj, manager, Subresource::Main);
        let stored = inner.insert_new(&srt, obj, dry_run, &self.events)?;
        Ok(served(rt, &stored))
    }

    /// Reads the current object, lets `change` propose the next one, and stores it with the
    /// rules of a real API server (resourceVersion check, immutable metadata, status
    /// separation, generation, finalizers). `change` sees and returns the object as `rt`
    /// serves it; a view stored in another form is converted around it.
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
        if !events::is_view(rt) {
            return self.write_stored(rt, namespace, name, opts, change);
        }
        let srt = self.lock().storage_type(rt);
        let stored = self.write_stored(&srt, namespace, name, opts, |live| {
            let shown = live.map(|l| served(rt, l));
            Ok(events::to_storage(rt, change(shown.as_ref())?))
        })?;
        Ok(served(rt, &stored))
    }

    /// [`Store::write`] on the storage form of `rt`'s objects.
    fn write_stored<F>(
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
        if opts.is_apply {
            // Apply recorded what it was sent; drop what the schema pruned.
            let mut entries = managed::read_entries(&next);
            managed::prune(&mut entries, &next);
            managed::write_entries(&mut next, &entries);
        } else {
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
        if rt.kind == "Namespace" && crate::builtin::IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        if let Some(grace) = self.pod_grace(rt, &current, opts) {
            return Ok(inner.mark_pod_deleting(rt, k, current, grace, &self.events));
        }
        let mut next = current.clone();
        let mut finalizers = object::finalizers(&current);
        if rt.kind == "Namespace" {
            // The namespace lifecycle (gc.rs) empties it and then removes it.
            object::set_path(&mut next, &["status", "phase"], json!("Terminating"));
            if !finalizers.iter().any(|f| f == "kubernetes") {
                let mut spec_finalizers = next["spec"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if spec_finalizers.is_empty() {
                    spec_finalizers.push(json!("kubernetes"));
                }
                object::set_path(
                    &mut next,
                    &["spec", "finalizers"],
                    Value::Array(spec_finalizers),
                );
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

    /// The grace period a Pod deletion waits for, or None when the Pod goes at once: no
    /// kubelet, not on a node, or a grace period of zero.
    fn pod_grace(&self, rt: &ResourceType, pod: &Value, opts: &DeleteOpts) -> Option<i64> {
        if rt.kind != "Pod"
            || !rt.group.is_empty()
            || !self.graceful_pods.load(std::sync::atomic::Ordering::SeqCst)
            || pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        {
            return None;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            return None;
        }
        let grace = opts
            .grace_period
            .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        (grace > 0).then_some(grace)
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
        let storage = rt.group_resource();
        let backlog = match since {
            Since::Now => inner
                .objects
                .iter()
                .filter(|((g, r, _, _), _)| (g, r) == (&storage.0, &storage.1))
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
                    .filter(|c| c.rv > v && (&c.group, &c.plural) == (&storage.0, &storage.1))
                    .cloned()
                    .collect()
            }
        };
        Ok((backlog, inner.rv, receiver))
    }
}

/// The stored object as served under `rt`'s version (objects of a multi-version CRD are
/// stored once; no conversion beyond the apiVersion is done; `events.k8s.io` Events are
/// converted from the core form).
pub fn served(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = events::from_storage(rt, obj.clone());
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
    }
    out
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
