//! Merge, JSON, strategic merge patches and server-side apply through kube-rs.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{api_error, config_map, deployment, pod, start};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn merge_json_and_strategic_patches_change_objects_as_kubernetes_does() {
    let (_sb, client) = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("p", &[("app", "a")]))
        .await
        .unwrap();
    let pp = PatchParams::default();
    let merged = pods
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"app": null, "new": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.metadata.labels.unwrap(),
        BTreeMap::from([("new".to_string(), "1".to_string())])
    );
    let patched = pods
        .patch(
            "p",
            &pp,
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/labels/new", "value": "1"},
                    {"op": "add", "path": "/metadata/annotations", "value": {"note": "x"}}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.annotations.unwrap()["note"], "x");
    let strategic = pods
        .patch(
            "p",
            &pp,
            &Patch::Strategic(json!({"spec": {"containers": [
                {"name": "redis", "image": "redis:8"},
                {"name": "exporter", "image": "exporter:1"}
            ]}})),
        )
        .await
        .unwrap();
    let containers = strategic.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("redis:8"));
    assert_eq!(
        containers[0].ports.as_ref().unwrap()[0].container_port,
        6379,
        "merged by name, other fields kept"
    );
}

#[tokio::test]
async fn a_json_patch_whose_test_fails_is_refused_with_422() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("c", &[("k", "v")]))
        .await
        .unwrap();
    let patch = Patch::<()>::Json(
        serde_json::from_value(json!([
            {"op": "test", "path": "/data/k", "value": "other"},
            {"op": "replace", "path": "/data/k", "value": "changed"}
        ]))
        .unwrap(),
    );
    let result = api.patch("c", &PatchParams::default(), &patch).await;
    assert_eq!(api_error(result).0, 422);
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["k"], "v");
}

#[tokio::test]
async fn server_side_apply_creates_then_conflicts_then_forces() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": v}});
    let created = api
        .patch("c", &PatchParams::apply("alice"), &Patch::Apply(cfg("1")))
        .await
        .unwrap();
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, [("alice".to_string(), "Apply".to_string())]);
    let result = api
        .patch("c", &PatchParams::apply("bob"), &Patch::Apply(cfg("2")))
        .await;
    assert_eq!(api_error(result), (409, "Conflict".into()));
    let forced = api
        .patch(
            "c",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(cfg("2")),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["k"], "2");
    // A plain update takes ownership too: alice's apply now conflicts with it.
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "3"}})),
    )
    .await
    .unwrap();
    let result = api
        .patch("c", &PatchParams::apply("bob"), &Patch::Apply(cfg("2")))
        .await;
    assert_eq!(api_error(result).0, 409);
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_stopped_sending_but_not_others() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "1"}}, "data": {"x": "1", "y": "1"}});
    api.patch("c", &PatchParams::apply("mgr"), &Patch::Apply(first))
        .await
        .unwrap();
    api.patch("c", &PatchParams::apply("other"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"z": "1"}}))).await.unwrap();
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1"}});
    let after = api
        .patch("c", &PatchParams::apply("mgr"), &Patch::Apply(second))
        .await
        .unwrap();
    assert_eq!(
        after.metadata.labels.unwrap().keys().collect::<Vec<_>>(),
        ["a"]
    );
    let data = after.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["x", "z"]);
}

#[tokio::test]
async fn server_side_apply_merges_containers_by_name() {
    let (_sb, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    let mut base = serde_json::to_value(deployment("d", 1)).unwrap();
    api.patch(
        "d",
        &PatchParams::apply("base"),
        &Patch::Apply(base.clone()),
    )
    .await
    .unwrap();
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}});
    let both = api
        .patch("d", &PatchParams::apply("side"), &Patch::Apply(sidecar))
        .await
        .unwrap();
    let names: Vec<String> = both
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["redis", "sidecar"]);
    base["spec"]["template"]["spec"]["containers"][0]["image"] = json!("redis:8");
    let updated = api
        .patch("d", &PatchParams::apply("base"), &Patch::Apply(base))
        .await
        .unwrap();
    let containers = updated.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("redis:8"));
}

#[tokio::test]
async fn server_side_apply_merges_a_crds_list_map_by_its_keys_per_manager() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::DynamicObject;
    use kube::core::{ApiResource, GroupVersionKind};
    let (_sb, client) = start().await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "pools.sandbox.test"},
        "spec": {
            "group": "sandbox.test", "scope": "Namespaced",
            "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {"members": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string"}, "port": {"type": "integer"}
                    }}
                }}}}
            }}}]
        }
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sandbox.test", "v1", "Pool"),
        "pools",
    );
    let pools: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let config = |members: serde_json::Value| json!({"apiVersion": "sandbox.test/v1", "kind": "Pool", "metadata": {"name": "p"}, "spec": {"members": members}});
    pools
        .patch(
            "p",
            &PatchParams::apply("a"),
            &Patch::Apply(config(json!([{"name": "x", "port": 1}]))),
        )
        .await
        .unwrap();
    let both = pools
        .patch(
            "p",
            &PatchParams::apply("b"),
            &Patch::Apply(config(json!([{"name": "y", "port": 2}]))),
        )
        .await
        .unwrap();
    assert_eq!(
        both.data["spec"]["members"],
        json!([{"name": "x", "port": 1}, {"name": "y", "port": 2}])
    );
    let clash = pools
        .patch(
            "p",
            &PatchParams::apply("b"),
            &Patch::Apply(config(json!([{"name": "x", "port": 9}]))),
        )
        .await;
    assert_eq!(api_error(clash).0, 409, "b may not change a's member");
    let after = pools
        .patch(
            "p",
            &PatchParams::apply("a"),
            &Patch::Apply(config(json!([]))),
        )
        .await
        .unwrap();
    assert_eq!(
        after.data["spec"]["members"],
        json!([{"name": "y", "port": 2}]),
        "a's member goes, b's stays"
    );
}
