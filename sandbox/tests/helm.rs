//! The real helm 4.1 against the sandbox: install, upgrade and uninstall of a chart with a
//! CRD in `crds/`. helm comes from `scripts/kube-tools.sh` (run by `scripts/setup.sh`);
//! without it this test fails and says so.
#![allow(clippy::unwrap_used)]

mod common;

use common::tools::Cluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

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
