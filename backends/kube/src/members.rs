//! Pods as cluster members: the shared core's [`Members`] over one StatefulSet per node.
//!
//! `list` reads the watch caches (no API call per pass); the effects are API calls. A member
//! exists while its StatefulSet does; it runs while its pod's `redis` container runs. A pod
//! that is gone, terminating or whose container terminated is reported not running at once,
//! so the engine can act before Redis' gossip notices (never for a node that is only cut
//! off: its pod still shows Running, and the engine waits for Redis).

use crate::build::{self, ClusterCtx};
use crate::error::{Error, is_not_found};
use crate::names;
use controller::Members;
use engine::{Addr, MemberInfo, Ordinal};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use spec::RedisClusterSpec;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The watch caches every cluster's members are read from.
#[derive(Clone)]
pub struct Caches {
    pub pods: Store<Pod>,
    pub statefulsets: Store<StatefulSet>,
    pub claims: Store<PersistentVolumeClaim>,
}

/// The members of one `RedisCluster`.
#[derive(Clone)]
pub struct KubeMembers {
    client: Client,
    namespace: String,
    name: String,
    uid: String,
    caches: Caches,
    /// Whether a shard's nodes must land on different hosts (enough schedulable nodes).
    spread_required: Arc<AtomicBool>,
}

impl KubeMembers {
    pub fn new(client: Client, namespace: &str, name: &str, uid: &str, caches: Caches) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            caches,
            spread_required: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn set_spread_required(&self, required: bool) {
        self.spread_required.store(required, Ordering::Relaxed);
    }

    fn ctx<'a>(&'a self, spec: &'a RedisClusterSpec) -> ClusterCtx<'a> {
        ClusterCtx {
            name: &self.name,
            namespace: &self.namespace,
            uid: &self.uid,
            spec,
            spread_required: self.spread_required.load(Ordering::Relaxed),
        }
    }

    fn mine(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        labels.get(names::LABEL_INSTANCE).map(String::as_str) == Some(self.name.as_str())
            && labels.get(names::LABEL_MANAGED_BY).map(String::as_str) == Some(names::MANAGED_BY)
    }

    fn pod(&self, ordinal: Ordinal) -> Option<Arc<Pod>> {
        let name = names::pod(&self.name, ordinal);
        self.caches.pods.find(|p| {
            p.metadata.name.as_deref() == Some(name.as_str())
                && p.metadata.namespace.as_deref() == Some(self.namespace.as_str())
        })
    }

    /// Every member the caches show: a StatefulSet of this cluster, or a claim whose
    /// StatefulSet was deleted (a member without its process keeps its storage until
    /// `delete_data`, and is listed, not running).
    pub fn members(&self) -> Vec<MemberInfo> {
        let here = |meta: &kube::api::ObjectMeta| {
            meta.namespace.as_deref() == Some(self.namespace.as_str())
                && meta.deletion_timestamp.is_none()
        };
        let mut ordinals: std::collections::BTreeSet<Ordinal> = self
            .caches
            .statefulsets
            .state()
            .iter()
            .filter(|s| here(&s.metadata) && self.mine(s.labels()))
            .filter_map(|s| names::ordinal_of(s.labels()))
            .collect();
        ordinals.extend(
            self.caches
                .claims
                .state()
                .iter()
                .filter(|c| here(&c.metadata) && self.mine(c.labels()))
                .filter_map(|c| names::claim_ordinal(&self.name, &c.name_any())),
        );
        ordinals
            .into_iter()
            .map(|ordinal| member_of(ordinal, self.pod(ordinal).as_deref()))
            .collect()
    }

    /// Brings every node's shard label to the layout of `spec`, on its StatefulSet (whose
    /// template also names the shard in the pod's anti-affinity) and on its running pod. The
    /// shard is `ordinal % masters`, so a change in the number of masters moves nodes between
    /// shards; a pod labelled under the old count would keep a new shard's pods off a host
    /// forever (3 × 1 -> 4 × 2 on three hosts left a shard label on four pods). Neither write
    /// restarts anything: the StatefulSets are `OnDelete`, and a pod's labels can change
    /// while it runs. Returns how many objects were written.
    pub async fn relabel_shards(&self, spec: &RedisClusterSpec) -> Result<usize, Error> {
        let ctx = self.ctx(spec);
        let stale = |labels: Option<&std::collections::BTreeMap<String, String>>, want: &str| {
            labels
                .and_then(|l| l.get(names::LABEL_SHARD))
                .map(String::as_str)
                != Some(want)
        };
        let sets: Vec<(Ordinal, String, bool)> = self
            .caches
            .statefulsets
            .state()
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(self.namespace.as_str())
                    && s.metadata.deletion_timestamp.is_none()
                    && self.mine(s.labels())
            })
            .filter_map(|s| {
                let ordinal = names::ordinal_of(s.labels())?;
                let want = ctx.shard(ordinal).to_string();
                let template = s.spec.as_ref().and_then(|t| t.template.metadata.as_ref());
                let set_stale = stale(template.and_then(|m| m.labels.as_ref()), &want);
                Some((ordinal, want, set_stale))
            })
            .collect();
        let mut written = 0;
        for (ordinal, want, set_stale) in sets {
            if set_stale {
                self.apply_statefulset(ordinal, spec).await?;
                written += 1;
            }
            let Some(pod) = self.pod(ordinal) else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some()
                || !stale(pod.metadata.labels.as_ref(), &want)
            {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
            let name = pod.name_any();
            let patch = serde_json::json!({"metadata": {"labels": {names::LABEL_SHARD: want}}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => written += 1,
                // Gone since the cache saw it: its StatefulSet makes it again, labelled anew.
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(Error::kube(
                        format!("label Pod {}/{name}", self.namespace),
                        e,
                    ));
                }
            }
        }
        Ok(written)
    }

    async fn apply_statefulset(
        &self,
        ordinal: Ordinal,
        spec: &RedisClusterSpec,
    ) -> Result<(), Error> {
        let ctx = self.ctx(spec);
        let ports = build::node_ports(spec, ordinal).ok_or_else(|| Error::Node {
            ordinal,
            reason: "its ports leave the range 1-65535".to_string(),
        })?;
        let set = build::statefulset::statefulset(&ctx, ordinal, ports);
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = names::statefulset(&self.name, ordinal);
        api.patch(&name, &apply_params(), &Patch::Apply(&set))
            .await
            .map_err(|e| Error::kube(format!("apply StatefulSet {}/{name}", self.namespace), e))?;
        Ok(())
    }
}

/// The API of a namespaced kind in one namespace, or in all.
pub(crate) fn scoped_api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A stream of the objects a watch touched; it must be polled for its cache to fill.
pub(crate) type Touched<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The streams behind [`Caches`].
pub(crate) struct MemberStreams {
    pub(crate) pods: Touched<Pod>,
    pub(crate) statefulsets: Touched<StatefulSet>,
    pub(crate) claims: Touched<PersistentVolumeClaim>,
}

/// The watch caches members are read from (the operator's Pods, StatefulSets and claims in
/// one namespace, or all), and the streams that fill them. The controller turns the streams
/// into triggers; a recorder only drains them.
pub(crate) fn member_caches(client: &Client, ns: Option<&str>) -> (Caches, MemberStreams) {
    let managed = watcher::Config::default().labels(&names::managed_selector());
    let (pods, pod_writer) = reflector::store();
    let pod_stream = watcher(scoped_api::<Pod>(client, ns), managed.clone())
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects()
        .boxed();
    let (sets, set_writer) = reflector::store();
    let set_stream = watcher(scoped_api::<StatefulSet>(client, ns), managed.clone())
        .default_backoff()
        .reflect(set_writer)
        .touched_objects()
        .boxed();
    let (claims, claim_writer) = reflector::store();
    let claim_stream = watcher(scoped_api::<PersistentVolumeClaim>(client, ns), managed)
        .default_backoff()
        .reflect(claim_writer)
        .touched_objects()
        .boxed();
    let caches = Caches {
        pods,
        statefulsets: sets,
        claims,
    };
    let streams = MemberStreams {
        pods: pod_stream,
        statefulsets: set_stream,
        claims: claim_stream,
    };
    (caches, streams)
}

pub fn apply_params() -> PatchParams {
    PatchParams::apply(names::FIELD_MANAGER).force()
}

/// A member as its pod shows it.
fn member_of(ordinal: Ordinal, pod: Option<&Pod>) -> MemberInfo {
    let Some(pod) = pod else {
        return MemberInfo::new(ordinal, None, false);
    };
    let status = pod.status.as_ref();
    let redis_running = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == names::REDIS_CONTAINER))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    // The redis container is what counts: a sidecar that cannot start (the exporter) keeps
    // the pod from Ready, not the node from serving.
    let running = redis_running && pod.metadata.deletion_timestamp.is_none();
    let port = pod
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == names::REDIS_CONTAINER)
        })
        .and_then(|c| c.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some("redis")))
        .and_then(|p| u16::try_from(p.container_port).ok());
    let ip = status
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty());
    let addr = ip.zip(port).map(|(ip, port)| Addr::new(ip, port));
    let mut info = MemberInfo::new(ordinal, addr, running);
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        info = info.with_host(node);
    }
    if let Some(fp) = pod.annotations().get(names::ANNOTATION_FINGERPRINT) {
        info = info.with_fingerprint(fp.clone());
    }
    info
}

impl Members for KubeMembers {
    type Error = Error;

    fn is_transient(error: &Error) -> bool {
        error.is_transient()
    }

    async fn list(&self) -> Result<Vec<MemberInfo>, Error> {
        Ok(self.members())
    }

    fn fingerprint(&self, spec: &RedisClusterSpec) -> Option<String> {
        Some(build::fingerprint(&self.ctx(spec)))
    }

    /// Applies the node's StatefulSet; Kubernetes starts (or keeps) its pod.
    async fn ensure_running(&self, ordinal: Ordinal, spec: &RedisClusterSpec) -> Result<(), Error> {
        self.apply_statefulset(ordinal, spec).await
    }

    /// Applies the new template, then deletes the running pod (only that one: the uid is a
    /// precondition), and the StatefulSet brings it back with the new configuration and the
    /// same volume.
    async fn replace(&self, ordinal: Ordinal, spec: &RedisClusterSpec) -> Result<(), Error> {
        self.apply_statefulset(ordinal, spec).await?;
        let Some(pod) = self.pod(ordinal) else {
            return Ok(());
        };
        // Already going, or already the replacement (the engine decides the same replacement
        // again until the member reports the new fingerprint): nothing to delete.
        let desired = build::fingerprint(&self.ctx(spec));
        if pod.metadata.deletion_timestamp.is_some()
            || pod.annotations().get(names::ANNOTATION_FINGERPRINT) == Some(&desired)
        {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = pod.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // The uid precondition failed: that pod is already gone and a new one runs.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(
                format!("delete Pod {}/{name}", self.namespace),
                e,
            )),
        }
    }

    /// Deletes the node's StatefulSet (its pod goes with it); a claim stays until
    /// `delete_data`.
    async fn delete(&self, ordinal: Ordinal) -> Result<(), Error> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = names::statefulset(&self.name, ordinal);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::kube(
                format!("delete StatefulSet {}/{name}", self.namespace),
                e,
            )),
        }
    }

    async fn delete_data(&self, ordinal: Ordinal) -> Result<(), Error> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = names::claim(&self.name, ordinal);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::kube(
                format!("delete PersistentVolumeClaim {}/{name}", self.namespace),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("pod")
    }

    const RUNNING: &str = r#"
metadata: {name: c-1-0, namespace: ns, annotations: {"redis.redis/config-fingerprint": "abc"}}
spec:
  nodeName: node-2
  containers: [{name: redis, ports: [{name: redis, containerPort: 10001}]}]
status:
  phase: Running
  podIP: 127.3.0.2
  containerStatuses: [{name: redis, ready: true, restartCount: 0, image: redis, imageID: "", state: {running: {}}}]
"#;

    #[test]
    fn a_running_pod_is_a_running_member_at_its_address_host_and_fingerprint() {
        let m = member_of(1, Some(&pod(RUNNING)));
        assert!(m.running);
        assert_eq!(m.addr, Some(Addr::new("127.3.0.2", 10001)));
        assert_eq!(m.host.as_deref(), Some("node-2"));
        assert_eq!(m.fingerprint.as_deref(), Some("abc"));
    }

    #[test]
    fn a_terminated_container_or_a_terminating_pod_is_known_dead_at_once() {
        let crashed = RUNNING.replace(
            "state: {running: {}}",
            "state: {terminated: {exitCode: 137}}",
        );
        assert!(!member_of(1, Some(&pod(&crashed))).running);
        let deleting = RUNNING.replace(
            "metadata: {name: c-1-0,",
            "metadata: {deletionTimestamp: \"2026-01-01T00:00:00Z\", name: c-1-0,",
        );
        assert!(!member_of(1, Some(&pod(&deleting))).running);
        assert!(!member_of(1, None).running);
    }
}
