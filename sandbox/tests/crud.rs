//! Create, get, update, delete through the real kube-rs client: identity, 409s, generation,
//! status, discovery, events, leases.
#![allow(clippy::unwrap_used)]

mod common;

use common::{api_error, config_map, deployment, pod, start};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use serde_json::json;

#[tokio::test]
async fn a_created_object_gets_uid_creation_time_generation_and_resource_version() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = api
        .create(&PostParams::default(), &config_map("a", &[("k", "v")]))
        .await
        .unwrap();
    let meta = &cm.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let rv: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(rv > 0);
    let got = api.get("a").await.unwrap();
    assert_eq!(got.metadata.uid, meta.uid);
    assert_eq!(got.data.unwrap()["k"], "v");
}

#[tokio::test]
async fn creating_an_existing_name_is_refused_with_409_already_exists() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("dup", &[]))
        .await
        .unwrap();
    let result = api
        .create(&PostParams::default(), &config_map("dup", &[]))
        .await;
    assert_eq!(api_error(result), (409, "AlreadyExists".into()));
}

#[tokio::test]
async fn generate_name_gives_each_object_its_own_suffix() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            generate_name: Some("gen-".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = api.create(&PostParams::default(), &cm).await.unwrap();
    let b = api.create(&PostParams::default(), &cm).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn a_stale_resource_version_is_refused_with_409() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let first = api
        .create(&PostParams::default(), &config_map("c", &[("n", "1")]))
        .await
        .unwrap();
    let mut fresh = first.clone();
    fresh.data = Some([("n".to_string(), "2".to_string())].into());
    let updated = api
        .replace("c", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        first.metadata.resource_version
    );
    let mut stale = first;
    stale.data = Some([("n".to_string(), "3".to_string())].into());
    let result = api.replace("c", &PostParams::default(), &stale).await;
    assert_eq!(api_error(result), (409, "Conflict".into()));
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["n"], "2");
}

#[tokio::test]
async fn resource_versions_increase_across_kinds_and_lists_report_the_latest() {
    let (_sb, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);
    let a = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let p = pods
        .create(&PostParams::default(), &pod("p", &[]))
        .await
        .unwrap();
    let b = cms
        .create(&PostParams::default(), &config_map("b", &[]))
        .await
        .unwrap();
    let rv = |m: &ObjectMeta| {
        m.resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&a.metadata) < rv(&p.metadata) && rv(&p.metadata) < rv(&b.metadata));
    let list = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        rv(&b.metadata)
    );
}

#[tokio::test]
async fn getting_a_missing_object_is_404_with_a_kubernetes_status() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let err = api.get("nope").await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
            assert_eq!(status.message, "configmaps \"nope\" not found");
            assert!(status.is_not_found());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_404() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "missing");
    let result = api
        .create(&PostParams::default(), &config_map("c", &[]))
        .await;
    assert_eq!(api_error(result).0, 404);
}

#[tokio::test]
async fn an_invalid_name_is_refused_with_422_invalid() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let result = api
        .create(&PostParams::default(), &config_map("Not_Valid", &[]))
        .await;
    assert_eq!(api_error(result), (422, "Invalid".into()));
}

#[tokio::test]
async fn generation_moves_only_when_the_spec_changes() {
    let (_sb, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &deployment("d", 1))
        .await
        .unwrap();
    let pp = PatchParams::default();
    let labelled = api
        .patch(
            "d",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"extra": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    let scaled = api
        .patch("d", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let status = api
        .patch_status("d", &pp, &Patch::Merge(json!({"status": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(status.metadata.generation, Some(2));
    let same = api
        .patch("d", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(same.metadata.generation, Some(2));
    assert_eq!(
        same.metadata.resource_version, status.metadata.resource_version,
        "a no-op write changes nothing"
    );
}

#[tokio::test]
async fn status_writes_change_only_status_and_main_writes_ignore_status() {
    let (_sb, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    let mut d = deployment("d", 1);
    d.status = Some(serde_json::from_value(json!({"replicas": 9})).unwrap());
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    assert!(created.status.is_none(), "status is dropped on create");
    let pp = PatchParams::default();
    let after = api
        .patch_status(
            "d",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 5}, "status": {"readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(
        after.spec.unwrap().replicas,
        Some(1),
        "/status does not touch spec"
    );
    assert_eq!(after.status.as_ref().unwrap().ready_replicas, Some(1));
    let main = api
        .patch(
            "d",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(main.spec.unwrap().replicas, Some(2));
    assert_eq!(
        main.status.unwrap().ready_replicas,
        Some(1),
        "main writes keep status"
    );
}

#[tokio::test]
async fn discovery_serves_version_core_and_group_resources() {
    let (_sb, client) = start().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| {
            g.recommended_resources()
                .into_iter()
                .map(|(ar, _)| format!("{}/{}", ar.api_version, ar.kind))
        })
        .collect();
    for want in [
        "v1/Pod",
        "apps/v1/StatefulSet",
        "coordination.k8s.io/v1/Lease",
        "apiextensions.k8s.io/v1/CustomResourceDefinition",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "{want} missing from {kinds:?}"
        );
    }
}

#[tokio::test]
async fn a_kube_runtime_recorder_publishes_an_event_and_counts_its_repeats() {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (_sb, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = cms
        .create(&PostParams::default(), &config_map("subject", &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sandbox-test".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("first".into()),
        action: "Test".into(),
        secondary: None,
    };
    let reference = cm.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<K8sEvent> = Api::default_namespaced(client);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "a repeat becomes a series, not a new event"
    );
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Tested"));
    assert_eq!(
        e.regarding.as_ref().unwrap().name.as_deref(),
        Some("subject")
    );
    assert_eq!(e.series.as_ref().unwrap().count, 2);
}

#[tokio::test]
async fn leases_can_be_taken_and_renewed_with_optimistic_concurrency() {
    use k8s_openapi::api::coordination::v1::Lease;
    let (_sb, client) = start().await;
    let api: Api<Lease> = Api::default_namespaced(client);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .unwrap();
    let taken = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut renewed = taken.clone();
    renewed.spec.as_mut().unwrap().lease_transitions = Some(1);
    api.replace("leader", &PostParams::default(), &renewed)
        .await
        .unwrap();
    let mut stolen = taken;
    stolen.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let result = api.replace("leader", &PostParams::default(), &stolen).await;
    assert_eq!(
        api_error(result).0,
        409,
        "a writer with an old read loses the race"
    );
    assert_eq!(
        api.get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_concurrent_updates_from_one_read_exactly_one_wins() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let read = api
        .create(&PostParams::default(), &config_map("race", &[]))
        .await
        .unwrap();
    let writers = (0..16).map(|i| {
        let api = api.clone();
        let mut mine = read.clone();
        mine.data = Some([("winner".to_string(), i.to_string())].into());
        tokio::spawn(async move {
            api.replace("race", &PostParams::default(), &mine)
                .await
                .map(|_| i)
        })
    });
    let mut winners = Vec::new();
    for w in writers {
        match w.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = api.get("race").await.unwrap().data.unwrap();
    assert_eq!(stored["winner"], winners[0].to_string());
}

#[tokio::test]
async fn the_scale_subresource_reads_and_sets_a_deployments_replicas() {
    let (_sb, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &deployment("d", 1))
        .await
        .unwrap();
    let scale = api.get_scale("d").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=d"));
    let patched = api
        .patch_scale(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(4));
    let d = api.get("d").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(4));
    assert_eq!(d.metadata.generation, Some(2));
    let refused = api
        .patch_scale(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await;
    assert_eq!(api_error(refused).0, 422);
}

#[tokio::test]
async fn built_in_kinds_get_kubernetes_defaults_and_resending_a_manifest_changes_nothing() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let (_sb, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let manifest = serde_json::to_value(deployment("d", 2)).unwrap();
    let created = api
        .patch(
            "d",
            &PatchParams::apply("me"),
            &Patch::Apply(manifest.clone()),
        )
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(
        spec.strategy.unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );
    let container = &spec.template.spec.unwrap().containers[0];
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let again = api
        .patch("d", &PatchParams::apply("me"), &Patch::Apply(manifest))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, created.metadata.resource_version,
        "defaults are not a change"
    );
    assert_eq!(again.metadata.generation, Some(1));

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let p = pods
        .create(&PostParams::default(), &pod("p", &[]))
        .await
        .unwrap();
    assert_eq!(
        p.spec.unwrap().service_account_name.as_deref(),
        Some("default")
    );
    let sas: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    common::eventually(5, "the default service account", || async {
        sas.get_opt("default").await.ok()?
    })
    .await;
    common::namespace(&client, "fresh").await;
    let fresh: Api<ServiceAccount> = Api::namespaced(client, "fresh");
    common::eventually(5, "a new namespace's default service account", || async {
        fresh.get_opt("default").await.ok()?
    })
    .await;
}
