//! What a pass shows on the `RedisCluster` object: its status (phase, conditions, nodes,
//! observed generation) and the events worth recording — one per change, never one per pass.
//!
//! Pure: the time is the observation's, so a replayed trace projects the same status.

use crate::projection;
use engine::{ConditionKind, Decision, Observation, Ordinal};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use spec::{NodeStatus, RedisClusterStatus};

/// Whether an event reports progress or something a person should look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One change between two statuses, as an event: `reason` is CamelCase, `note` one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: EventType,
    pub reason: String,
    pub note: String,
}

/// The status a decision shows. A condition keeps its `lastTransitionTime` from `previous`
/// while its status stays the same (reason and message may change under it); `name_of` names
/// a member (`NAME-<ordinal>` for a Pod).
pub fn project(
    decision: &Decision,
    observation: &Observation,
    previous: Option<&RedisClusterStatus>,
    generation: Option<i64>,
    name_of: impl Fn(Ordinal) -> String,
) -> RedisClusterStatus {
    let now = Time(
        k8s_openapi::jiff::Timestamp::from_millisecond(
            i64::try_from(observation.now_ms).unwrap_or(i64::MAX),
        )
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    );
    let conditions = ConditionKind::ALL
        .iter()
        .filter_map(|kind| decision.condition(*kind))
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let kept = previous
                .and_then(|p| p.conditions.iter().find(|o| o.type_ == c.kind.as_str()))
                .filter(|o| o.status == status)
                .map(|o| o.last_transition_time.clone());
            Condition {
                type_: c.kind.as_str().to_string(),
                status: status.to_string(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time: kept.unwrap_or_else(|| now.clone()),
            }
        })
        .collect();
    let nodes = observation
        .members
        .iter()
        .filter_map(|(ordinal, m)| {
            let me = m.redis.as_ref()?.myself()?;
            let addr = m.addr.as_ref()?;
            Some(NodeStatus {
                name: name_of(*ordinal),
                node_id: me.id.clone(),
                role: projection::role(me).to_string(),
                master_id: me.master_id.clone(),
                ip: addr.ip.clone(),
                port: u32::from(addr.port),
                slots: engine::slots::format_ranges(&me.slots),
            })
        })
        .collect();
    RedisClusterStatus {
        phase: Some(decision.phase.to_string()),
        conditions,
        nodes,
        observed_generation: generation,
        message: Some(decision.summary.clone()),
    }
}

/// The events between two statuses: a condition that changed status (Degraded or Invalid
/// turning true is a Warning, everything else Normal), and a new phase. Nothing when nothing
/// changed, however many passes ran.
pub fn transitions(
    previous: Option<&RedisClusterStatus>,
    next: &RedisClusterStatus,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for c in &next.conditions {
        let before = previous
            .and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_))
            .map(|o| o.status.as_str());
        if before == Some(c.status.as_str()) {
            continue;
        }
        let bad = c.status == "True" && (c.type_ == "Degraded" || c.type_ == "Invalid");
        // A condition seen for the first time only matters when it says something is wrong
        // or that the cluster is ready: "not degraded" on creation is no news.
        if before.is_none() && c.status == "False" {
            continue;
        }
        out.push(Transition {
            kind: if bad {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: if c.reason.is_empty() {
                format!("{}{}", c.type_, c.status)
            } else {
                c.reason.clone()
            },
            note: format!("{} is {}: {}", c.type_, c.status, c.message),
        });
    }
    let old_phase = previous.and_then(|p| p.phase.as_deref());
    if let Some(phase) = next.phase.as_deref()
        && old_phase != Some(phase)
    {
        out.push(Transition {
            kind: EventType::Normal,
            reason: format!("Phase{phase}"),
            note: format!(
                "phase {} -> {phase}: {}",
                old_phase.unwrap_or("none"),
                next.message.as_deref().unwrap_or("")
            ),
        });
    }
    out
}

/// What a pass has to tell people beyond status changes, once each: warnings about a spec
/// seen valid for the first time, masters found back without their data, and an effect that
/// failed (on its first failure only, not on every retry).
pub fn pass_notices<E: std::error::Error + 'static>(pass: &crate::Pass<E>) -> Vec<Transition> {
    let mut out: Vec<Transition> = pass
        .warnings
        .iter()
        .map(|w| Transition {
            kind: EventType::Warning,
            reason: "SpecWarning".to_string(),
            note: w.clone(),
        })
        .collect();
    out.extend(pass.losses.iter().map(|loss| Transition {
        kind: EventType::Warning,
        reason: "DataLost".to_string(),
        note: loss.to_string(),
    }));
    if let Some(e) = &pass.error
        && pass.failures_in_a_row == 1
    {
        out.push(Transition {
            kind: EventType::Warning,
            reason: "EffectFailed".to_string(),
            note: format!(
                "{e} ({})",
                if e.transient {
                    "retrying"
                } else {
                    "will keep failing until someone fixes the cause"
                }
            ),
        });
    }
    out
}
