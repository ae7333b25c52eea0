//! The pass, owned once for every backend: observe → `engine::decide` → execute, and what a
//! pass leaves behind (phase hint, last valid spec, memory, trace, directory, metrics, delay).
//!
//! A [`Reconciler`] never decides anything itself; it runs the engine's decision and reports
//! the pass. Shells call [`Reconciler::reconcile`] with the spec they read (a manifest, a
//! watched object) and wait [`Pass::next_delay`] before the next call.

use crate::desired::desired_from;
use crate::error::{EffectCause, EffectError, ReconcileError};
use crate::http::Directory;
use crate::members::Members;
use crate::status::{self, Transition};
use crate::trace_thinning::TraceThinning;
use crate::{projection, telemetry};
use engine::history::{DataLoss, Memory};
use engine::trace::TraceRecord;
use engine::{ConditionKind, Decision, Desired, Effect, Observation, Phase};
use redis_backend::{ExecContext, RedisAdapter, Views};
use spec::{RedisClusterSpec, RedisClusterStatus};
use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which cluster a reconciler runs: its namespace (`local` for local mode) and name. Every
/// per-cluster metric and directory entry is keyed by both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey {
    pub namespace: String,
    pub name: String,
}

impl ClusterKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("namespace", self.namespace.clone()),
            ("cluster", self.name.clone()),
        ]
    }
}

/// One pass, as it happened.
pub struct Pass<E: std::error::Error + 'static> {
    pub observation: Observation,
    pub decision: Decision,
    pub desired: Desired,
    pub phase_hint: Phase,
    /// The first effect that failed, if any (the rest of the decision was not run).
    pub error: Option<EffectError<E>>,
    /// How many passes in a row this same effect failed the same way (1: first time).
    pub failures_in_a_row: u32,
    /// Masters this observation found back without their data (reported once each).
    pub losses: Vec<DataLoss>,
    /// Warnings about a spec seen valid for the first time (`replicas: 0` without
    /// persistence...): shown once per change, not once per pass.
    pub warnings: Vec<String>,
    /// When to run the next pass.
    pub next_delay: Duration,
    /// The `RedisCluster` status this pass shows.
    pub status: RedisClusterStatus,
    /// What changed since the previous pass's status, one event per change.
    pub events: Vec<Transition>,
}

impl<E: std::error::Error + 'static> Pass<E> {
    pub fn trace_record(&self) -> TraceRecord {
        TraceRecord {
            time: self.observation.now_ms,
            spec: self.desired.clone(),
            phase_hint: self.phase_hint,
            observation: self.observation.clone(),
            decision: self.decision.clone(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.decision.is_true(ConditionKind::Ready)
    }
}

/// The reconcile state of one cluster.
pub struct Reconciler<M: Members> {
    key: ClusterKey,
    members: M,
    redis: RedisAdapter,
    phase: Phase,
    /// The last spec that passed validation: an invalid edit is judged against it, and a
    /// shell that cannot read its spec any more keeps reconciling it.
    applied: Option<RedisClusterSpec>,
    memory: Memory,
    /// Where passes are recorded, and which of them are (see [`TraceThinning`]).
    trace: Option<(Box<dyn Write + Send + Sync>, TraceThinning)>,
    directory: Option<Directory>,
    /// The status the previous pass showed (or the object's, when a shell sets it).
    status: Option<RedisClusterStatus>,
    generation: Option<i64>,
    /// Problems only the backend can see (host ports another cluster holds, a missing
    /// Secret): they make the spec invalid exactly as the spec's own rules do.
    backend_problems: Vec<String>,
    /// Checked before every effect: a replica that lost its leader lease stops acting at
    /// once, even in the middle of a pass.
    fence: Option<Fence>,
    /// The previous pass decided effects: the next one reads every full view.
    acted: bool,
}

/// Whether effects may run now (e.g. "this process holds the leader lease").
pub type Fence = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

impl<M: Members> Reconciler<M> {
    pub fn new(key: ClusterKey, members: M, redis: RedisAdapter) -> Self {
        Self {
            key,
            members,
            redis,
            phase: Phase::Pending,
            applied: None,
            memory: Memory::default(),
            trace: None,
            directory: None,
            status: None,
            generation: None,
            backend_problems: Vec::new(),
            fence: None,
            acted: true,
        }
    }

    /// Effects run only while `fence` says so; the first effect it refuses ends the pass.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Problems the backend found in the spec, added to validation's on the next passes.
    pub fn set_backend_problems(&mut self, problems: Vec<String>) {
        self.backend_problems = problems;
    }

    /// Talks to the nodes through `redis` from now on (a new password).
    pub fn set_redis(&mut self, redis: RedisAdapter) {
        self.redis = redis;
    }

    /// The status the object shows now and the generation of the spec the next pass is given:
    /// conditions keep their transition times across operator restarts, and events are only
    /// emitted for what changed since.
    pub fn observe_object(&mut self, status: Option<RedisClusterStatus>, generation: Option<i64>) {
        self.status = status;
        self.generation = generation;
    }

    /// Each pass updates this directory's entry for the cluster (the HTTP API reads it).
    pub fn with_directory(mut self, directory: Directory) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Each pass appends its trace record (one JSON line) to `out`, except a settled
    /// cluster's repeats (see [`TraceThinning`]).
    pub fn record_to(mut self, out: impl Write + Send + Sync + 'static) -> Self {
        self.trace = Some((Box::new(out), TraceThinning::default()));
        self
    }

    /// With [`Self::record_to`]: every pass is written, a settled cluster's repeats too.
    pub fn recording_every_pass(mut self) -> Self {
        if let Some((_, thinning)) = self.trace.as_mut() {
            *thinning = TraceThinning::every_pass();
        }
        self
    }

    pub fn key(&self) -> &ClusterKey {
        &self.key
    }

    pub fn members(&self) -> &M {
        &self.members
    }

    pub fn redis(&self) -> &RedisAdapter {
        &self.redis
    }

    /// The phase the last pass ended in (the hint of the next one).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn last_valid_spec(&self) -> Option<&RedisClusterSpec> {
        self.applied.as_ref()
    }

    /// Runs one pass towards `spec`. An invalid spec changes nothing: the engine reports it
    /// (condition `Invalid`) and keeps the cluster as it is.
    pub async fn reconcile(
        &mut self,
        spec: &RedisClusterSpec,
    ) -> Result<Pass<M::Error>, ReconcileError<M::Error>> {
        let started = Instant::now();
        let mut desired = desired_from(spec, self.applied.as_ref());
        desired
            .problems
            .extend(self.backend_problems.iter().cloned());
        let mut warnings = Vec::new();
        if desired.problems.is_empty() && self.applied.as_ref() != Some(spec) {
            warnings = spec::warnings(spec)
                .iter()
                .map(ToString::to_string)
                .collect();
            self.applied = Some(spec.clone());
        }
        // Members start, and are replaced, with the last valid spec: an invalid edit changes
        // nothing (the engine decides no effect for it anyway).
        let in_force = self.applied.clone().unwrap_or_else(|| spec.clone());
        desired.fingerprint = self.members.fingerprint(&in_force);
        let phase_hint = self.phase;
        // A steady pass reuses full views remembered from earlier passes where nothing says
        // the cluster moved (`docs/controller.md`, "Steady-state passes"). Effects are only
        // ever decided on fresh views: a pass after one that acted reads every view, and a
        // decision to act taken on reused views is taken again on every view read now.
        let views = if self.acted {
            Views::Full
        } else {
            Views::Steady
        };
        let list = self
            .members
            .list()
            .await
            .map_err(ReconcileError::ListMembers)?;
        let (mut observation, read) = self.redis.observe_views(list, now_ms(), views).await;
        self.count_views(read);
        let mut memory = self.memory.clone();
        let mut losses = memory.observed(&observation);
        observation.history = memory.history(observation.now_ms);
        let mut decision = engine::decide(&desired, phase_hint, &observation);
        if read.reused > 0 && !decision.effects.is_empty() {
            tracing::debug!(cluster = %self.key.name, reused = read.reused, "deciding again on every view read now");
            memory = self.memory.clone();
            observation = observe(&self.members, &self.redis)
                .await
                .map_err(ReconcileError::ListMembers)?;
            self.count_views(redis_backend::ViewsRead {
                read: observation
                    .members
                    .values()
                    .filter(|m| m.redis.is_some())
                    .count(),
                ..Default::default()
            });
            losses = memory.observed(&observation);
            observation.history = memory.history(observation.now_ms);
            decision = engine::decide(&desired, phase_hint, &observation);
        }
        self.memory = memory;
        self.acted = !decision.effects.is_empty();
        for loss in &losses {
            tracing::error!(namespace = %self.key.namespace, cluster = %self.key.name, ordinal = loss.ordinal, keys = loss.keys, "{loss}");
        }
        let error = self
            .execute(&desired, &in_force, &observation, &decision.effects)
            .await
            .err();
        let message = error.as_ref().map(|e| e.cause.to_string());
        let times = self.memory.executed(
            error
                .as_ref()
                .zip(message.as_deref())
                .map(|(e, m)| (&e.effect, m)),
            observation.now_ms,
        );
        // The same failure pass after pass is logged at 1, 2, 4, 8, ... passes, not each time.
        if let Some(e) = &error {
            if times.is_power_of_two() {
                tracing::warn!(cluster = %self.key.name, effect = %e.effect, error = %e.cause, transient = e.transient, times, "effect failed; observing again");
            } else {
                tracing::debug!(cluster = %self.key.name, effect = %e.effect, error = %e.cause, times, "effect failed again");
            }
        }
        self.phase = decision.phase;
        let mut pass = Pass {
            observation,
            decision,
            desired,
            phase_hint,
            error,
            failures_in_a_row: times,
            losses,
            warnings,
            next_delay: Duration::ZERO,
            status: RedisClusterStatus::default(),
            events: Vec::new(),
        };
        pass.next_delay = next_delay(&pass);
        let name = self.key.name.clone();
        pass.status = status::project(
            &pass.decision,
            &pass.observation,
            self.status.as_ref(),
            self.generation,
            |ordinal| format!("{name}-{ordinal}"),
        );
        pass.events = status::transitions(self.status.as_ref(), &pass.status);
        self.status = Some(pass.status.clone());
        if let Some(directory) = &self.directory {
            directory.set_cluster(
                &self.key.namespace,
                &self.key.name,
                projection::node_entries(&pass.observation),
            );
        }
        self.publish_metrics(&pass, started.elapsed());
        if let Some((out, thinning)) = self.trace.as_mut() {
            let record = pass.trace_record();
            if thinning.keep(&record) {
                let line =
                    serde_json::to_string(&record).map_err(|e| ReconcileError::Trace(e.into()))?;
                writeln!(out, "{line}")
                    .and_then(|()| out.flush())
                    .map_err(ReconcileError::Trace)?;
            }
        }
        Ok(pass)
    }

    fn publish_metrics(&self, pass: &Pass<M::Error>, took: Duration) {
        let labels = self.key.labels();
        metrics::histogram!(telemetry::RECONCILE_DURATION, &labels).record(took.as_secs_f64());
        let outcome = if pass.error.is_some() {
            "effect_failed"
        } else {
            "ok"
        };
        let mut with_outcome = labels.to_vec();
        with_outcome.push(("outcome", outcome.to_string()));
        metrics::counter!(telemetry::RECONCILE_PASSES, &with_outcome).increment(1);
        metrics::gauge!(telemetry::CLUSTER_READY, &labels).set(bool_gauge(pass.is_ready()));
        for kind in ConditionKind::ALL {
            let mut with_type = labels.to_vec();
            with_type.push(("type", kind.as_str().to_string()));
            metrics::gauge!(telemetry::CLUSTER_CONDITION, &with_type)
                .set(bool_gauge(pass.decision.is_true(kind)));
        }
        for phase in Phase::ALL {
            let mut with_phase = labels.to_vec();
            with_phase.push(("phase", phase.as_str().to_string()));
            metrics::gauge!(telemetry::CLUSTER_PHASE, &with_phase)
                .set(bool_gauge(pass.decision.phase == phase));
        }
        let entries = projection::node_entries(&pass.observation);
        for role in ["master", "replica"] {
            let mut with_role = labels.to_vec();
            with_role.push(("role", role.to_string()));
            let count = entries.iter().filter(|e| e.role == role).count();
            metrics::gauge!(telemetry::CLUSTER_NODES, &with_role).set(count as f64);
        }
        if !pass.losses.is_empty() {
            metrics::counter!(telemetry::DATA_LOSSES, &labels).increment(pass.losses.len() as u64);
        }
    }

    fn count_views(&self, read: redis_backend::ViewsRead) {
        for (source, n) in [("read", read.read), ("reused", read.reused)] {
            let mut labels = self.key.labels().to_vec();
            labels.push(("source", source.to_string()));
            metrics::counter!(telemetry::VIEWS, &labels).increment(n as u64);
        }
    }

    fn count_effect(&self, effect: &Effect, ok: bool) {
        let mut labels = self.key.labels().to_vec();
        labels.push(("kind", effect.kind().to_string()));
        labels.push(("outcome", if ok { "ok" } else { "failed" }.to_string()));
        metrics::counter!(telemetry::EFFECTS, &labels).increment(1);
    }

    /// Runs `effects` in order; a run of consecutive `MigrateSlots` runs in parallel per
    /// (source, target) pair, a run of `CreateNode` starts its members together. The first
    /// failure stops the pass: the next observation shows where things stand.
    async fn execute(
        &self,
        desired: &Desired,
        spec: &RedisClusterSpec,
        observation: &Observation,
        effects: &[Effect],
    ) -> Result<(), EffectError<M::Error>> {
        let mut ctx = ExecContext::from_observation(observation);
        ctx.protect_targets = desired.replicas > 0;
        let mut i = 0;
        while let Some(effect) = effects.get(i) {
            if let Some(fence) = &self.fence
                && !fence()
            {
                return Err(EffectError {
                    effect: effect.clone(),
                    cause: EffectCause::Fenced,
                    transient: true,
                });
            }
            // The consecutive effects of the same kind as this one (run together for member
            // starts and migrations).
            let run_len = || {
                effects[i..]
                    .iter()
                    .take_while(|e| std::mem::discriminant(*e) == std::mem::discriminant(effect))
                    .count()
            };
            let result = match effect {
                Effect::CreateNode { .. } => {
                    // Members start independently: waiting for each to answer in turn would
                    // add one start-up time per node to the creation of a cluster.
                    let run_len = run_len();
                    let run = &effects[i..i + run_len];
                    let starts = run.iter().map(|e| async move {
                        let Effect::CreateNode { ordinal } = e else {
                            return Ok(());
                        };
                        tracing::info!(effect = %e, "starting node");
                        self.members
                            .ensure_running(*ordinal, spec)
                            .await
                            .map_err(|err| self.member_error(e, err))
                    });
                    let results = join_all(starts.collect()).await;
                    for (e, r) in run.iter().zip(&results) {
                        self.count_effect(e, r.is_ok());
                    }
                    i += run_len;
                    match results.into_iter().find_map(Result::err) {
                        Some(err) => return Err(err),
                        None => continue,
                    }
                }
                Effect::DeleteNode { ordinal } => {
                    tracing::info!(%effect, "removing node");
                    i += 1;
                    self.members
                        .delete(*ordinal)
                        .await
                        .map_err(|err| self.member_error(effect, err))
                }
                Effect::DeleteData { ordinal } => {
                    tracing::info!(%effect, "deleting a removed node's storage");
                    i += 1;
                    self.members
                        .delete_data(*ordinal)
                        .await
                        .map_err(|err| self.member_error(effect, err))
                }
                Effect::ReplaceNode { ordinal } => {
                    tracing::info!(%effect, "replacing node");
                    i += 1;
                    self.members
                        .replace(*ordinal, spec)
                        .await
                        .map_err(|err| self.member_error(effect, err))
                }
                // Runs the Redis adapter takes as one call: migrations run in parallel by
                // pair, and the open-slot repair's hundreds of `SETSLOT … NODE` and `STABLE`
                // commands go out as one pipeline per node (`execute_setslot_commands`).
                Effect::MigrateSlots { .. }
                | Effect::SetSlotOwner { .. }
                | Effect::SetSlotStable { .. } => {
                    let run = &effects[i..i + run_len()];
                    i += run.len();
                    let migrations = matches!(effect, Effect::MigrateSlots { .. });
                    log_run(
                        run,
                        if migrations {
                            "migrating"
                        } else {
                            "cluster command"
                        },
                    );
                    let result = if migrations {
                        self.redis.execute_parallel_migrations(run, &ctx).await
                    } else {
                        self.redis.execute_setslot_commands(run, &ctx).await
                    };
                    if let Some(e) = self.settle_run(run, result) {
                        return Err(e);
                    }
                    continue;
                }
                other => {
                    tracing::info!(effect = %other, "cluster command");
                    i += 1;
                    self.redis
                        .execute(other, &ctx)
                        .await
                        .map_err(|err| redis_error(other, err))
                }
            };
            self.count_effect(effect, result.is_ok());
            result?;
        }
        Ok(())
    }

    /// Counts every effect of a run the Redis adapter ran as one call; the failure, if any,
    /// names the run's first effect.
    fn settle_run(
        &self,
        run: &[Effect],
        result: Result<(), redis_backend::AdapterError>,
    ) -> Option<EffectError<M::Error>> {
        for e in run {
            self.count_effect(e, result.is_ok());
        }
        match (result, run.first()) {
            (Err(err), Some(first)) => Some(redis_error(first, err)),
            _ => None,
        }
    }

    fn member_error(&self, effect: &Effect, err: M::Error) -> EffectError<M::Error> {
        EffectError {
            effect: effect.clone(),
            transient: M::is_transient(&err),
            cause: EffectCause::Members(err),
        }
    }
}

/// One log line per effect of a run, before it runs (a long migration shows when it began).
fn log_run(run: &[Effect], what: &str) {
    for e in run {
        tracing::info!(effect = %e, "{what}");
    }
}

fn redis_error<E: std::error::Error + 'static>(
    effect: &Effect,
    err: redis_backend::AdapterError,
) -> EffectError<E> {
    EffectError {
        effect: effect.clone(),
        transient: err.is_transient(),
        cause: EffectCause::Redis(err),
    }
}

fn bool_gauge(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Observes the world once, deciding and executing nothing (status tables, `simulate record`).
pub async fn observe<M: Members>(
    members: &M,
    redis: &RedisAdapter,
) -> Result<Observation, M::Error> {
    let list = members.list().await?;
    Ok(redis.observe(list, now_ms()).await)
}

/// How long to wait before the next pass.
pub fn next_delay<E: std::error::Error + 'static>(pass: &Pass<E>) -> Duration {
    if pass.error.is_some() {
        // The engine backs off an effect that keeps failing; never retry faster than this.
        let ms = pass.decision.requeue_ms.unwrap_or(500).clamp(500, 30_000);
        return Duration::from_millis(ms);
    }
    if !pass.decision.effects.is_empty() {
        // A failover is an election under way: repeating `CLUSTER FAILOVER` before it ends
        // would restart it, so the engine's own delay is honoured.
        if pass
            .decision
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Failover { .. }))
        {
            return Duration::from_millis(pass.decision.requeue_ms.unwrap_or(1_000));
        }
        // Otherwise look again right away: the effects changed the world.
        return Duration::from_millis(100);
    }
    // Polling is cheap next to missing a crash for long: a few commands per node. While work
    // is under way, look often: every wait (gossip, a sync) ends at an unknown moment.
    let cap = if pass.is_ready() { 2_000 } else { 100 };
    Duration::from_millis(pass.decision.requeue_ms.unwrap_or(cap).min(cap))
}

/// Polls every future to completion concurrently (on the current task) and returns their
/// outputs in order. Small enough not to need a futures crate.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
