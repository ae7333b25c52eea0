//! `simulate record`: what the engine would decide about a running cluster, written as a
//! trace, with nothing executed. One definition for every backend (local processes, Pods):
//! a backend only says where the members run and which spec is in force.

use crate::desired::desired_from;
use crate::members::Members;
use crate::reconciler::observe;
use engine::Phase;
use engine::history::Memory;
use engine::trace::TraceRecord;
use redis_backend::RedisAdapter;
use spec::RedisClusterSpec;

/// Observes one cluster again and again and decides, never acting: safe beside the operator
/// that runs the cluster. Each record is what a pass of the [`crate::Reconciler`] would have
/// been given and would have decided at that moment.
pub struct Recorder<M: Members> {
    members: M,
    redis: RedisAdapter,
    phase: Phase,
    /// The same memory a reconciler keeps (masters that came back empty), so a decision
    /// that depends on it is recorded as the operator would make it.
    memory: Memory,
}

impl<M: Members> Recorder<M> {
    pub fn new(members: M, redis: RedisAdapter) -> Self {
        Self {
            members,
            redis,
            phase: Phase::Pending,
            memory: Memory::default(),
        }
    }

    /// Talks to the nodes through `redis` from now on (the password changed).
    pub fn set_redis(&mut self, redis: RedisAdapter) {
        self.redis = redis;
    }

    /// One observation of the cluster towards `spec`, and the decision the engine makes for
    /// it. `backend_problems` are what the backend's own checks found (a missing password
    /// Secret): as in a reconcile pass, they make the spec invalid for the engine.
    pub async fn sample(
        &mut self,
        spec: &RedisClusterSpec,
        backend_problems: &[String],
    ) -> Result<TraceRecord, M::Error> {
        let mut desired = desired_from(spec, None);
        desired.problems.extend(backend_problems.iter().cloned());
        desired.fingerprint = self.members.fingerprint(spec);
        let mut observation = observe(&self.members, &self.redis).await?;
        self.memory.observed(&observation);
        observation.history = self.memory.history(observation.now_ms);
        let decision = engine::decide(&desired, self.phase, &observation);
        let record = TraceRecord {
            time: observation.now_ms,
            spec: desired,
            phase_hint: self.phase,
            observation,
            decision,
        };
        self.phase = record.decision.phase;
        Ok(record)
    }
}
