//! Deletion: finalizers, owner-reference garbage collection, namespaces, CRDs, and state
//! kept across restarts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{config_map, eventually, namespace, scratch_dir, start};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use kube_sandbox::Sandbox;
use serde_json::json;

async fn owned_by(api: &Api<ConfigMap>, name: &str, owner: &ConfigMap) -> ConfigMap {
    let mut cm = config_map(name, &[]);
    cm.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        block_owner_deletion: Some(true),
        ..Default::default()
    }]);
    api.create(&PostParams::default(), &cm).await.unwrap()
}

async fn gone(api: &Api<ConfigMap>, name: &str) {
    eventually(10, &format!("{name} to be deleted"), || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_object_with_finalizers_stays_until_they_are_removed() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut cm = config_map("f", &[]);
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    // While deleting, no finalizer may be added.
    let add = api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "x/y"]}})),
        )
        .await;
    assert_eq!(common::api_error(add).0, 422);
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents_in_the_background() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = api
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .unwrap();
    owned_by(&api, "child", &owner).await;
    let child = api.get("child").await.unwrap();
    owned_by(&api, "grandchild", &child).await;
    api.create(&PostParams::default(), &config_map("bystander", &[]))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    gone(&api, "child").await;
    gone(&api, "grandchild").await;
    assert!(api.get_opt("bystander").await.unwrap().is_some());
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_before_the_owner() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = api
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .unwrap();
    let mut held = config_map("held-child", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    held.metadata.owner_references = owned_by(&api, "tmp", &owner)
        .await
        .metadata
        .owner_references;
    api.create(&PostParams::default(), &held).await.unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    gone(&api, "tmp").await;
    // The owner waits for the dependent that a finalizer still holds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let owner_now = api.get("owner").await.unwrap();
    assert!(
        owner_now
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    api.patch(
        "held-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    gone(&api, "owner").await;
}

#[tokio::test]
async fn orphan_deletion_leaves_dependents_without_the_owner_reference() {
    let (_sb, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = api
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .unwrap();
    owned_by(&api, "child", &owner).await;
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let child = api.get("child").await.unwrap();
    assert!(child.owner_references().is_empty());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_then_itself() {
    let (_sb, client) = start().await;
    namespace(&client, "doomed").await;
    let inside: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    inside
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let mut held = config_map("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    inside.create(&PostParams::default(), &held).await.unwrap();
    let outside: Api<ConfigMap> = Api::default_namespaced(client.clone());
    outside
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    gone(&inside, "a").await;
    let ns = namespaces.get("doomed").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    let refused = inside
        .create(&PostParams::default(), &config_map("late", &[]))
        .await;
    assert_eq!(common::api_error(refused).0, 403);
    inside
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually(10, "the namespace to go", || async {
        namespaces
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(outside.get_opt("a").await.unwrap().is_some());
}

fn gadget_crd(scope: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.sandbox.test"},
        "spec": {
            "group": "sandbox.test", "scope": scope,
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap()
}

fn gadget_api(client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sandbox.test", "v1", "Gadget"),
        "gadgets",
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn gadget(name: &str) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "sandbox.test/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": {"x": 1}})).unwrap()
}

#[tokio::test]
async fn a_cluster_scoped_crd_serves_cluster_objects_and_deleting_it_removes_them() {
    let (_sb, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &gadget_crd("Cluster"))
        .await
        .unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let gadgets = gadget_api(&client, None);
    gadgets
        .create(&PostParams::default(), &gadget("g"))
        .await
        .unwrap();
    assert_eq!(
        gadgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    crds.delete("gadgets.sandbox.test", &DeleteParams::default())
        .await
        .unwrap();
    let after = gadgets.list(&ListParams::default()).await;
    assert_eq!(
        common::api_error(after).0,
        404,
        "the resource is no longer served"
    );
    // Recreating the CRD does not bring old objects back.
    crds.create(&PostParams::default(), &gadget_crd("Cluster"))
        .await
        .unwrap();
    assert!(
        gadgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn objects_and_crds_survive_a_restart_with_a_state_dir() {
    let dir = scratch_dir("state");
    let sb = Sandbox::builder().state_dir(&dir).start().await.unwrap();
    let client = sb.client().unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &gadget_crd("Namespaced"))
        .await
        .unwrap();
    gadget_api(&client, Some("default"))
        .create(&PostParams::default(), &gadget("kept"))
        .await
        .unwrap();
    let cm = Api::<ConfigMap>::default_namespaced(client)
        .create(&PostParams::default(), &config_map("kept", &[("k", "v")]))
        .await
        .unwrap();
    sb.stop().await.unwrap();

    let sb = Sandbox::builder().state_dir(&dir).start().await.unwrap();
    let client = sb.client().unwrap();
    let again = Api::<ConfigMap>::default_namespaced(client.clone())
        .get("kept")
        .await
        .unwrap();
    assert_eq!(again.metadata.uid, cm.metadata.uid);
    assert_eq!(again.data.unwrap()["k"], "v");
    assert!(
        gadget_api(&client, Some("default"))
            .get_opt("kept")
            .await
            .unwrap()
            .is_some()
    );
    let next = Api::<ConfigMap>::default_namespaced(client)
        .create(&PostParams::default(), &config_map("new", &[]))
        .await
        .unwrap();
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&next) > rv(&cm),
        "resource versions keep increasing across restarts"
    );
    sb.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_crd_schema_prunes_unknown_fields_fills_defaults_and_refuses_wrong_types() {
    let (_sb, client) = start().await;
    let mut crd = serde_json::to_value(gadget_crd("Namespaced")).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "required": ["x"], "properties": {
            "x": {"type": "integer"},
            "mode": {"type": "string", "default": "fast", "enum": ["fast", "safe"]}
        }}}
    });
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let gadgets = gadget_api(&client, Some("default"));
    let mut g = gadget("g");
    g.data["spec"]["unknown"] = json!("dropped");
    g.data["extra"] = json!(1);
    let created = gadgets.create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(created.data["spec"], json!({"x": 1, "mode": "fast"}));
    assert!(created.data.get("extra").is_none());
    let mut wrong = gadget("wrong");
    wrong.data["spec"]["x"] = json!("one");
    assert_eq!(
        common::api_error(gadgets.create(&PostParams::default(), &wrong).await),
        (422, "Invalid".into())
    );
    let bad_enum = gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "reckless"}})),
        )
        .await;
    assert_eq!(common::api_error(bad_enum).0, 422);
    let same = gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": null}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.data["spec"]["mode"], "fast",
        "a removed defaulted field comes back"
    );
    assert_eq!(
        same.metadata.generation,
        Some(1),
        "defaulting is not a spec change"
    );
}

#[tokio::test]
async fn the_default_and_system_namespaces_cannot_be_deleted() {
    let (_sb, client) = start().await;
    let namespaces: Api<Namespace> = Api::all(client);
    for ns in ["default", "kube-system", "kube-public"] {
        assert_eq!(
            common::api_error(namespaces.delete(ns, &DeleteParams::default()).await).0,
            403,
            "{ns}"
        );
    }
    assert!(
        namespaces
            .delete("kube-node-lease", &DeleteParams::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_custom_resource_update_needs_a_resource_version_and_a_crd_update_stops_serving_dropped_versions()
 {
    let (_sb, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut two_versions = serde_json::to_value(gadget_crd("Namespaced")).unwrap();
    let v1 = two_versions["spec"]["versions"][0].clone();
    let mut v2 = v1.clone();
    v2["name"] = json!("v2");
    v2["storage"] = json!(false);
    two_versions["spec"]["versions"] = json!([v1, v2]);
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(two_versions).unwrap(),
    )
    .await
    .unwrap();
    let gadgets = gadget_api(&client, Some("default"));
    let created = gadgets
        .create(&PostParams::default(), &gadget("g"))
        .await
        .unwrap();
    let ar2 = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sandbox.test", "v2", "Gadget"),
        "gadgets",
    );
    let v2_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar2);
    assert_eq!(
        v2_api.get("g").await.unwrap().types.unwrap().api_version,
        "sandbox.test/v2"
    );

    let mut unconditional = created.clone();
    unconditional.metadata.resource_version = None;
    assert_eq!(
        common::api_error(
            gadgets
                .replace("g", &PostParams::default(), &unconditional)
                .await
        ),
        (422, "Invalid".into())
    );
    assert!(
        gadgets
            .replace("g", &PostParams::default(), &created)
            .await
            .is_ok()
    );

    let mut crd = crds.get("gadgets.sandbox.test").await.unwrap();
    crd.spec.versions.truncate(1);
    crds.replace("gadgets.sandbox.test", &PostParams::default(), &crd)
        .await
        .unwrap();
    assert_eq!(common::api_error(v2_api.get("g").await).0, 404);
    assert!(gadgets.get("g").await.is_ok());
}

#[tokio::test]
async fn a_crd_that_declares_a_scale_subresource_serves_it_from_its_paths() {
    let (_sb, client) = start().await;
    let mut crd = serde_json::to_value(gadget_crd("Namespaced")).unwrap();
    crd["spec"]["versions"][0]["subresources"] = json!({
        "status": {},
        "scale": {"specReplicasPath": ".spec.members", "statusReplicasPath": ".status.ready", "labelSelectorPath": ".status.selector"}
    });
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
    let gadgets = gadget_api(&client, Some("default"));
    let mut g = gadget("g");
    g.data["spec"] = json!({"members": 3});
    gadgets.create(&PostParams::default(), &g).await.unwrap();
    let status = json!({"status": {"ready": 2, "selector": "app=g"}});
    gadgets
        .patch_status("g", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let scale = gadgets.get_scale("g").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    let st = scale.status.unwrap();
    assert_eq!((st.replicas, st.selector.as_deref()), (2, Some("app=g")));
    gadgets
        .patch_scale(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .unwrap();
    assert_eq!(gadgets.get("g").await.unwrap().data["spec"]["members"], 6);
}
