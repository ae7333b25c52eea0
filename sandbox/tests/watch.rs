//! Watches, kube-runtime's watcher, a Controller over a CRD and the finalizer helper.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config_map, eventually, start};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use kube_sandbox::Sandbox;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "sandbox.test",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
pub struct WidgetSpec {
    size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    observed_size: i32,
}

async fn install_widget_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    let established = await_condition(
        crds,
        "widgets.sandbox.test",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(10), established)
        .await
        .unwrap()
        .unwrap();
}

fn widget(name: &str, size: i32) -> Widget {
    Widget::new(name, WidgetSpec { size })
}

fn rv_of(cm: &ConfigMap) -> String {
    cm.metadata.resource_version.clone().unwrap()
}

#[tokio::test]
async fn a_watch_from_a_resource_version_sees_later_changes_in_order() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let before = api
        .create(&PostParams::default(), &config_map("old", &[]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let stream = api
        .watch(&WatchParams::default().timeout(2), &rv_of(&before))
        .await
        .unwrap();
    let events: Vec<String> = stream
        .take(3)
        .map(|e| match e.unwrap() {
            WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
            other => format!("{other:?}"),
        })
        .collect()
        .await;
    assert_eq!(events, ["ADDED a", "MODIFIED a", "DELETED a"]);
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_gone() {
    let sb = Sandbox::builder().history_limit(3).start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let first = api
        .create(&PostParams::default(), &config_map("first", &[]))
        .await
        .unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &config_map(&format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv_of(&first))
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // Compaction on request does the same to every older version.
    let latest = api
        .create(&PostParams::default(), &config_map("latest", &[]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("after", &[]))
        .await
        .unwrap();
    sb.store().compact();
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv_of(&latest))
        .await
        .unwrap()
        .boxed();
    assert!(matches!(stream.next().await, Some(Ok(WatchEvent::Error(s))) if s.code == 410));
}

#[tokio::test]
async fn a_label_filtered_watch_sees_an_object_leave_its_selector_as_deleted() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let start_rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut labelled = config_map("l", &[]);
    labelled.metadata.labels = Some([("app".to_string(), "redis".to_string())].into());
    api.create(&PostParams::default(), &labelled).await.unwrap();
    api.create(&PostParams::default(), &config_map("unlabelled", &[]))
        .await
        .unwrap();
    api.patch(
        "l",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    let params = WatchParams::default().labels("app=redis").timeout(1);
    let events: Vec<_> = api
        .watch(&params, &start_rv)
        .await
        .unwrap()
        .take(2)
        .collect()
        .await;
    assert!(matches!(&events[0], Ok(WatchEvent::Added(o)) if o.name_any() == "l"));
    assert!(matches!(&events[1], Ok(WatchEvent::Deleted(o)) if o.name_any() == "l"));
}

#[tokio::test]
async fn an_idle_watch_gets_bookmarks_and_ends_at_its_timeout() {
    let sb = Sandbox::builder()
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(sb.client().unwrap());
    let created = api
        .create(&PostParams::default(), &config_map("c", &[]))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let events: Vec<_> = api
        .watch(&WatchParams::default().timeout(1), &rv_of(&created))
        .await
        .unwrap()
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(events.len() >= 2, "{} events", events.len());
    for e in events {
        match e.unwrap() {
            WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv_of(&created)),
            other => panic!("expected only bookmarks, got {other:?}"),
        }
    }
    let quiet: Vec<_> = api
        .watch(
            &WatchParams::default().disable_bookmarks().timeout(1),
            &rv_of(&created),
        )
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        quiet.is_empty(),
        "no bookmarks unless asked for: {} events",
        quiet.len()
    );
}

/// Reads a watcher stream until every line in `want` ("apply NAME[=v]", "delete NAME")
/// has been seen, and returns everything seen.
async fn watched_until(
    stream: &mut (
             impl futures_util::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin
         ),
    want: &[&str],
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|w| seen.iter().any(|s| s == w)) {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("watcher events in time; want {want:?}, saw {seen:?}"));
        match next.expect("stream open").expect("no watcher error") {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let v = o
                    .data
                    .as_ref()
                    .and_then(|d| d.get("v"))
                    .cloned()
                    .unwrap_or_default();
                let suffix = if v.is_empty() {
                    String::new()
                } else {
                    format!("={v}")
                };
                seen.push(format!("apply {}{suffix}", o.name_any()));
            }
            watcher::Event::Delete(o) => seen.push(format!("delete {}", o.name_any())),
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
    seen
}

async fn watcher_sees_changes(config: watcher::Config) {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("existing", &[]))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), config).boxed();
    // The initial state arrives first; only then change things, so every change is
    // something the watch (not the initial list) has to deliver.
    let initial = watched_until(&mut stream, &["apply existing"]).await;
    assert_eq!(initial, ["apply existing"]);
    api.create(&PostParams::default(), &config_map("new", &[]))
        .await
        .unwrap();
    api.patch(
        "new",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    api.delete("existing", &DeleteParams::default())
        .await
        .unwrap();
    let changes = watched_until(
        &mut stream,
        &["apply new", "apply new=2", "delete existing"],
    )
    .await;
    assert_eq!(changes, ["apply new", "apply new=2", "delete existing"]);
}

#[tokio::test]
async fn the_runtime_watcher_lists_then_sees_adds_updates_and_deletes() {
    watcher_sees_changes(watcher::Config::default()).await;
}

#[tokio::test]
async fn the_runtime_watcher_with_streaming_lists_gets_initial_events_then_changes() {
    watcher_sees_changes(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn a_crd_is_served_once_created_with_its_status_subresource() {
    let (_sb, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::default_namespaced(client);
    let mut w = widget("w", 3);
    w.status = Some(WidgetStatus { observed_size: 99 });
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert!(created.status.is_none(), "status is ignored on create");
    let status =
        json!({"apiVersion": "sandbox.test/v1", "kind": "Widget", "status": {"observed_size": 3}});
    let patched = api
        .patch_status("w", &PatchParams::apply("ctl"), &Patch::Apply(status))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().observed_size, 3);
    assert_eq!(patched.spec.size, 3);
    assert_eq!(patched.metadata.generation, Some(1));
}

#[tokio::test]
async fn a_controller_reconciles_a_custom_resource_and_patches_its_status() {
    let (_sb, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::default_namespaced(client.clone());

    async fn reconcile(w: Arc<Widget>, api: Arc<Api<Widget>>) -> Result<Action, kube::Error> {
        let status = json!({"status": {"observed_size": w.spec.size}});
        api.patch_status(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Api<Widget>>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(api.clone()))
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    api.create(&PostParams::default(), &widget("w", 5))
        .await
        .unwrap();
    eventually(10, "status to follow spec 5", || async {
        api.get("w")
            .await
            .ok()?
            .status
            .filter(|s| s.observed_size == 5)
    })
    .await;
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 7}})),
    )
    .await
    .unwrap();
    eventually(10, "status to follow spec 7", || async {
        api.get("w")
            .await
            .ok()?
            .status
            .filter(|s| s.observed_size == 7)
    })
    .await;
    running.abort();
}

#[tokio::test]
async fn the_finalizer_helper_cleans_up_before_the_object_goes() {
    let (_sb, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::default_namespaced(client.clone());
    let cleanups: Api<ConfigMap> = Api::default_namespaced(client);
    const FINALIZER: &str = "sandbox.test/cleanup";

    async fn reconcile(
        w: Arc<Widget>,
        ctx: Arc<(Api<Widget>, Api<ConfigMap>)>,
    ) -> Result<Action, kube::runtime::finalizer::Error<kube::Error>> {
        let (api, cms) = (&ctx.0, ctx.1.clone());
        finalizer(api, FINALIZER, w, |event| async move {
            match event {
                Finalizer::Apply(_) => Ok(Action::await_change()),
                Finalizer::Cleanup(w) => {
                    cms.create(
                        &PostParams::default(),
                        &config_map(&format!("cleaned-{}", w.name_any()), &[]),
                    )
                    .await?;
                    Ok(Action::await_change())
                }
            }
        })
        .await
    }
    fn error_policy(
        _: Arc<Widget>,
        _: &kube::runtime::finalizer::Error<kube::Error>,
        _: Arc<(Api<Widget>, Api<ConfigMap>)>,
    ) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            reconcile,
            error_policy,
            Arc::new((api.clone(), cleanups.clone())),
        )
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    eventually(10, "the finalizer to be added", || async {
        api.get("w")
            .await
            .ok()
            .filter(|w| w.finalizers().iter().any(|f| f == FINALIZER))
    })
    .await;
    api.delete("w", &DeleteParams::default()).await.unwrap();
    eventually(10, "the widget to be gone", || async {
        api.get_opt("w").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        cleanups.get_opt("cleaned-w").await.unwrap().is_some(),
        "cleanup ran before deletion"
    );
    running.abort();
}

#[tokio::test]
async fn watch_stream_ext_applied_objects_follow_a_changing_object() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("c", &[("v", "0")]))
        .await
        .unwrap();
    let mut objects = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = objects.try_next().await.unwrap().unwrap();
    assert_eq!(first.data.unwrap()["v"], "0");
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), objects.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.data.unwrap()["v"], "1");
}

#[tokio::test]
async fn a_controller_that_owns_config_maps_reconciles_their_owner_when_they_change() {
    let (_sb, client) = start().await;
    install_widget_crd(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());

    // Each reconcile writes the child's current "v" into the widget's status.
    async fn reconcile(
        w: Arc<Widget>,
        ctx: Arc<(Api<Widget>, Api<ConfigMap>)>,
    ) -> Result<Action, kube::Error> {
        let (widgets, cms) = (&ctx.0, &ctx.1);
        let name = format!("{}-child", w.name_any());
        let owner = w.controller_owner_ref(&()).unwrap();
        let child = match cms.get_opt(&name).await? {
            Some(c) => c,
            None => {
                let mut c = config_map(&name, &[("v", "0")]);
                c.metadata.owner_references = Some(vec![owner]);
                cms.create(&PostParams::default(), &c).await?
            }
        };
        let v: i32 = child
            .data
            .and_then(|d| d.get("v").cloned())
            .unwrap_or_default()
            .parse()
            .unwrap_or(-1);
        let status = json!({"status": {"observed_size": v}});
        widgets
            .patch_status(
                &w.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(
        _: Arc<Widget>,
        _: &kube::Error,
        _: Arc<(Api<Widget>, Api<ConfigMap>)>,
    ) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(
            reconcile,
            error_policy,
            Arc::new((widgets.clone(), cms.clone())),
        )
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    eventually(10, "the child to exist", || async {
        cms.get_opt("w-child").await.ok()?
    })
    .await;
    cms.patch(
        "w-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "7"}})),
    )
    .await
    .unwrap();
    eventually(10, "the owner to see its child change", || async {
        widgets
            .get("w")
            .await
            .ok()?
            .status
            .filter(|s| s.observed_size == 7)
    })
    .await;
    running.abort();
    // Deleting the owner takes the child with it (garbage collection).
    let uid = cms.get("w-child").await.unwrap().uid().unwrap();
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    let gone = await_condition(cms.clone(), "w-child", conditions::is_deleted(&uid));
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .unwrap()
        .unwrap();
}
