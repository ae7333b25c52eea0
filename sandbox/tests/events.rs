//! Events through both APIs: `events.k8s.io/v1` and core `v1` are two views of one stored
//! object, so what an operator records with kube-rs' `Recorder` is what `kubectl get
//! events`, `kubectl describe` and core-API watchers see, and the other way round.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::tools::Cluster;
use common::{config_map, namespace, start};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde_json::json;

/// A ConfigMap `name` in `ns` and a Recorder that publishes about it.
async fn subject(client: &Client, ns: &str, name: &str) -> (ConfigMap, Recorder) {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &config_map(name, &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "redis-operator".into(),
            instance: Some("redis-operator-0".into()),
        },
    );
    (cm, recorder)
}

fn scaled_event() -> Event {
    Event {
        type_: EventType::Warning,
        reason: "ScaledUp".into(),
        note: Some("added a replica to the shard".into()),
        action: "Scale".into(),
        secondary: None,
    }
}

/// A core v1 Event about `cm`, as client-go's old recorder writes them.
fn core_event(name: &str, cm: &ConfigMap) -> CoreEvent {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "involvedObject": serde_json::to_value(cm.object_ref(&())).unwrap(),
        "reason": "Rotated",
        "message": "the password was rotated",
        "type": "Normal",
        "source": {"component": "legacy-controller"},
        "count": 1,
        "firstTimestamp": "2024-05-01T10:00:00Z",
        "lastTimestamp": "2024-05-01T10:00:00Z",
    }))
    .unwrap()
}

#[tokio::test]
async fn a_recorder_event_shows_in_kubectl_get_events_and_in_kubectl_describe() {
    let c = Cluster::start().await;
    let client = c.client();
    namespace(&client, "shop").await;
    let (cm, recorder) = subject(&client, "shop", "cart").await;
    recorder
        .publish(&scaled_event(), &cm.object_ref(&()))
        .await
        .unwrap();
    let listed = c.kubectl(&["get", "events", "-n", "shop"]).await;
    let row = listed
        .lines()
        .find(|l| l.contains("ScaledUp"))
        .unwrap_or_else(|| panic!("no ScaledUp row in:\n{listed}"));
    assert!(
        row.contains("Warning")
            && row.contains("configmap/cart")
            && row.contains("added a replica to the shard"),
        "{listed}"
    );
    let described = c
        .kubectl(&["describe", "configmap", "cart", "-n", "shop"])
        .await;
    let events = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section in:\n{described}"));
    assert!(
        events.contains("ScaledUp")
            && events.contains("added a replica to the shard")
            && events.contains("Warning"),
        "{described}"
    );
    let kubectl_events = c
        .kubectl(&["events", "-n", "shop", "--for", "configmap/cart"])
        .await;
    assert!(kubectl_events.contains("ScaledUp"), "{kubectl_events}");
}

#[tokio::test]
async fn a_core_event_shows_in_kubectl_get_events_events_k8s_io_with_its_note() {
    let c = Cluster::start().await;
    let client = c.client();
    let (cm, _) = subject(&client, "default", "creds").await;
    Api::<CoreEvent>::default_namespaced(client.clone())
        .create(&PostParams::default(), &core_event("creds.rotated", &cm))
        .await
        .unwrap();
    let listed = c.kubectl(&["get", "events.events.k8s.io"]).await;
    assert!(
        listed.contains("Rotated") && listed.contains("the password was rotated"),
        "{listed}"
    );
    let yaml = c
        .kubectl(&["get", "events.events.k8s.io", "creds.rotated", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("apiVersion: events.k8s.io/v1")
            && yaml.contains("note: the password was rotated")
            && yaml.contains("regarding:")
            && yaml.contains("deprecatedSource:")
            && yaml.contains("deprecatedCount: 1"),
        "{yaml}"
    );
}

#[tokio::test]
async fn both_apis_read_the_same_event_with_kubernetes_field_mapping() {
    let (_sb, client) = start().await;
    let (cm, recorder) = subject(&client, "default", "mapped").await;
    recorder
        .publish(&scaled_event(), &cm.object_ref(&()))
        .await
        .unwrap();
    let new = Api::<NewEvent>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let name = new.metadata.name.clone().unwrap();
    let core = Api::<CoreEvent>::default_namespaced(client.clone())
        .get(&name)
        .await
        .unwrap();
    assert_eq!(core.metadata.uid, new.metadata.uid);
    assert_eq!(
        core.metadata.resource_version,
        new.metadata.resource_version
    );
    assert_eq!(core.involved_object.name.as_deref(), Some("mapped"));
    assert_eq!(core.involved_object.uid, cm.metadata.uid);
    assert_eq!(core.message, new.note);
    assert_eq!(core.reason.as_deref(), Some("ScaledUp"));
    assert_eq!(core.type_.as_deref(), Some("Warning"));
    assert_eq!(core.action.as_deref(), Some("Scale"));
    assert_eq!(core.reporting_component.as_deref(), Some("redis-operator"));
    assert_eq!(core.reporting_instance.as_deref(), Some("redis-operator-0"));
    assert_eq!(core.event_time, new.event_time);
}

#[tokio::test]
async fn a_recorder_publishing_the_same_event_twice_leaves_one_event_with_a_series() {
    let (_sb, client) = start().await;
    let (cm, recorder) = subject(&client, "default", "repeated").await;
    let reference = cm.object_ref(&());
    recorder.publish(&scaled_event(), &reference).await.unwrap();
    recorder.publish(&scaled_event(), &reference).await.unwrap();
    recorder.publish(&scaled_event(), &reference).await.unwrap();
    let core = Api::<CoreEvent>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(core.items.len(), 1, "repeats patch the one event");
    let series = core.items[0].series.as_ref().expect("a series");
    assert_eq!(series.count, Some(3));
    assert!(series.last_observed_time.is_some());
    let new = Api::<NewEvent>::default_namespaced(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(new.items.len(), 1);
    assert_eq!(new.items[0].series.as_ref().map(|s| s.count), Some(3));
}

/// The next watch event, failing the test after a few seconds.
async fn next<K>(
    stream: &mut (impl futures_util::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("a watch event in time")
        .unwrap()
        .expect("the stream stays open")
}

#[tokio::test]
async fn a_watch_on_one_event_api_sees_writes_through_the_other() {
    let (_sb, client) = start().await;
    let (cm, recorder) = subject(&client, "default", "watched").await;
    let core_api = Api::<CoreEvent>::default_namespaced(client.clone());
    let new_api = Api::<NewEvent>::default_namespaced(client.clone());
    let rv = core_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut core_watch = core_api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut new_watch = new_api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    recorder
        .publish(&scaled_event(), &cm.object_ref(&()))
        .await
        .unwrap();
    let WatchEvent::Added(seen) = next(&mut core_watch).await else {
        panic!("the core watch sees the events.k8s.io create as ADDED");
    };
    assert_eq!(
        seen.message.as_deref(),
        Some("added a replica to the shard")
    );
    assert_eq!(seen.involved_object.name.as_deref(), Some("watched"));
    let WatchEvent::Added(seen_new) = next(&mut new_watch).await else {
        panic!("the events.k8s.io watch sees its own create");
    };
    assert_eq!(
        seen.metadata.resource_version,
        seen_new.metadata.resource_version
    );

    let name = seen.metadata.name.clone().unwrap();
    let patched = core_api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"message": "rewritten through core"})),
        )
        .await
        .unwrap();
    let WatchEvent::Modified(changed) = next(&mut new_watch).await else {
        panic!("the events.k8s.io watch sees the core patch as MODIFIED");
    };
    assert_eq!(changed.note.as_deref(), Some("rewritten through core"));
    assert_eq!(
        changed.metadata.resource_version,
        patched.metadata.resource_version
    );
    assert!(matches!(
        next(&mut core_watch).await,
        WatchEvent::Modified(_)
    ));

    new_api
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let WatchEvent::Deleted(gone) = next(&mut core_watch).await else {
        panic!("the core watch sees the events.k8s.io delete");
    };
    assert_eq!(gone.metadata.name.as_deref(), Some(name.as_str()));
    assert!(core_api.get_opt(&name).await.unwrap().is_none());
}

#[tokio::test]
async fn every_patch_type_through_events_k8s_io_changes_the_one_stored_event() {
    let (_sb, client) = start().await;
    let (cm, _) = subject(&client, "default", "patched").await;
    let core_api = Api::<CoreEvent>::default_namespaced(client.clone());
    let new_api = Api::<NewEvent>::default_namespaced(client.clone());
    core_api
        .create(&PostParams::default(), &core_event("patched.1", &cm))
        .await
        .unwrap();
    let note = |v: &str| json!({"note": v});
    new_api
        .patch(
            "patched.1",
            &PatchParams::default(),
            &Patch::Merge(note("merge")),
        )
        .await
        .unwrap();
    assert_eq!(
        core_api.get("patched.1").await.unwrap().message.as_deref(),
        Some("merge")
    );
    new_api
        .patch(
            "patched.1",
            &PatchParams::default(),
            &Patch::Strategic(note("strategic")),
        )
        .await
        .unwrap();
    assert_eq!(
        core_api.get("patched.1").await.unwrap().message.as_deref(),
        Some("strategic")
    );
    let ops = serde_json::from_value(json!([
        {"op": "test", "path": "/regarding/name", "value": "patched"},
        {"op": "replace", "path": "/note", "value": "json"},
        {"op": "replace", "path": "/deprecatedCount", "value": 7},
    ]))
    .unwrap();
    new_api
        .patch(
            "patched.1",
            &PatchParams::default(),
            &Patch::<()>::Json(ops),
        )
        .await
        .unwrap();
    let core = core_api.get("patched.1").await.unwrap();
    assert_eq!(
        (core.message.as_deref(), core.count),
        (Some("json"), Some(7))
    );
    let applied = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "patched.1"},
        "note": "applied",
    });
    // The earlier patches made their manager own `note` (kept as `message`, and shown
    // under the view's name): without force, apply conflicts on it.
    let conflict = new_api
        .patch(
            "patched.1",
            &PatchParams::apply("tester"),
            &Patch::Apply(applied.clone()),
        )
        .await;
    assert_eq!(common::api_error(conflict).0, 409);
    let out = new_api
        .patch(
            "patched.1",
            &PatchParams::apply("tester").force(),
            &Patch::Apply(applied),
        )
        .await
        .unwrap();
    assert_eq!(out.note.as_deref(), Some("applied"));
    assert_eq!(
        out.reason.as_deref(),
        Some("Rotated"),
        "apply keeps what it does not send"
    );
    let core = core_api.get("patched.1").await.unwrap();
    assert_eq!(core.message.as_deref(), Some("applied"));
    let owners = core.metadata.managed_fields.unwrap_or_default();
    let tester = owners
        .iter()
        .find(|m| m.manager.as_deref() == Some("tester"))
        .expect("the applier owns a field");
    let fields = serde_json::to_string(&tester.fields_v1).unwrap();
    assert!(
        fields.contains("f:message"),
        "stored under the core name: {fields}"
    );
}

#[tokio::test]
async fn field_selectors_of_both_event_apis_find_events_by_their_object() {
    let (_sb, client) = start().await;
    let (one, recorder) = subject(&client, "default", "one").await;
    let (two, _) = subject(&client, "default", "two").await;
    recorder
        .publish(&scaled_event(), &one.object_ref(&()))
        .await
        .unwrap();
    Api::<CoreEvent>::default_namespaced(client.clone())
        .create(&PostParams::default(), &core_event("two.rotated", &two))
        .await
        .unwrap();
    let core_api = Api::<CoreEvent>::default_namespaced(client.clone());
    let new_api = Api::<NewEvent>::default_namespaced(client.clone());
    let core_names = |selector: &'static str| {
        let api = core_api.clone();
        async move {
            api.list(&ListParams::default().fields(selector))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.reason.unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };
    let new_names = |selector: &'static str| {
        let api = new_api.clone();
        async move {
            api.list(&ListParams::default().fields(selector))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.reason.unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };
    let describe_selector = format!(
        "involvedObject.name=one,involvedObject.namespace=default,involvedObject.kind=ConfigMap,involvedObject.uid={}",
        one.metadata.uid.clone().unwrap()
    );
    let by_uid = core_api
        .list(&ListParams::default().fields(&describe_selector))
        .await
        .unwrap();
    assert_eq!(by_uid.items.len(), 1);
    assert_eq!(core_names("involvedObject.name=two").await, ["Rotated"]);
    assert_eq!(
        core_names("involvedObject.apiVersion=v1,reason=ScaledUp").await,
        ["ScaledUp"]
    );
    assert_eq!(
        core_names("reportingComponent=redis-operator").await,
        ["ScaledUp"]
    );
    assert_eq!(core_names("source=legacy-controller").await, ["Rotated"]);
    assert_eq!(core_names("type=Warning").await, ["ScaledUp"]);
    assert_eq!(core_names("involvedObject.fieldPath=").await.len(), 2);
    assert_eq!(new_names("regarding.name=one").await, ["ScaledUp"]);
    assert_eq!(
        new_names("regarding.kind=ConfigMap,type=Normal").await,
        ["Rotated"]
    );
    assert_eq!(
        new_names("reportingController=redis-operator").await,
        ["ScaledUp"]
    );
    assert_eq!(
        new_names("regarding.namespace=default,reason!=ScaledUp").await,
        ["Rotated"]
    );
    let refused = new_api
        .list(&ListParams::default().fields("involvedObject.name=one"))
        .await;
    assert_eq!(
        common::api_error(refused).0,
        400,
        "core labels are not events.k8s.io labels"
    );
}
