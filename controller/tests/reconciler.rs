//! The reconcile core without Redis: a member provider that records what it is asked and
//! fails on demand, and a local metrics recorder to read what a pass published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use controller::{ClusterKey, EffectCause, Members, ReconcileError, Reconciler};
use engine::{ConditionKind, Effect, MemberInfo, Ordinal};
use metrics_exporter_prometheus::PrometheusBuilder;
use redis_backend::{AdapterConfig, RedisAdapter};
use spec::RedisClusterSpec;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("no room for member #{0}")]
    NoRoom(Ordinal),
    #[error("the API server is not answering")]
    Unavailable,
}

/// Members that never run: `ensure_running` fails for ordinals in `refuse`, `list` fails
/// while `down` is set.
#[derive(Default, Clone)]
struct Fake {
    started: Arc<Mutex<Vec<Ordinal>>>,
    /// The fingerprint of the spec each start was given.
    started_with: Arc<Mutex<Vec<Option<String>>>>,
    refuse: Vec<Ordinal>,
    down: bool,
}

impl Members for Fake {
    type Error = FakeError;

    fn is_transient(error: &FakeError) -> bool {
        matches!(error, FakeError::Unavailable)
    }

    async fn list(&self) -> Result<Vec<MemberInfo>, FakeError> {
        if self.down {
            return Err(FakeError::Unavailable);
        }
        Ok(Vec::new())
    }

    fn fingerprint(&self, spec: &RedisClusterSpec) -> Option<String> {
        Some(format!("{:?}", spec.redis_config))
    }

    async fn ensure_running(
        &self,
        ordinal: Ordinal,
        spec: &RedisClusterSpec,
    ) -> Result<(), FakeError> {
        self.started.lock().unwrap().push(ordinal);
        self.started_with
            .lock()
            .unwrap()
            .push(self.fingerprint(spec));
        if self.refuse.contains(&ordinal) {
            Err(FakeError::NoRoom(ordinal))
        } else {
            Ok(())
        }
    }

    async fn replace(&self, _: Ordinal, _: &RedisClusterSpec) -> Result<(), FakeError> {
        Ok(())
    }

    async fn delete(&self, _: Ordinal) -> Result<(), FakeError> {
        Ok(())
    }

    async fn delete_data(&self, _: Ordinal) -> Result<(), FakeError> {
        Ok(())
    }
}

fn spec(yaml_spec: &str) -> RedisClusterSpec {
    let text = format!(
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: c\nspec:\n{yaml_spec}"
    );
    spec::parse_manifest(&text).unwrap().spec
}

fn reconciler(name: &str, members: Fake) -> Reconciler<Fake> {
    Reconciler::new(
        ClusterKey::new("ns", name),
        members,
        RedisAdapter::new(AdapterConfig::default()),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn members_of_a_new_cluster_are_started_together_and_the_pass_is_reported() {
    let fake = Fake::default();
    let mut r = reconciler("a", fake.clone());
    let pass = runtime()
        .block_on(r.reconcile(&spec("  masters: 3\n  replicas: 1\n")))
        .unwrap();
    assert!(pass.error.is_none());
    let mut started = fake.started.lock().unwrap().clone();
    started.sort_unstable();
    assert_eq!(started, (0..6).collect::<Vec<_>>());
    assert!(
        pass.decision
            .effects
            .iter()
            .all(|e| matches!(e, Effect::CreateNode { .. }))
    );
    assert!(!pass.is_ready());
    assert_eq!(r.phase(), pass.decision.phase);
    assert_eq!(r.last_valid_spec().map(|s| s.masters), Some(3));
}

#[test]
fn a_refused_start_names_the_effect_and_says_it_will_not_pass_by_retrying() {
    let fake = Fake {
        refuse: vec![1],
        ..Fake::default()
    };
    let mut r = reconciler("b", fake);
    let pass = runtime()
        .block_on(r.reconcile(&spec("  masters: 3\n  replicas: 0\n")))
        .unwrap();
    let error = pass.error.expect("the start of #1 failed");
    assert_eq!(error.effect, Effect::CreateNode { ordinal: 1 });
    assert!(matches!(
        error.cause,
        EffectCause::Members(FakeError::NoRoom(1))
    ));
    assert!(!error.transient);
    assert_eq!(error.to_string(), "create node #1: no room for member #1");
    assert!(pass.next_delay >= std::time::Duration::from_millis(500));
}

#[test]
fn an_invalid_spec_changes_nothing_and_the_last_valid_one_is_kept() {
    let fake = Fake::default();
    let mut r = reconciler("c", fake.clone());
    let rt = runtime();
    rt.block_on(r.reconcile(&spec("  masters: 3\n  replicas: 1\n")))
        .unwrap();
    fake.started.lock().unwrap().clear();
    // Scaling below 3 masters is refused by validation.
    let pass = rt
        .block_on(r.reconcile(&spec("  masters: 1\n  replicas: 1\n")))
        .unwrap();
    assert!(pass.decision.is_true(ConditionKind::Invalid));
    assert!(pass.decision.effects.is_empty());
    assert!(fake.started.lock().unwrap().is_empty());
    assert_eq!(r.last_valid_spec().map(|s| s.masters), Some(3));
}

#[test]
fn members_start_with_the_last_valid_spec_whose_fingerprint_the_engine_is_given() {
    let fake = Fake::default();
    let mut r = reconciler("e", fake.clone());
    let rt = runtime();
    let valid = spec("  masters: 3\n  replicas: 0\n  redisConfig:\n    databases: \"4\"\n");
    let want = fake.fingerprint(&valid);
    let pass = rt.block_on(r.reconcile(&valid)).unwrap();
    assert_eq!(pass.desired.fingerprint, want);
    assert_eq!(*fake.started_with.lock().unwrap(), vec![want.clone(); 3]);
    // An invalid edit, restart-only setting included, changes neither.
    let invalid = spec("  masters: 1\n  replicas: 0\n  redisConfig:\n    databases: \"8\"\n");
    let pass = rt.block_on(r.reconcile(&invalid)).unwrap();
    assert!(pass.decision.is_true(ConditionKind::Invalid));
    assert_eq!(pass.desired.fingerprint, want);
}

#[test]
fn a_provider_that_cannot_list_fails_the_pass_before_anything_is_decided() {
    let fake = Fake {
        down: true,
        ..Fake::default()
    };
    let mut r = reconciler("d", fake.clone());
    let result = runtime().block_on(r.reconcile(&spec("  masters: 3\n")));
    assert!(matches!(
        result,
        Err(ReconcileError::ListMembers(FakeError::Unavailable))
    ));
    assert!(fake.started.lock().unwrap().is_empty());
}

#[test]
fn each_cluster_publishes_its_own_series_with_help_text() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    controller::telemetry::describe();
    let rt = runtime();
    for (name, refuse) in [("one", vec![]), ("two", vec![0])] {
        let mut r = reconciler(
            name,
            Fake {
                refuse,
                ..Fake::default()
            },
        );
        rt.block_on(r.reconcile(&spec("  masters: 3\n  replicas: 0\n")))
            .unwrap();
    }
    let text = handle.render();
    for line in [
        r#"redis_operator_cluster_ready{namespace="ns",cluster="one"} 0"#,
        r#"redis_operator_cluster_ready{namespace="ns",cluster="two"} 0"#,
        r#"redis_operator_effects_total{namespace="ns",cluster="one",kind="create_node",outcome="ok"} 3"#,
        r#"redis_operator_effects_total{namespace="ns",cluster="two",kind="create_node",outcome="failed"} 1"#,
        r#"redis_operator_reconcile_passes_total{namespace="ns",cluster="two",outcome="effect_failed"} 1"#,
        r#"redis_operator_cluster_condition{namespace="ns",cluster="one",type="Progressing"} 1"#,
        "# HELP redis_operator_cluster_ready",
        "# HELP redis_operator_reconcile_duration_seconds",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn a_recorder_decides_what_a_pass_would_and_executes_none_of_it() {
    let fake = Fake::default();
    let mut recorder = controller::recording::Recorder::new(
        fake.clone(),
        RedisAdapter::new(AdapterConfig::default()),
    );
    let s = spec("  masters: 3\n  replicas: 1\n");
    let rt = runtime();
    let first = rt.block_on(recorder.sample(&s, &[])).unwrap();
    let missing = "spec.passwordSecret: Secret ns/auth does not exist".to_string();
    let second = rt
        .block_on(recorder.sample(&s, std::slice::from_ref(&missing)))
        .unwrap();
    assert!(
        fake.started.lock().unwrap().is_empty(),
        "a recorder started a member"
    );
    let pass = rt
        .block_on(reconciler("same", Fake::default()).reconcile(&s))
        .unwrap();
    assert_eq!(first.spec, pass.desired, "the spec a pass is given");
    assert_eq!(first.decision.phase, pass.decision.phase);
    assert_eq!(first.decision.effects, pass.decision.effects);
    assert!(!first.decision.effects.is_empty());
    // The next sample is hinted with the phase decided before, as the next pass would be, and
    // a backend's problem makes the spec invalid for the engine.
    assert_eq!(second.phase_hint, first.decision.phase);
    assert!(second.spec.problems.contains(&missing));
    assert!(second.decision.effects.is_empty());
}
