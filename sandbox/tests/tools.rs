//! The real kubectl 1.33 and helm 4.1 against the sandbox. Both come from
//! `scripts/kube-tools.sh` (run by `scripts/setup.sh`); without them these tests fail and
//! say so, rather than skip.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{config_map, scratch_dir};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_sandbox::{Sandbox, SandboxHandle};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("KUBE_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} is not installed at {}: run scripts/kube-tools.sh (scripts/setup.sh runs it)",
        path.display()
    );
    path
}

/// A sandbox, a kubeconfig for it, and a HOME of its own so kubectl's and helm's caches
/// never leak between tests.
struct Cluster {
    sb: SandboxHandle,
    dir: PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        let sb = Sandbox::builder().start().await.unwrap();
        let dir = scratch_dir("tools");
        sb.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        Cluster { sb, dir }
    }

    fn command(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool(name));
        cmd.args(args)
            .current_dir(&self.dir)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .kill_on_drop(true);
        cmd
    }

    /// Runs a tool to completion and returns (success, stdout, stderr).
    async fn run(&self, name: &str, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(name, args).output())
            .await
            .unwrap_or_else(|_| panic!("{name} {args:?} did not finish in 60s"))
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    async fn ok(&self, name: &str, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(name, args).await;
        assert!(ok, "{name} {args:?} failed:\n{stderr}\n{stdout}");
        stdout
    }

    async fn kubectl(&self, args: &[&str]) -> String {
        self.ok("kubectl", args).await
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn client(&self) -> kube::Client {
        self.sb.client().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
async fn kubectl_patch_of_each_type_changes_a_deployment() {
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
    let d = Api::<Deployment>::default_namespaced(c.client())
        .get("d")
        .await
        .unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
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
    assert_eq!(d.metadata.generation, Some(3));
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
async fn helm_installs_upgrades_and_uninstalls_a_chart_with_a_crd() {
    let c = Cluster::start().await;
    c.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    );
    c.write("chart/values.yaml", "size: 2\n");
    c.write(
        "chart/crds/gizmo.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
",
    );
    c.write(
        "chart/templates/all.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata: {name: '{{ .Release.Name }}-config'}
data: {size: '{{ .Values.size }}'}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: '{{ .Release.Name }}-app'}
spec:
  replicas: {{ .Values.size }}
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      containers: [{name: redis, image: 'redis:7'}]
---
apiVersion: example.com/v1
kind: Gizmo
metadata: {name: '{{ .Release.Name }}-gizmo'}
spec: {size: {{ .Values.size }}}
",
    );
    let chart = c.dir.join("chart").display().to_string();
    let client = c.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());

    assert!(
        c.ok("helm", &["install", "rel", &chart])
            .await
            .contains("STATUS: deployed")
    );
    assert_eq!(
        cms.get("rel-config").await.unwrap().data.unwrap()["size"],
        "2"
    );
    let releases = secrets
        .list(&ListParams::default().labels("owner=helm,name=rel"))
        .await
        .unwrap();
    assert_eq!(
        releases.items.len(),
        1,
        "helm keeps its release in a Secret"
    );

    c.ok("helm", &["upgrade", "rel", &chart, "--set", "size=3"])
        .await;
    assert_eq!(
        deploys.get("rel-app").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    assert!(
        c.ok("helm", &["list"])
            .await
            .lines()
            .any(|l| l.starts_with("rel") && l.contains("deployed"))
    );

    c.ok("helm", &["uninstall", "rel"]).await;
    assert!(cms.get_opt("rel-config").await.unwrap().is_none());
    assert!(deploys.get_opt("rel-app").await.unwrap().is_none());
    assert!(
        secrets
            .list(&ListParams::default().labels("owner=helm"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let crds = c.kubectl(&["get", "crd", "-o", "name"]).await;
    assert!(
        crds.contains("gizmos.example.com"),
        "helm leaves crds/ CRDs in place"
    );
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
