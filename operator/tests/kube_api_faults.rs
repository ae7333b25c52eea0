//! An API server in trouble: writes refused for a while are retried with a backoff and the
//! cluster still comes up, with no warning shown to anyone; a refusal only a person can fix
//! (a missing permission) is shown once, as one Warning event, however often it recurs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandboxed;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use sandboxed::{Env, eventually};
use serde_json::json;
use std::time::Duration;

fn manifest(name: &str, base: u16) -> String {
    format!(
        "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n  namespace: faults\nspec:\n  masters: 3\n  replicas: 0\n  basePort: {base}\n"
    )
}

fn api_warnings(events: &[(String, String, String)]) -> Vec<&(String, String, String)> {
    events
        .iter()
        .filter(|e| e.0 == "Warning" && e.1 == "KubernetesApiError")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refused_for_a_while_are_retried_with_backoff_and_the_cluster_still_comes_up() {
    let env = Env::start("apifaults", 3).await;
    let Some(sandbox) = env.sandbox_for("injecting API faults") else {
        return;
    };
    let operator = env.operator(&["--no-leader-election"]);
    // The operator's first three writes of the cluster's Service get 409 Conflict.
    sandbox.faults().inject_conflicts("services", 3);
    env.apply(&manifest("shaky", 13500)).await;
    env.wait_condition("faults", "shaky", "Ready", "True", 180)
        .await;
    let log = operator.log_text();
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reconcile failed; trying again"))
        .collect();
    assert_eq!(retries.len(), 3, "one retry per refused write:\n{log}");
    for (i, line) in retries.iter().enumerate() {
        let failures = format!("failures={}", i + 1);
        let wait = format!("retry_in_s={}", 1u64 << i);
        assert!(
            line.contains(&failures) && line.contains(&wait),
            "the wait doubles: {line}"
        );
    }
    let events = env.events("faults", "shaky").await;
    assert!(
        api_warnings(&events).is_empty(),
        "a transient refusal is nobody's business: {events:?}"
    );

    // The API server down for 3 s: the ready cluster stays as it is and the operator keeps
    // serving; the next edit after the outage is acted on.
    sandbox.faults().api_down_for(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.patch_spec("faults", "shaky", json!({"masters": 4}))
        .await;
    env.wait_shape("faults", "shaky", 4, 4, 180).await;
    assert_eq!(operator.get("/readyz").map(|r| r.0), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_only_a_person_can_fix_is_shown_once_however_often_it_recurs() {
    let env = Env::start("apiforbidden", 3).await;
    let Some(sandbox) = env.sandbox_for("service-account tokens of the sandbox") else {
        return;
    };
    env.namespace("faults").await;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "narrow"}})).unwrap();
    Api::<ServiceAccount>::namespaced(env.client.clone(), "faults")
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    // Everything the operator reads, and events; but no write of RedisClusters, so the
    // finalizer can never be added.
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "narrow-operator"},
        "rules": [
            {"apiGroups": ["redis.redis"], "resources": ["redisclusters"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
        ]
    }))
    .unwrap();
    Api::<ClusterRole>::all(env.client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "narrow-operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "narrow-operator"},
        "subjects": [{"kind": "ServiceAccount", "name": "narrow", "namespace": "faults"}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(env.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let kubeconfig = env.dir.join("narrow.kubeconfig");
    let token = sandbox.service_account_token("faults", "narrow");
    std::fs::write(&kubeconfig, sandbox.kubeconfig_yaml_with_token(&token)).unwrap();
    let operator = env.operator_as(&kubeconfig, &["--no-leader-election"]);

    env.apply(&manifest("locked", 13600)).await;
    let first = eventually(60, "a Warning event about the refused write", || async {
        let events = env.events("faults", "locked").await;
        let warnings: Vec<(String, String, String)> =
            api_warnings(&events).into_iter().cloned().collect();
        (!warnings.is_empty()).then_some(warnings)
    })
    .await;
    assert!(
        first[0].2.contains("finalizer") && first[0].2.contains("forbidden"),
        "the note says what was refused: {first:?}"
    );
    // Three edits, three more reconciles, three more refusals: still one event.
    let clusters = env.clusters("faults");
    for i in 0..3 {
        let patch = json!({"metadata": {"annotations": {"poke": i.to_string()}}});
        clusters
            .patch("locked", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let log = eventually(30, "the operator met the refusal again", || async {
        let log = operator.log_text();
        // Two edits may reach the operator as one change.
        (log.matches("reconcile failed again, as reported").count() >= 2).then_some(log)
    })
    .await;
    // Published once (through either events API), not repeated into a series either.
    let published: Vec<Event> = Api::<Event>::namespaced(env.client.clone(), "faults")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("KubernetesApiError"))
        .collect();
    assert_eq!(published.len(), 1, "{published:?}\n{log}");
    assert!(
        published[0].series.is_none() && published[0].deprecated_count.unwrap_or(1) <= 1,
        "{published:?}"
    );
    assert!(
        env.pods("faults", "locked").await.is_empty(),
        "nothing was created without the finalizer"
    );
}
