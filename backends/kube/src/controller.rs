//! The driver: a kube-rs `Controller` on `RedisCluster` whose reconcile hands each cluster to
//! its [`controller::Reconciler`] (the shared core) and shows the pass on the object.
//!
//! One reconcile = one pass of the core, then the status (written only when it changed),
//! the events of what changed, and a requeue after the core's delay. Watch triggers that
//! arrive before that delay wait for it: repeating an effect too early (a `CLUSTER FAILOVER`
//! under way) would undo it.

use crate::build::{ClusterCtx, headless_service_and_pdb};
use crate::checks::{self, Other};
use crate::error::Error;
use crate::lease::Leadership;
use crate::members::{Caches, KubeMembers, apply_params, member_caches, scoped_api};
use crate::password::{adapter, current_password, rotate_password, use_password};
use crate::retry::Retries;
use crate::{events, names, status};
use controller::http::Directory;
use controller::status::{EventType, Transition};
use controller::{ClusterKey, Reconciler};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use spec::{RedisCluster, RedisClusterStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the controller runs.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// This process's name in events and the lease.
    pub identity: String,
    /// Each cluster's passes appended as a trace (`run --record DIR`).
    pub record: Option<controller::trace_file::TraceFiles>,
}

/// A standby replica (or an invalid cluster) looks again this often.
const STANDBY_REQUEUE: Duration = Duration::from_secs(2);
/// How often the node count that decides required vs preferred spreading is read again.
const NODES_RECHECK: Duration = Duration::from_secs(60);

/// The state of one cluster between passes.
pub(crate) struct ClusterState {
    uid: String,
    pub(crate) reconciler: Reconciler<KubeMembers>,
    not_before: Instant,
    /// The generation whose Service and PodDisruptionBudget were applied.
    applied_generation: Option<i64>,
    /// The generation whose layout every node's shard label shows.
    relabelled_generation: Option<i64>,
    /// The status last written (a pass that shows the same writes nothing).
    shown: Option<RedisClusterStatus>,
    nodes_checked: Option<Instant>,
    /// The password the adapter was built with (compared, never logged); `None` until the
    /// first pass read the Secret.
    pub(crate) password: Option<Option<String>>,
}

/// One cluster's state, locked for the length of a pass.
type SharedState = Arc<tokio::sync::Mutex<ClusterState>>;

pub(crate) struct Ctx {
    pub(crate) client: Client,
    caches: Caches,
    clusters: Store<RedisCluster>,
    states: Mutex<HashMap<(String, String), SharedState>>,
    recorder: Recorder,
    leadership: Leadership,
    directory: Directory,
    retries: Retries,
    record: Option<controller::trace_file::TraceFiles>,
}

/// Runs the controller until `shutdown` turns true. Fails at once, with one line, when the
/// API server cannot be reached or the CRD is not installed.
pub async fn run(
    client: Client,
    config: RunConfig,
    leadership: Leadership,
    directory: Directory,
    ready: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    client
        .apiserver_version()
        .await
        .map_err(|e| Error::kube("reach the API server", e))?;
    Api::<RedisCluster>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| {
            Error::kube(
                "list RedisClusters (is the CRD installed? `redis-operator crd | kubectl apply -f -`)",
                e,
            )
        })?;
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let reporter = Reporter {
        controller: names::MANAGED_BY.to_string(),
        instance: Some(config.identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let mut runs = Vec::new();
    let mut readiness = Vec::new();
    for scope in scopes {
        let (run, stores_ready) = scope_controller(
            client.clone(),
            scope,
            recorder.clone(),
            leadership.clone(),
            directory.clone(),
            config.record.clone(),
            shutdown.clone(),
        );
        runs.push(run);
        readiness.push(stores_ready);
    }
    tokio::spawn(async move {
        for r in readiness {
            r.await;
        }
        let _ = ready.send(true);
        tracing::info!("caches synced");
    });
    futures_util::future::join_all(runs).await;
    Ok(())
}

type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// One controller over one namespace (or all), with its own caches.
fn scope_controller(
    client: Client,
    namespace: Option<String>,
    recorder: Recorder,
    leadership: Leadership,
    directory: Directory,
    record: Option<controller::trace_file::TraceFiles>,
    mut shutdown: watch::Receiver<bool>,
) -> (BoxFuture, BoxFuture) {
    let ns = namespace.as_deref();
    let (caches, streams) = member_caches(&client, ns);
    let controller = Controller::new(
        scoped_api::<RedisCluster>(&client, ns),
        watcher::Config::default(),
    )
    .with_config(ControllerConfig::default().debounce(Duration::from_millis(50)))
    .owns_stream(streams.statefulsets)
    .watches_stream(streams.claims, |claim: PersistentVolumeClaim| {
        let name = claim.labels().get(names::LABEL_INSTANCE)?.clone();
        Some(ObjectRef::<RedisCluster>::new(&name).within(&claim.namespace()?))
    })
    .watches_stream(streams.pods, |pod: Pod| {
        let name = pod.labels().get(names::LABEL_INSTANCE)?.clone();
        Some(ObjectRef::<RedisCluster>::new(&name).within(&pod.namespace()?))
    });
    let clusters = controller.store();
    let (pods, sets, claims) = (
        caches.pods.clone(),
        caches.statefulsets.clone(),
        caches.claims.clone(),
    );
    let ctx = Arc::new(Ctx {
        client,
        caches,
        clusters: clusters.clone(),
        states: Mutex::new(HashMap::new()),
        recorder,
        leadership,
        directory,
        retries: Retries::default(),
        record,
    });
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let run: BoxFuture = Box::pin(
        controller
            .graceful_shutdown_on(stop)
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller event");
                }
            }),
    );
    let ready: BoxFuture = Box::pin(async move {
        synced(&clusters).await;
        synced(&pods).await;
        synced(&sets).await;
        synced(&claims).await;
    });
    (run, ready)
}

/// Waits until `store` has its first full list. `Store::wait_until_ready` wakes only the last
/// of several concurrent waiters (kube-runtime keeps one waker; the controller's own runner
/// waits on the same store), so it is asked again every 200 ms instead of once.
pub(crate) async fn synced<K>(store: &Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready())
            .await
            .is_ok()
        {
            return;
        }
    }
}

fn error_policy(obj: Arc<RedisCluster>, error: &Error, ctx: Arc<Ctx>) -> Action {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let message = error.to_string();
    let transient = error.is_transient();
    let verdict = ctx
        .retries
        .failed((namespace.clone(), name.clone()), transient, &message);
    metrics::counter!(controller::telemetry::RECONCILE_ERRORS, "reason" => error.reason())
        .increment(1);
    let retry_in_s = verdict.retry_after.as_secs();
    if transient {
        tracing::warn!(%namespace, cluster = %name, error = %message, failures = verdict.failures, retry_in_s, "reconcile failed; trying again");
    } else if verdict.report {
        tracing::error!(%namespace, cluster = %name, error = %message, retry_in_s, "reconcile failed and will until the cluster, its namespace or the operator's permissions change");
        let recorder = ctx.recorder.clone();
        let regarding = obj.object_ref(&());
        let failure = Transition {
            kind: EventType::Warning,
            reason: error.reason().to_string(),
            note: message,
        };
        tokio::spawn(async move { events::publish(&recorder, &regarding, &[failure]).await });
    } else {
        tracing::info!(%namespace, cluster = %name, error = %message, retry_in_s, "reconcile failed again, as reported");
    }
    Action::requeue(verdict.retry_after)
}

async fn reconcile(obj: Arc<RedisCluster>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::MissingField("namespace"))?;
    let api: Api<RedisCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    if !ctx.leadership.is_leader() {
        standby(&obj, &ctx).await;
        return Ok(Action::requeue(STANDBY_REQUEUE));
    }
    let key = (namespace.clone(), obj.name_any());
    let action = finalizer(&api, names::FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => apply(obj, &ctx).await,
            FinalizerEvent::Cleanup(obj) => cleanup(obj, &ctx).await,
        }
    })
    .await
    .map_err(Error::from_finalizer)?;
    ctx.retries.succeeded(&key);
    Ok(action)
}

impl Ctx {
    fn state_of(&self, obj: &RedisCluster, namespace: &str) -> Result<SharedState, Error> {
        let name = obj.name_any();
        let uid = obj.uid().ok_or(Error::MissingField("metadata.uid"))?;
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), name.clone());
        if let Some(state) = states.get(&key) {
            // A cluster deleted and created again under the same name starts afresh.
            if state.try_lock().map(|s| s.uid == uid).unwrap_or(true) {
                return Ok(state.clone());
            }
        }
        let members = KubeMembers::new(
            self.client.clone(),
            namespace,
            &name,
            &uid,
            self.caches.clone(),
        );
        let leadership = self.leadership.clone();
        let mut reconciler = Reconciler::new(
            ClusterKey::new(namespace, &name),
            members,
            adapter(&obj.spec, None, namespace, &name),
        )
        .with_directory(self.directory.clone())
        .with_fence(Arc::new(move || leadership.is_leader()));
        if let Some(files) = &self.record {
            match files.open(namespace, &name) {
                Ok(file) => reconciler = reconciler.record_to(file),
                // Recording is an aid: the cluster is still reconciled without it.
                Err(e) => tracing::warn!(
                    "cannot record {namespace}/{name} under {}: {e}",
                    files.dir.display()
                ),
            }
        }
        // Conditions keep their transition times across operator restarts.
        reconciler.observe_object(obj.status.clone(), obj.metadata.generation);
        let state = Arc::new(tokio::sync::Mutex::new(ClusterState {
            uid,
            reconciler,
            not_before: Instant::now(),
            applied_generation: None,
            relabelled_generation: None,
            shown: obj.status.clone(),
            nodes_checked: None,
            password: None,
        }));
        states.insert(key, state.clone());
        Ok(state)
    }
}

/// A replica that does not hold the lease still answers the HTTP API: it observes (and
/// changes nothing) so its directory stays current.
async fn standby(obj: &RedisCluster, ctx: &Ctx) {
    let Some(namespace) = obj.namespace() else {
        return;
    };
    let Ok(state) = ctx.state_of(obj, &namespace) else {
        return;
    };
    let state = state.lock().await;
    let r = &state.reconciler;
    if let Ok(observation) = controller::observe(r.members(), r.redis()).await {
        ctx.directory.set_cluster(
            &namespace,
            obj.name_any(),
            controller::projection::node_entries(&observation),
        );
    }
}

async fn apply(obj: Arc<RedisCluster>, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = obj.name_any();
    let state = ctx.state_of(&obj, &namespace)?;
    let mut state = state.lock().await;
    let now = Instant::now();
    if now < state.not_before {
        return Ok(Action::requeue(state.not_before - now));
    }
    let api: Api<RedisCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut problems = backend_problems(&obj, &namespace, ctx, &state);
    let password = current_password(
        &ctx.client,
        &obj,
        &namespace,
        state.password.as_ref(),
        &mut problems,
    )
    .await;
    match &state.password {
        // The first pass of this process: the nodes already run with this password.
        None => use_password(&mut state, &obj, password),
        Some(current) if *current != password => {
            rotate_password(&mut state, &obj, password).await;
        }
        Some(_) => {}
    }
    refresh_spread(ctx, &obj, &mut state).await;
    let valid = problems.is_empty()
        && spec::validate(&obj.spec, state.reconciler.last_valid_spec()).is_empty();
    state.reconciler.set_backend_problems(problems);
    if valid && state.applied_generation != obj.metadata.generation {
        let ctx_b = ClusterCtx {
            name: &name,
            namespace: &namespace,
            uid: &state.uid,
            spec: &obj.spec,
            spread_required: false,
        };
        apply_cluster_objects(ctx, &ctx_b).await?;
        state.applied_generation = obj.metadata.generation;
    }
    // Retried every pass until it succeeds, but never holds the pass back: stale labels only
    // matter to pods not scheduled yet, and the cluster's own work must go on meanwhile.
    if valid && state.relabelled_generation != obj.metadata.generation {
        match state.reconciler.members().relabel_shards(&obj.spec).await {
            Ok(written) => {
                if written > 0 {
                    tracing::info!(cluster = %name, objects = written, "shard labels follow the new layout");
                }
                state.relabelled_generation = obj.metadata.generation;
            }
            Err(error) => {
                tracing::warn!(cluster = %name, %error, "cannot bring the shard labels to the new layout; trying again next pass");
            }
        }
    }
    let shown = state.shown.clone();
    state
        .reconciler
        .observe_object(shown, obj.metadata.generation);
    let pass = state
        .reconciler
        .reconcile(&obj.spec)
        .await
        .map_err(Error::from_pass)?;
    if state.shown.as_ref() != Some(&pass.status) {
        status::write(&api, &name, &pass.status).await?;
        state.shown = Some(pass.status.clone());
    }
    let regarding = obj.object_ref(&());
    let mut transitions = pass.events.clone();
    transitions.extend(controller::status::pass_notices(&pass));
    events::publish(&ctx.recorder, &regarding, &transitions).await;
    state.not_before = Instant::now() + pass.next_delay;
    Ok(Action::requeue(pass.next_delay))
}

/// Problems only Kubernetes has: host ports another cluster holds, fields a StatefulSet
/// cannot change.
fn backend_problems(
    obj: &RedisCluster,
    namespace: &str,
    ctx: &Ctx,
    state: &ClusterState,
) -> Vec<String> {
    let clusters = ctx.clusters.state();
    let created = |c: &RedisCluster| {
        c.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default()
    };
    let stamps: Vec<String> = clusters.iter().map(|c| created(c)).collect();
    let names: Vec<(String, String)> = clusters
        .iter()
        .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    let others: Vec<Other<'_>> = clusters
        .iter()
        .zip(&stamps)
        .zip(&names)
        .filter(|((c, _), _)| c.metadata.deletion_timestamp.is_none())
        .map(|((c, created), (ns, name))| Other {
            namespace: ns,
            name,
            created,
            spec: &c.spec,
        })
        .collect();
    let name = obj.name_any();
    checks::problems(
        (namespace, &name),
        &created(obj),
        &obj.spec,
        state.reconciler.last_valid_spec(),
        &others,
    )
}

/// Reads how many nodes can take pods (at most once a minute): a shard's nodes are required
/// on different hosts only when enough of them exist, else pods could never be scheduled.
async fn refresh_spread(ctx: &Ctx, obj: &RedisCluster, state: &mut ClusterState) {
    if state
        .nodes_checked
        .is_some_and(|t| t.elapsed() < NODES_RECHECK)
    {
        return;
    }
    state.nodes_checked = Some(Instant::now());
    let api: Api<Node> = Api::all(ctx.client.clone());
    let Ok(nodes) = api.list(&ListParams::default()).await else {
        // Cannot count (no permission): prefer, never require.
        state.reconciler.members().set_spread_required(false);
        return;
    };
    let schedulable = nodes
        .items
        .iter()
        .filter(|n| {
            !n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        })
        .count();
    let needed = 1 + obj.spec.replicas() as usize;
    state
        .reconciler
        .members()
        .set_spread_required(schedulable >= needed);
}

/// The objects of the whole cluster: its headless Service and its PodDisruptionBudget.
async fn apply_cluster_objects(ctx: &Ctx, cluster: &ClusterCtx<'_>) -> Result<(), Error> {
    let (service, pdb) = headless_service_and_pdb(cluster);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), cluster.namespace);
    services
        .patch(
            &names::service(cluster.name),
            &apply_params(),
            &Patch::Apply(&service),
        )
        .await
        .map_err(|e| Error::kube("apply Service", e))?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), cluster.namespace);
    pdbs.patch(
        &names::pdb(cluster.name),
        &apply_params(),
        &Patch::Apply(&pdb),
    )
    .await
    .map_err(|e| Error::kube("apply PodDisruptionBudget", e))?;
    Ok(())
}

/// The cluster is being deleted: owner references take the StatefulSets, pods, Service and
/// budget; this removes what they cannot (the claims a StatefulSet retains, the directory
/// entry, the cluster's state). Waits for a pass in flight to end first. Idempotent.
async fn cleanup(obj: Arc<RedisCluster>, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = obj.name_any();
    let state = ctx
        .states
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(namespace.clone(), name.clone()));
    if let Some(state) = state {
        // The pass in flight (a migration) ends before the objects go.
        let _ = state.lock().await;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = names::cluster_selector(&name);
    claims
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await
        .map_err(|e| Error::kube("delete the cluster's PersistentVolumeClaims", e))?;
    ctx.directory.remove_cluster(&namespace, &name);
    tracing::info!(%namespace, cluster = %name, "cluster deleted");
    Ok(Action::await_change())
}
