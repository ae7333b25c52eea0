//! Lists through kube-rs: label and field selectors, all namespaces, pages, delete-collection.
#![allow(clippy::unwrap_used)]

mod common;

use common::{api_error, config_map, namespace, pod, start};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn list_selects_by_label_with_every_operator() {
    let (_sb, client) = start().await;
    let api: Api<Pod> = Api::default_namespaced(client);
    for (name, labels) in [
        ("a", vec![("app", "redis"), ("role", "master")]),
        ("b", vec![("app", "redis"), ("role", "replica")]),
        ("c", vec![("app", "web")]),
    ] {
        api.create(&PostParams::default(), &pod(name, &labels))
            .await
            .unwrap();
    }
    let names = |sel: &'static str| {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default().labels(sel)).await.unwrap();
            list.items
                .into_iter()
                .map(|p| p.metadata.name.unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("app=redis").await, ["a", "b"]);
    assert_eq!(names("app==redis,role!=master").await, ["b"]);
    assert_eq!(names("role in (master,replica)").await, ["a", "b"]);
    assert_eq!(names("app notin (redis)").await, ["c"]);
    assert_eq!(names("role").await, ["a", "b"]);
    assert_eq!(names("!role").await, ["c"]);
}

#[tokio::test]
async fn list_selects_by_field_name_namespace_and_pod_phase() {
    let (_sb, client) = start().await;
    namespace(&client, "other").await;
    let here: Api<Pod> = Api::default_namespaced(client.clone());
    let there: Api<Pod> = Api::namespaced(client.clone(), "other");
    here.create(&PostParams::default(), &pod("a", &[]))
        .await
        .unwrap();
    here.create(&PostParams::default(), &pod("b", &[]))
        .await
        .unwrap();
    there
        .create(&PostParams::default(), &pod("a", &[]))
        .await
        .unwrap();
    here.patch_status(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();
    let all: Api<Pod> = Api::all(client);
    let count = |sel: &'static str| {
        let all = all.clone();
        async move {
            all.list(&ListParams::default().fields(sel))
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(count("metadata.name=a").await, 2);
    assert_eq!(count("metadata.namespace=other").await, 1);
    assert_eq!(count("status.phase=Running").await, 1);
    assert_eq!(count("status.phase!=Running").await, 2);
    let err = all
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await;
    assert_eq!(api_error(err).0, 400);
}

#[tokio::test]
async fn pods_are_listed_across_all_namespaces() {
    let (_sb, client) = start().await;
    namespace(&client, "one").await;
    namespace(&client, "two").await;
    for ns in ["one", "two", "default"] {
        Api::<Pod>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &pod("p", &[]))
            .await
            .unwrap();
    }
    let all = Api::<Pod>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut namespaces: Vec<String> = all
        .items
        .into_iter()
        .map(|p| p.metadata.namespace.unwrap())
        .collect();
    namespaces.sort();
    assert_eq!(namespaces, ["default", "one", "two"]);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    for i in 0..5 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i}"), &[]))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
}

#[tokio::test]
async fn delete_collection_removes_only_the_selected_objects() {
    let (_sb, client) = start().await;
    let api: Api<Pod> = Api::default_namespaced(client);
    for (name, app) in [("a", "redis"), ("b", "redis"), ("c", "web")] {
        api.create(&PostParams::default(), &pod(name, &[("app", app)]))
            .await
            .unwrap();
    }
    api.delete_collection(
        &Default::default(),
        &ListParams::default().labels("app=redis"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
}
