//! What the engine does with the shell's memory: effects that keep failing, data lost.
#![allow(clippy::unwrap_used)]

mod fixture;

use fixture::*;
use redis_operator_engine::history::{DataLoss, EffectFailure};
use redis_operator_engine::model::OpenSlot;
use redis_operator_engine::slots::SlotRange;
use redis_operator_engine::*;

#[test]
fn an_effect_that_keeps_failing_is_named_in_degraded_and_tried_less_and_less_often() {
    let mut nodes = healthy(3, 0);
    nodes[2].open = vec![OpenSlot::Importing {
        slot: 5,
        source: id(0),
    }];
    nodes[2].open_keys.insert(5, 4);
    let mut obs = observe(&nodes, false, 100_000);
    let first = decide(&Desired::new(3, 0), Phase::Recovering, &obs);
    assert!(!first.is_true(ConditionKind::Degraded));
    let effect = first.effects[0].clone();

    let mut requeues = Vec::new();
    for times in [2, 3, 4, 5] {
        obs.history.failure = Some(EffectFailure {
            effect: effect.clone(),
            error: "refused MIGRATE: CLUSTERDOWN The cluster is down".into(),
            times,
            since_ms: 40_000,
        });
        let d = decide(&Desired::new(3, 0), Phase::Recovering, &obs);
        assert_eq!(d.effects, first.effects, "the same repair is still the way");
        let degraded = d.condition(ConditionKind::Degraded).unwrap();
        assert_eq!(degraded.status, times >= 3, "after {times} failures");
        if times >= 3 {
            assert!(
                degraded.message.contains(&effect.to_string()),
                "{}",
                degraded.message
            );
            assert!(degraded.message.contains("CLUSTERDOWN"));
            assert!(degraded.message.contains("1970-01-01T00:00:40Z"));
        }
        requeues.push(d.requeue_ms.unwrap());
    }
    assert_eq!(requeues, vec![500, 1_000, 2_000, 4_000]);
}

#[test]
fn a_failure_of_an_effect_no_longer_decided_is_not_reported() {
    let mut obs = observe(&healthy(3, 0), false, 100_000);
    obs.history.failure = Some(EffectFailure {
        effect: Effect::SetSlotStable { on: 1, slot: 9 },
        error: "gone".into(),
        times: 9,
        since_ms: 0,
    });
    let d = decide(&Desired::new(3, 0), Phase::Ready, &obs);
    assert!(d.is_true(ConditionKind::Ready));
    assert!(!d.is_true(ConditionKind::Degraded));
}

#[test]
fn a_master_that_came_back_empty_is_reported_without_holding_back_ready() {
    let mut obs = observe(&healthy(3, 0), false, 100_000);
    obs.history.losses.push(DataLoss {
        ordinal: 1,
        node_id: id(1),
        slots: vec![SlotRange::new(5461, 10922)],
        keys: 10_143,
        at_ms: 90_000,
    });
    let d = decide(&Desired::new(3, 0), Phase::Ready, &obs);
    assert!(d.is_true(ConditionKind::Ready));
    let degraded = d.condition(ConditionKind::Degraded).unwrap();
    assert!(degraded.status);
    assert_eq!(degraded.reason, "DataLost");
    assert!(
        degraded.message.contains("10143 keys"),
        "{}",
        degraded.message
    );
    assert!(
        degraded.message.contains("5461-10922"),
        "{}",
        degraded.message
    );
}
