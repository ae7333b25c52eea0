//! The reconcile loop shared by every backend: observe → `engine::decide` → execute, again.
//!
//! The loop knows two adapters: a [`Members`] provider (local processes now, Pods later) for
//! `CreateNode`/`DeleteNode`, and the Redis adapter for every cluster command. It never
//! decides anything itself; each pass's decision, observation and errors are handed to a
//! [`Reporter`] (CLI display, HTTP directory, status, traces).

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
pub async fn pass<M: Members>(
    members: &M,
    redis: &RedisAdapter,
    desired: &Desired,
    phase_hint: Phase,
) -> Result<Pass, M::Error> {
    let observation = observe(members, redis).await?;
    let decision = engine::decide(desired, phase_hint, &observation);
    let error = execute(members, redis, &observation, &decision.effects)
        .await
        .err();
    if let Some(e) = &error {
        tracing::warn!(error = %e, "effect failed; observing again");
    }
    Ok(Pass {
        observation,
        decision,
        desired: desired.clone(),
        phase_hint,
        error,
    })
}

async fn execute<M: Members>(
    members: &M,
    redis: &RedisAdapter,
    observation: &Observation,
    effects: &[Effect],
) -> Result<(), String> {
    let ctx = ExecContext::from_observation(observation);
    let mut i = 0;
    while i < effects.len() {
        let effect = &effects[i];
        metrics::counter!("redis_operator_decided_effects_total", "kind" => effect.kind())
            .increment(1);
        match effect {
            Effect::CreateNode { ordinal } => {
                tracing::info!(%effect, "starting node");
                members
                    .ensure_running(*ordinal)
                    .await
                    .map_err(|e| format!("{effect}: {e}"))?;
            }
            Effect::DeleteNode { ordinal } => {
                tracing::info!(%effect, "removing node");
                members
                    .delete(*ordinal)
                    .await
                    .map_err(|e| format!("{effect}: {e}"))?;
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
                    .map_err(|e: AdapterError| format!("migration: {e}"))?;
                i += run;
                continue;
            }
            other => {
                tracing::info!(effect = %other, "cluster command");
                redis
                    .execute(other, &ctx)
                    .await
                    .map_err(|e| format!("{other}: {e}"))?;
            }
        }
        i += 1;
    }
    Ok(())
}

/// How long to wait before the next pass.
pub fn next_delay(pass: &Pass) -> Duration {
    if pass.error.is_some() {
        return Duration::from_millis(500);
    }
    if !pass.decision.effects.is_empty() {
        // Look again right away: the effects changed the world.
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
