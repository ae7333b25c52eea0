//! The real kubectl 1.33 against the sandbox. It comes from `scripts/kube-tools.sh` (run by
//! `scripts/setup.sh`); without it these tests fail and say so, rather than skip.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::config_map;
use common::tools::Cluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  labels: {app: demo}
data:
  a: \"1\"
  b: \"2\"
";

#[tokio::test]
async fn kubectl_gets_namespaces_with_their_status_and_objects_as_yaml() {
    let c = Cluster::start().await;
    let out = c.kubectl(&["get", "namespaces"]).await;
    let line = out
        .lines()
        .find(|l| l.starts_with("default "))
        .expect("default namespace listed");
    assert!(line.contains("Active"), "{out}");
    Api::<ConfigMap>::default_namespaced(c.client())
        .create(&PostParams::default(), &config_map("shown", &[("k", "v")]))
        .await
        .unwrap();
    let yaml = c
        .kubectl(&["get", "configmap", "shown", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("name: shown") && yaml.contains("k: v") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let missing = c.run("kubectl", &["get", "configmap", "nope"]).await;
    assert!(!missing.0 && missing.2.contains("NotFound"), "{missing:?}");
}

#[tokio::test]
async fn kubectl_client_side_apply_creates_updates_and_drops_a_removed_key() {
    let c = Cluster::start().await;
    let file = c.write("cm.yaml", CONFIG_MAP);
    assert!(c.kubectl(&["apply", "-f", &file]).await.contains("created"));
    c.write("cm.yaml", &CONFIG_MAP.replace("b: \"2\"", "c: \"3\""));
    assert!(
        c.kubectl(&["apply", "-f", &file])
            .await
            .contains("configured")
    );
    let data = c
        .kubectl(&["get", "configmap", "demo", "-o", "jsonpath={.data}"])
        .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).unwrap(),
        json!({"a": "1", "c": "3"})
    );
    assert!(
        c.kubectl(&["apply", "-f", &file])
            .await
            .contains("unchanged")
    );
}

#[tokio::test]
async fn kubectl_server_side_apply_conflicts_with_another_manager_unless_forced() {
    let c = Cluster::start().await;
    let file = c.write("cm.yaml", CONFIG_MAP);
    assert!(
        c.kubectl(&["apply", "--server-side", "-f", &file])
            .await
            .contains("serverside-applied")
    );
    c.write("cm.yaml", &CONFIG_MAP.replace("a: \"1\"", "a: \"9\""));
    let (ok, _, stderr) = c
        .run(
            "kubectl",
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "intruder",
                "-f",
                &file,
            ],
        )
        .await;
    assert!(
        !ok && stderr.contains("conflict") && stderr.contains(".data.a"),
        "{stderr}"
    );
    c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "intruder",
        "-f",
        &file,
    ])
    .await;
    assert_eq!(
        c.kubectl(&["get", "configmap", "demo", "-o", "jsonpath={.data.a}"])
            .await,
        "9"
    );
}

#[tokio::test]
async fn kubectl_patch_of_each_type_and_scale_change_a_deployment() {
    let c = Cluster::start().await;
    let file = c.write(
        "deploy.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 1
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers:
      - {name: redis, image: 'redis:7', ports: [{containerPort: 6379}]}
",
    );
    c.kubectl(&["apply", "-f", &file]).await;
    c.kubectl(&[
        "patch",
        "deployment",
        "d",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ])
    .await;
    c.kubectl(&["patch", "deployment", "d", "--type", "json", "-p", r#"[{"op":"test","path":"/spec/replicas","value":2},{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]"#]).await;
    c.kubectl(&["patch", "deployment", "d", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"exporter","image":"exporter:1"}]}}}}"#]).await;
    let (ok, _, stderr) = c
        .run(
            "kubectl",
            &[
                "patch",
                "deployment",
                "d",
                "--type",
                "json",
                "-p",
                r#"[{"op":"test","path":"/spec/replicas","value":5}]"#,
            ],
        )
        .await;
    assert!(!ok, "a failed test must refuse the patch: {stderr}");
    c.kubectl(&["scale", "deployment", "d", "--replicas=5"])
        .await;
    let d = Api::<Deployment>::default_namespaced(c.client())
        .get("d")
        .await
        .unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(5));
    assert_eq!(d.metadata.labels.unwrap()["x"], "y");
    let names: Vec<String> = spec
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["redis", "exporter"]);
    assert_eq!(d.metadata.generation, Some(4));
}

#[tokio::test]
async fn kubectl_waits_for_a_crd_and_prints_its_printer_columns() {
    let c = Cluster::start().await;
    let crd = c.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type==\"Ready\")].status'}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
",
    );
    c.kubectl(&["apply", "-f", &crd]).await;
    c.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ])
    .await;
    let cr = c.write(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n",
    );
    c.kubectl(&["apply", "--server-side", "-f", &cr]).await;
    c.kubectl(&[
        "patch",
        "wd",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ])
    .await;
    let out = c.kubectl(&["get", "wd"]).await;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "READY"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row, ["w1", "3", "True"]);
}

#[tokio::test]
async fn kubectl_delete_wait_returns_once_finalizers_are_cleared() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client());
    let mut held = config_map("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let mut delete = c
        .command(
            "kubectl",
            &["delete", "configmap", "held", "--wait", "--timeout=20s"],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        delete.try_wait().unwrap().is_none(),
        "kubectl delete --wait must wait for the finalizer"
    );
    assert!(
        api.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), delete.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(api.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn kubectl_get_watch_prints_each_change() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client());
    let mut watch = c
        .command(
            "kubectl",
            &["get", "configmaps", "--watch", "--output-watch-events"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // A first object proves the watch is running before the changes under test.
    api.create(&PostParams::default(), &config_map("sentinel", &[]))
        .await
        .unwrap();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("kubectl watch starts")
            .unwrap()
            .expect("watch still running");
        if line.contains("sentinel") {
            break;
        }
    }
    api.create(&PostParams::default(), &config_map("watched", &[]))
        .await
        .unwrap();
    api.patch(
        "watched",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.delete("watched", &Default::default()).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("watch output in time")
            .unwrap()
            .expect("watch still running");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) == Some(&"watched") {
            events.push(words[0].to_string());
        }
    }
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"]);
    watch.kill().await.unwrap();
}

#[tokio::test]
async fn kubectl_creates_rbac_objects_and_auth_can_i_follows_them() {
    let c = Cluster::start().await;
    c.kubectl(&["create", "namespace", "team"]).await;
    c.kubectl(&["-n", "team", "create", "serviceaccount", "bot"])
        .await;
    c.kubectl(&[
        "-n",
        "team",
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=configmaps",
    ])
    .await;
    c.kubectl(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "bot-reads",
        "--role=reader",
        "--serviceaccount=team:bot",
    ])
    .await;
    let bot = "--as=system:serviceaccount:team:bot";
    let can = |verb: &'static str| {
        let c = &c;
        async move {
            let (_, stdout, _) = c
                .run(
                    "kubectl",
                    &["-n", "team", "auth", "can-i", verb, "configmaps", bot],
                )
                .await;
            stdout.trim().to_string()
        }
    };
    assert_eq!(can("list").await, "yes");
    assert_eq!(can("create").await, "no");
    c.kubectl(&["-n", "team", "get", "configmaps", bot]).await;
    let (ok, _, stderr) = c
        .run(
            "kubectl",
            &[
                "-n",
                "team",
                "create",
                "configmap",
                "x",
                "--from-literal=a=b",
                bot,
            ],
        )
        .await;
    assert!(!ok && stderr.contains("forbidden"), "{stderr}");
    let denied =
        c.sb.audit_log()
            .into_iter()
            .find(|e| !e.allowed)
            .expect("the refusal is audited");
    assert_eq!(
        (
            denied.user.as_str(),
            denied.verb.as_str(),
            denied.resource.as_str(),
            denied.namespace.as_str(),
            denied.code
        ),
        (
            "system:serviceaccount:team:bot",
            "create",
            "configmaps",
            "team",
            403
        )
    );
}

#[tokio::test]
async fn over_tls_kubectl_presents_a_service_account_token_and_rbac_applies_to_it() {
    let c = Cluster::start_tls().await;
    assert!(c.sb.url().starts_with("https://"));
    c.kubectl(&["create", "serviceaccount", "bot"]).await;
    c.kubectl(&[
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=configmaps",
    ])
    .await;
    c.kubectl(&[
        "create",
        "rolebinding",
        "bot-reads",
        "--role=reader",
        "--serviceaccount=default:bot",
    ])
    .await;
    let token = c.kubectl(&["create", "token", "bot"]).await;
    let token_arg = format!("--token={}", token.trim());
    let whoami = c
        .kubectl(&[
            "auth",
            "whoami",
            &token_arg,
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(whoami, "system:serviceaccount:default:bot");
    c.kubectl(&["get", "configmaps", &token_arg]).await;
    let (ok, _, stderr) = c
        .run("kubectl", &["create", "configmap", "x", &token_arg])
        .await;
    assert!(!ok && stderr.contains("forbidden"), "{stderr}");
    let (ok, _, stderr) = c
        .run("kubectl", &["get", "configmaps", "--token=not-a-token"])
        .await;
    assert!(
        !ok && stderr.contains("must be logged in"),
        "401 is how kubectl says it: {stderr}"
    );
}
