//! Authentication and RBAC: service-account tokens, Roles and bindings, 403s, the audit log.
#![allow(clippy::unwrap_used)]

mod common;

use common::{api_error, config_map, namespace, start};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use kube_sandbox::Sandbox;
use serde_json::json;

async fn service_account(client: &Client, ns: &str, name: &str) {
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
}

async fn create<K>(client: &Client, ns: Option<&str>, value: serde_json::Value)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let obj: K = serde_json::from_value(value).unwrap();
    Api::<K>::namespaced(client.clone(), ns.unwrap_or("default"))
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_service_account_may_do_what_its_role_allows_and_nothing_else() {
    let (sb, admin) = start().await;
    namespace(&admin, "other").await;
    service_account(&admin, "default", "app").await;
    create::<Role>(&admin, None, json!({
        "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    }))
    .await;
    create::<RoleBinding>(&admin, None, json!({
        "metadata": {"name": "app-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app"}]
    }))
    .await;
    Api::<ConfigMap>::default_namespaced(admin.clone())
        .create(&PostParams::default(), &config_map("c", &[]))
        .await
        .unwrap();

    let app = sb
        .client_with_token(&sb.service_account_token("default", "app"))
        .unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(app.clone());
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    assert!(cms.get("c").await.is_ok());
    let err = cms
        .create(&PostParams::default(), &config_map("d", &[]))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert_eq!(
                s.message,
                "configmaps is forbidden: User \"system:serviceaccount:default:app\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        api_error(
            Api::<Secret>::default_namespaced(app.clone())
                .list(&ListParams::default())
                .await
        )
        .0,
        403
    );
    assert_eq!(
        api_error(
            Api::<ConfigMap>::namespaced(app.clone(), "other")
                .list(&ListParams::default())
                .await
        )
        .0,
        403
    );

    let denied: Vec<_> = sb.audit_log().into_iter().filter(|e| !e.allowed).collect();
    let summary: Vec<(String, String, String, String, u16)> = denied
        .iter()
        .map(|e| {
            (
                e.user.clone(),
                e.verb.clone(),
                e.resource.clone(),
                e.namespace.clone(),
                e.code,
            )
        })
        .collect();
    let user = "system:serviceaccount:default:app".to_string();
    assert_eq!(
        summary,
        [
            (
                user.clone(),
                "create".into(),
                "configmaps".into(),
                "default".into(),
                403
            ),
            (
                user.clone(),
                "list".into(),
                "secrets".into(),
                "default".into(),
                403
            ),
            (
                user,
                "list".into(),
                "configmaps".into(),
                "other".into(),
                403
            ),
        ]
    );
}

#[tokio::test]
async fn cluster_roles_apply_everywhere_through_cluster_bindings_and_in_one_namespace_through_role_bindings()
 {
    let (sb, admin) = start().await;
    namespace(&admin, "team").await;
    service_account(&admin, "team", "bot").await;
    let cluster_role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "pod-status"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update", "get"], "resourceNames": ["allowed"]}
        ]
    }))
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &cluster_role)
        .await
        .unwrap();
    create::<RoleBinding>(&admin, Some("team"), json!({
        "metadata": {"name": "bot-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-status"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "team"}]
    }))
    .await;
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "redis"}]}})).unwrap();
    Api::<Pod>::namespaced(admin.clone(), "team")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    for name in ["allowed", "other"] {
        Api::<ConfigMap>::namespaced(admin.clone(), "team")
            .create(&PostParams::default(), &config_map(name, &[]))
            .await
            .unwrap();
    }

    let bot = sb
        .client_with_token(&sb.service_account_token("team", "bot"))
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(bot.clone(), "team");
    assert!(pods.list(&ListParams::default()).await.is_ok());
    let status = Patch::Merge(json!({"status": {"phase": "Running"}}));
    assert!(
        pods.patch_status("p", &PatchParams::default(), &status)
            .await
            .is_ok()
    );
    assert_eq!(
        api_error(
            pods.patch(
                "p",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}))
            )
            .await
        )
        .0,
        403
    );
    assert_eq!(
        api_error(
            Api::<Pod>::all(bot.clone())
                .list(&ListParams::default())
                .await
        )
        .0,
        403,
        "a RoleBinding grants one namespace"
    );
    let cms: Api<ConfigMap> = Api::namespaced(bot.clone(), "team");
    assert!(cms.get("allowed").await.is_ok());
    assert_eq!(
        api_error(cms.get("other").await).0,
        403,
        "resourceNames limit the rule"
    );

    create_cluster_binding(&admin).await;
    assert!(
        Api::<Pod>::all(bot)
            .list(&ListParams::default())
            .await
            .is_ok(),
        "a ClusterRoleBinding grants every namespace"
    );
}

async fn create_cluster_binding(admin: &Client) {
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "bot-everywhere"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-status"},
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts:team"}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_token_request_api_mints_a_token_that_authenticates_as_the_service_account() {
    let (sb, admin) = start().await;
    service_account(&admin, "default", "minted").await;
    let sas: Api<ServiceAccount> = Api::default_namespaced(admin.clone());
    let request: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": []}})).unwrap();
    let issued = sas
        .create_token_request("minted", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    let as_sa = sb.client_with_token(&token).unwrap();
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "default"}}
    }))
    .unwrap();
    let reviews: Api<SelfSubjectAccessReview> = Api::all(as_sa.clone());
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    assert!(!answer.status.unwrap().allowed);
    assert!(
        sb.audit_log()
            .iter()
            .any(|e| e.user == "system:serviceaccount:default:minted")
    );
    let missing = sas
        .create_token_request("nobody", &PostParams::default(), &request)
        .await;
    assert_eq!(api_error(missing).0, 404);
}

#[tokio::test]
async fn an_unknown_token_is_401_and_tokenless_requests_are_anonymous_when_so_configured() {
    let (sb, _admin) = start().await;
    let stranger = sb.client_with_token("not-a-token").unwrap();
    let result = Api::<ConfigMap>::default_namespaced(stranger)
        .list(&ListParams::default())
        .await;
    assert_eq!(api_error(result), (401, "Unauthorized".into()));

    let strict = Sandbox::builder()
        .anonymous_is_admin(false)
        .start()
        .await
        .unwrap();
    let url = strict.url();
    let anonymous = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let result = Api::<ConfigMap>::default_namespaced(anonymous.clone())
        .list(&ListParams::default())
        .await;
    assert_eq!(api_error(result).0, 403);
    assert!(
        anonymous.apiserver_version().await.is_ok(),
        "discovery stays open"
    );
    assert!(
        Api::<ConfigMap>::default_namespaced(strict.client().unwrap())
            .list(&ListParams::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn kube_rs_works_over_tls_with_the_sandbox_ca_and_keeps_the_ca_across_restarts() {
    let dir = common::scratch_dir("tls");
    let sb = Sandbox::builder()
        .tls(true)
        .state_dir(&dir)
        .start()
        .await
        .unwrap();
    assert!(sb.url().starts_with("https://127.0.0.1:"));
    let kubeconfig = sb.kubeconfig_yaml();
    assert!(kubeconfig.contains("certificate-authority-data:"));
    let admin = sb.client().unwrap();
    Api::<ConfigMap>::default_namespaced(admin)
        .create(&PostParams::default(), &config_map("c", &[]))
        .await
        .unwrap();
    sb.stop().await.unwrap();
    let again = Sandbox::builder()
        .tls(true)
        .state_dir(&dir)
        .start()
        .await
        .unwrap();
    let ca = |yaml: &str| {
        yaml.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .map(str::to_string)
    };
    assert_eq!(
        ca(&again.kubeconfig_yaml()),
        ca(&kubeconfig),
        "the same CA after a restart"
    );
    assert!(
        Api::<ConfigMap>::default_namespaced(again.client().unwrap())
            .get("c")
            .await
            .is_ok()
    );
    again.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
