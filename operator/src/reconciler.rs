//! The reconcile loop shared by every backend: observe → `engine::decide` → execute, again.
//!
//! The loop knows two adapters: a [`Members`] provider (local processes now, Pods later) for
//! `CreateNode`/`DeleteNode`, and the Redis adapter for every cluster command. It never
//! decides anything itself; each pass's decision, observation and errors are handed to a
//! [`Reporter`] (CLI display, HTTP directory, status, traces).

use engine::history::{DataLoss, Memory};
use engine::trace::TraceRecord;
use engine::{Decision, Desired, Effect, Observation, Ordinal, Phase};
use redis_backend::{AdapterError, ExecContext, MemberInfo, RedisAdapter};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where members run. Implementations make `ensure_running` and `delete` idempotent.
pub trait Members {
    type Error: std::error::Error + Send + Sync + 'static;
    fn list(&self) -> impl Future<Output = Result<Vec<MemberInfo>, Self::Error>> + Send;
    fn ensure_running(
        &self,
        ordinal: Ordinal,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    fn delete(&self, ordinal: Ordinal) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// One pass of the loop, as it happened.
pub struct Pass {
    pub observation: Observation,
    pub decision: Decision,
    pub desired: Desired,
    pub phase_hint: Phase,
    /// The first effect that failed, if any (the rest of the list was not run).
    pub error: Option<String>,
    /// Masters this observation found back without their data (reported once each).
    pub losses: Vec<DataLoss>,
}

impl Pass {
    pub fn trace_record(&self) -> TraceRecord {
        TraceRecord {
            time: self.observation.now_ms,
            spec: self.desired.clone(),
            phase_hint: self.phase_hint,
            observation: self.observation.clone(),
            decision: self.decision.clone(),
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Observes the world once.
pub async fn observe<M: Members>(
    members: &M,
    redis: &RedisAdapter,
) -> Result<Observation, M::Error> {
    let list = members.list().await?;
    Ok(redis.observe(list, now_ms()).await)
}

/// Runs one pass: observe, decide, execute. Effects run in order; a run of consecutive
/// `MigrateSlots` runs in parallel per (source, target) pair. The first failure stops the
/// pass: the next observation shows where things stand.
///
/// `memory` carries what the engine must know of earlier passes (an effect failing again and
/// again, a master that came back empty); new data losses are returned in the pass.
pub async fn pass<M: Members>(
    members: &M,
    redis: &RedisAdapter,
    desired: &Desired,
    phase_hint: Phase,
    memory: &mut Memory,
) -> Result<Pass, M::Error> {
    let mut observation = observe(members, redis).await?;
    let losses = memory.observed(&observation);
    for loss in &losses {
        tracing::error!(ordinal = loss.ordinal, keys = loss.keys, "{loss}");
    }
    observation.history = memory.history(observation.now_ms);
    let decision = engine::decide(desired, phase_hint, &observation);
    let failed = execute(members, redis, desired, &observation, &decision.effects)
        .await
        .err();
    let times = memory.executed(
        failed.as_ref().map(|(e, msg)| (e, msg.as_str())),
        observation.now_ms,
    );
    // The same failure pass after pass is logged at 1, 2, 4, 8, ... passes, not each time.
    if let Some((effect, e)) = &failed {
        if times.is_power_of_two() {
            tracing::warn!(%effect, error = %e, times, "effect failed; observing again");
        } else {
            tracing::debug!(%effect, error = %e, times, "effect failed again");
        }
    }
    let error = failed.map(|(_, e)| e);
    Ok(Pass {
        observation,
        decision,
        desired: desired.clone(),
        phase_hint,
        error,
        losses,
    })
}

async fn execute<M: Members>(
    members: &M,
    redis: &RedisAdapter,
    desired: &Desired,
    observation: &Observation,
    effects: &[Effect],
) -> Result<(), (Effect, String)> {
    let mut ctx = ExecContext::from_observation(observation);
    ctx.protect_targets = desired.replicas > 0;
    let mut i = 0;
    while i < effects.len() {
        let effect = &effects[i];
        metrics::counter!("redis_operator_decided_effects_total", "kind" => effect.kind())
            .increment(1);
        match effect {
            Effect::CreateNode { .. } => {
                // Members start independently: waiting for each to answer in turn would add
                // one start-up time per node to the creation of a cluster.
                let run: Vec<&Effect> = effects[i..]
                    .iter()
                    .take_while(|e| matches!(e, Effect::CreateNode { .. }))
                    .collect();
                let starts = run.iter().map(|e| async move {
                    let Effect::CreateNode { ordinal } = e else {
                        return Ok(());
                    };
                    tracing::info!(effect = %e, "starting node");
                    members
                        .ensure_running(*ordinal)
                        .await
                        .map_err(|err| format!("{e}: {err}"))
                });
                let results = join_all(starts.collect()).await;
                i += run.len();
                if let Some(err) = results.into_iter().find_map(Result::err) {
                    return Err((effect.clone(), err));
                }
                continue;
            }
            Effect::DeleteNode { ordinal } => {
                tracing::info!(%effect, "removing node");
                members
                    .delete(*ordinal)
                    .await
                    .map_err(|e| (effect.clone(), format!("{effect}: {e}")))?;
            }
            Effect::MigrateSlots { .. } => {
                let run = effects[i..]
                    .iter()
                    .take_while(|e| matches!(e, Effect::MigrateSlots { .. }))
                    .count();
                for e in &effects[i..i + run] {
                    tracing::info!(effect = %e, "migrating");
                }
                redis
                    .execute_parallel_migrations(&effects[i..i + run], &ctx)
                    .await
                    .map_err(|e: AdapterError| (effect.clone(), format!("migration: {e}")))?;
                i += run;
                continue;
            }
            other => {
                tracing::info!(effect = %other, "cluster command");
                redis
                    .execute(other, &ctx)
                    .await
                    .map_err(|e| (other.clone(), format!("{other}: {e}")))?;
            }
        }
        i += 1;
    }
    Ok(())
}

/// How long to wait before the next pass.
pub fn next_delay(pass: &Pass) -> Duration {
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
    let cap = if pass.decision.is_true(engine::ConditionKind::Ready) {
        2_000
    } else {
        100
    };
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
