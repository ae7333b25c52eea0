//! The `RedisCluster` status and events a pass projects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use controller::status::{EventType, project, transitions};
use engine::{Addr, Condition, ConditionKind, Decision, MemberInfo, NodeState, Observation, Phase};
use std::collections::BTreeMap;

fn decision(phase: Phase, degraded: Option<&str>, summary: &str) -> Decision {
    let cond = |kind, status: bool, reason: &str, message: &str| Condition {
        kind,
        status,
        reason: reason.into(),
        message: message.into(),
    };
    Decision {
        phase,
        effects: Vec::new(),
        conditions: vec![
            cond(
                ConditionKind::Ready,
                phase == Phase::Ready,
                "Ready",
                summary,
            ),
            cond(
                ConditionKind::Progressing,
                phase != Phase::Ready,
                "Working",
                summary,
            ),
            match degraded {
                Some(m) => cond(ConditionKind::Degraded, true, "MasterDown", m),
                None => cond(ConditionKind::Degraded, false, "Healthy", ""),
            },
            cond(ConditionKind::Invalid, false, "Valid", ""),
        ],
        requeue_ms: None,
        summary: summary.into(),
    }
}

fn at(ms: u64) -> Observation {
    Observation {
        now_ms: ms,
        ..Observation::default()
    }
}

fn transition_time(s: &spec::RedisClusterStatus, kind: &str) -> i64 {
    s.conditions
        .iter()
        .find(|c| c.type_ == kind)
        .unwrap()
        .last_transition_time
        .0
        .as_millisecond()
}

#[test]
fn a_conditions_transition_time_moves_only_when_its_status_changes() {
    let first = project(
        &decision(Phase::ScalingOut, None, "moving 10 slots"),
        &at(1_000),
        None,
        Some(3),
        |o| format!("c-{o}"),
    );
    let second = project(
        &decision(Phase::ScalingOut, None, "moving 4 slots"),
        &at(5_000),
        Some(&first),
        Some(3),
        |o| format!("c-{o}"),
    );
    assert_eq!(
        transition_time(&second, "Progressing"),
        1_000,
        "message changed, status did not"
    );
    assert_eq!(
        second
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap()
            .message,
        "moving 4 slots"
    );
    let third = project(
        &decision(Phase::Ready, None, "ready"),
        &at(9_000),
        Some(&second),
        Some(3),
        |o| format!("c-{o}"),
    );
    assert_eq!(transition_time(&third, "Progressing"), 9_000);
    assert_eq!(transition_time(&third, "Ready"), 9_000);
    assert_eq!(transition_time(&third, "Degraded"), 1_000);
    assert_eq!(third.observed_generation, Some(3));
    assert_eq!(third.phase.as_deref(), Some("Ready"));
}

#[test]
fn events_are_one_per_change_and_none_when_nothing_changed() {
    let name = |o| format!("c-{o}");
    let first = project(
        &decision(Phase::ScalingOut, None, "moving"),
        &at(1),
        None,
        None,
        name,
    );
    let created = transitions(None, &first);
    // On creation: Progressing True and the phase; "not degraded" is no news.
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(created.iter().all(|t| t.kind == EventType::Normal));

    let again = project(
        &decision(Phase::ScalingOut, None, "moving more"),
        &at(2),
        Some(&first),
        None,
        name,
    );
    assert!(transitions(Some(&first), &again).is_empty());

    let down = project(
        &decision(Phase::Recovering, Some("master #2 is down"), "recovering"),
        &at(3),
        Some(&again),
        None,
        name,
    );
    let events = transitions(Some(&again), &down);
    let warning = events
        .iter()
        .find(|t| t.kind == EventType::Warning)
        .expect("a warning");
    assert_eq!(warning.reason, "MasterDown");
    assert!(
        warning.note.contains("master #2 is down"),
        "{}",
        warning.note
    );
    assert!(events.iter().any(|t| t.reason == "PhaseRecovering"));
}

#[test]
fn nodes_are_listed_with_their_member_name_role_and_slots() {
    let text = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8191\n\
                bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 127.0.0.1:7001@17001 master - 0 0 2 connected 8192-16383\n";
    let nodes = engine::parse::parse_cluster_nodes(text).unwrap();
    let state = NodeState {
        id: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        nodes: nodes.into(),
        cluster_ok: true,
        current_epoch: 2,
        repl_offset: 0,
        master_link_up: false,
        keys: 0,
        open_slot_keys: BTreeMap::new(),
        ever_linked: true,
        serves_replicas: true,
        replicates_from: None,
        hands_over_source_first: false,
        replid: None,
        config: Default::default(),
    };
    let mut obs = at(1);
    obs.members.insert(
        0,
        MemberInfo::new(0, Some(Addr::new("127.0.0.1", 7000)), true).observed(Some(state)),
    );
    obs.members
        .insert(1, MemberInfo::new(1, None, false).observed(None));
    let s = project(
        &decision(Phase::Ready, None, "ready"),
        &obs,
        None,
        None,
        |o| format!("c-{o}"),
    );
    assert_eq!(
        s.nodes.len(),
        1,
        "a member that did not answer is not listed"
    );
    let n = &s.nodes[0];
    assert_eq!(
        (n.name.as_str(), n.role.as_str(), n.slots.as_str(), n.port),
        ("c-0", "master", "0-8191", 7000)
    );
}
