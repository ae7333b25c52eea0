//! The Helm chart `charts/redis-operator`, rendered by the real helm 4.1 (from
//! `scripts/kube-tools.sh`) and checked by Debian's promtool (`scripts/setup.sh` installs the
//! `prometheus` package): lint, renders with default values, with monitoring off and with
//! each Service type, schema refusals, every document parsed as the Kubernetes type it
//! claims, least-privilege RBAC, and the alerts and dashboard checked against the metrics
//! the operator and redis_exporter really export (`files/metrics-allowlist.txt`).
//! No sandbox is needed: nothing here talks to an API server.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("charts/redis-operator")
}

/// Runs helm with a HOME of its own; returns (success, stdout, stderr).
fn helm(args: &[&str]) -> (bool, String, String) {
    let home = common::scratch_dir("chart-helm");
    let out = Command::new(common::tools::tool("helm"))
        .args(args)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `helm template` of the chart as release `redis-operator` in namespace `redis-operator`,
/// with `--set` values; every rendered document as JSON.
fn render(sets: &[&str]) -> Vec<Value> {
    let chart = chart().display().to_string();
    let mut args = vec![
        "template",
        "redis-operator",
        &chart,
        "--namespace",
        "redis-operator",
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    let (ok, stdout, stderr) = helm(&args);
    assert!(ok, "helm template {sets:?} failed:\n{stderr}");
    documents(&stdout)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| {
            serde_yaml::from_value::<Value>(serde_yaml::Value::deserialize(d).unwrap()).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn kind_name(doc: &Value) -> (String, String) {
    (
        doc["kind"].as_str().unwrap_or_default().to_string(),
        doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind_name(d) == (kind.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("no {kind} {name} rendered; have {:?}", kinds(docs)))
}

fn kinds(docs: &[Value]) -> Vec<(String, String)> {
    docs.iter().map(kind_name).collect()
}

fn typed<T: DeserializeOwned>(doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap()
}

/// Parses `doc` as `T` and back: a field `T` does not know (a typo such as
/// `readOnlyRootFileSystem`) is dropped by the round trip, so the two differ.
fn round_trips_as<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let parsed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&parsed).map_err(|e| e.to_string())?;
    if &back == doc {
        Ok(())
    } else {
        Err(format!(
            "changed by a round trip through its type:\nrendered: {doc:#}\nparsed:   {back:#}"
        ))
    }
}

/// Every rendered document parses as the Kubernetes type its apiVersion and kind claim.
/// Prometheus Operator kinds (no k8s-openapi type) are checked for their required fields.
fn check_types(docs: &[Value]) {
    for doc in docs {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let result = match (api, kind) {
            ("v1", "ConfigMap") => round_trips_as::<ConfigMap>(doc),
            ("v1", "Secret") => round_trips_as::<Secret>(doc),
            ("v1", "Service") => round_trips_as::<Service>(doc),
            ("v1", "ServiceAccount") => round_trips_as::<ServiceAccount>(doc),
            ("apps/v1", "Deployment") => round_trips_as::<Deployment>(doc),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trips_as::<ClusterRole>(doc),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                round_trips_as::<ClusterRoleBinding>(doc)
            }
            ("rbac.authorization.k8s.io/v1", "Role") => round_trips_as::<Role>(doc),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trips_as::<RoleBinding>(doc),
            ("monitoring.coreos.com/v1", "ServiceMonitor") => required(
                doc,
                &["/spec/selector/matchLabels", "/spec/endpoints/0/port"],
            ),
            ("monitoring.coreos.com/v1", "PodMonitor") => required(
                doc,
                &[
                    "/spec/selector/matchLabels",
                    "/spec/podMetricsEndpoints/0/port",
                ],
            ),
            ("monitoring.coreos.com/v1", "PrometheusRule") => required(
                doc,
                &[
                    "/spec/groups/0/rules/0/alert",
                    "/spec/groups/0/rules/0/expr",
                ],
            ),
            other => Err(format!("unexpected kind {other:?}")),
        };
        if let Err(e) = result {
            panic!("{:?}: {e}", kind_name(doc));
        }
    }
}

fn required(doc: &Value, pointers: &[&str]) -> Result<(), String> {
    for p in pointers {
        if doc.pointer(p).is_none() {
            return Err(format!("missing {p}"));
        }
    }
    Ok(())
}

fn operator_deployment(docs: &[Value]) -> Deployment {
    typed(find(docs, "Deployment", "redis-operator"))
}

#[test]
fn helm_lint_passes_on_the_chart_in_strict_mode() {
    let chart = chart().display().to_string();
    let (ok, stdout, stderr) = helm(&["lint", "--strict", &chart]);
    assert!(ok, "helm lint failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
}

#[test]
fn default_values_render_the_operator_prometheus_and_grafana_each_as_the_type_it_claims() {
    let docs = render(&[]);
    check_types(&docs);
    let names = kinds(&docs);
    for (kind, name) in [
        ("Deployment", "redis-operator"),
        ("Deployment", "redis-operator-prometheus"),
        ("Deployment", "redis-operator-grafana"),
        ("Service", "redis-operator-service"),
        ("Service", "redis-operator-prometheus"),
        ("Service", "redis-operator-grafana"),
        ("ServiceAccount", "redis-operator"),
        ("ConfigMap", "redis-operator-redis-operator-alerts"),
        ("ConfigMap", "redis-operator-redis-operator-dashboards"),
    ] {
        assert!(
            names.contains(&(kind.to_string(), name.to_string())),
            "{kind} {name} missing from {names:?}"
        );
    }
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule"] {
        assert!(
            !names.iter().any(|(k, _)| k == kind),
            "{kind} is off by default"
        );
    }
    // No object is rendered twice, and the CRD comes only from crds/ (helm template leaves
    // crds/ out without --include-crds).
    let unique: BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "duplicates in {names:?}");
    assert!(!names.iter().any(|(k, _)| k == "CustomResourceDefinition"));
}

#[test]
fn the_operator_deployment_is_pinned_non_root_read_only_and_probed() {
    let docs = render(&[]);
    let deploy = operator_deployment(&docs);
    let pod = deploy.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("redis-operator"));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.unwrap_or(0) > 0);
    let c = &pod.containers[0];
    let image = c.image.clone().unwrap();
    let chart_yaml = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    let app_version: serde_yaml::Value = serde_yaml::from_str(&chart_yaml).unwrap();
    let app_version = app_version["appVersion"].as_str().unwrap().to_string();
    assert_eq!(
        image,
        format!("ghcr.io/redis-operator/redis-operator:{app_version}"),
        "the default image is the Dockerfile's build, tagged with appVersion"
    );
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.unwrap().drop.unwrap(),
        vec!["ALL".to_string()]
    );
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(path(&c.readiness_probe).as_deref(), Some("/readyz"));
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "run");
    let pair = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    assert_eq!(pair("--listen").as_deref(), Some("0.0.0.0:9090"));
    assert_eq!(
        pair("--leader-election-namespace").as_deref(),
        Some("$(POD_NAMESPACE)")
    );
    let env: BTreeSet<String> = c.env.clone().unwrap().into_iter().map(|e| e.name).collect();
    for var in ["POD_NAME", "POD_NAMESPACE"] {
        assert!(env.contains(var), "{var} from the downward API");
    }
    // Every image the chart runs is pinned.
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let d: Deployment = typed(d);
        for c in d.spec.unwrap().template.spec.unwrap().containers {
            let image = c.image.unwrap();
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{image} is not pinned"
            );
        }
    }
}

#[test]
fn the_operator_service_selects_the_operator_pods_on_port_9090_as_cluster_ip_by_default() {
    let docs = render(&[]);
    let svc: Service = typed(find(&docs, "Service", "redis-operator-service"));
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 9090);
    let selector = spec.selector.unwrap();
    let deploy = operator_deployment(&docs);
    let pod_labels = deploy
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    for (k, v) in &selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "selector {k}={v} must match the pods"
        );
    }
    // The selector is specific to the operator: the bundled Prometheus and Grafana pods
    // (same release) do not match it.
    for name in ["redis-operator-prometheus", "redis-operator-grafana"] {
        let other: Deployment = typed(find(&docs, "Deployment", name));
        let labels = other
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .labels
            .unwrap();
        assert!(
            selector.iter().any(|(k, v)| labels.get(k) != Some(v)),
            "the operator Service also selects {name}"
        );
    }
}

#[test]
fn service_type_node_port_and_load_balancer_are_honoured() {
    let docs = render(&[
        "redisOperator.service.type=NodePort",
        "redisOperator.service.nodePort=30090",
    ]);
    check_types(&docs);
    let svc: Service = typed(find(&docs, "Service", "redis-operator-service"));
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30090));

    let docs = render(&["redisOperator.service.type=LoadBalancer"]);
    check_types(&docs);
    let svc: Service = typed(find(&docs, "Service", "redis-operator-service"));
    assert_eq!(svc.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
}

#[test]
fn monitoring_off_renders_the_operator_alone() {
    let docs = render(&["prometheus.enabled=false", "grafana.enabled=false"]);
    check_types(&docs);
    let deployments: Vec<_> = kinds(&docs)
        .into_iter()
        .filter(|(k, _)| k == "Deployment")
        .collect();
    assert_eq!(
        deployments,
        vec![("Deployment".to_string(), "redis-operator".to_string())]
    );
    assert!(
        !kinds(&docs).iter().any(|(k, _)| k == "ConfigMap"),
        "no alert or dashboard ConfigMap without Prometheus and Grafana: {:?}",
        kinds(&docs)
    );
}

#[test]
fn the_schema_refuses_values_of_the_wrong_type() {
    let chart = chart().display().to_string();
    for (set, path) in [
        (
            "redisOperator.service.type=Nodeport",
            "/redisOperator/service/type",
        ),
        ("prometheus.enabled=yes", "/prometheus/enabled"),
        ("redisOperator.replicas=two", "/redisOperator/replicas"),
        ("redisOperator.image.tag=latest", "/redisOperator/image/tag"),
        ("redisOperator.sevice.type=NodePort", "/redisOperator"),
    ] {
        let (ok, _, stderr) = helm(&["template", "x", &chart, "--set", set]);
        assert!(!ok, "{set} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(path),
            "{set}: {stderr}"
        );
    }
    let (ok, _, stderr) = helm(&[
        "template",
        "x",
        &chart,
        "--set",
        "redisOperator.replicas=2",
        "--set",
        "redisOperator.leaderElection.enabled=false",
    ]);
    assert!(
        !ok && stderr.contains("needs redisOperator.leaderElection.enabled"),
        "{stderr}"
    );
}

#[test]
fn global_image_registry_replaces_the_registry_of_every_image() {
    let docs = render(&["global.imageRegistry=mirror.example:5000"]);
    let images: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .flat_map(|d| {
            let d: Deployment = typed(d);
            d.spec.unwrap().template.spec.unwrap().containers
        })
        .map(|c| c.image.unwrap())
        .collect();
    assert_eq!(images.len(), 3);
    for image in images {
        assert!(image.starts_with("mirror.example:5000/"), "{image}");
    }
}

/// The operator's permissions, as agreed with the operator (see the chart's _helpers.tpl):
/// (group, resource, verbs).
const OPERATOR_RULES: &[(&str, &str, &[&str])] = &[
    ("redis.redis", "redisclusters", &["list", "watch", "patch"]),
    ("redis.redis", "redisclusters/status", &["patch"]),
    (
        "apps",
        "statefulsets",
        &["list", "watch", "create", "patch", "delete"],
    ),
    ("", "pods", &["list", "watch", "patch", "delete"]),
    (
        "",
        "persistentvolumeclaims",
        &["list", "watch", "delete", "deletecollection"],
    ),
    ("", "services", &["create", "patch"]),
    ("policy", "poddisruptionbudgets", &["create", "patch"]),
    ("", "secrets", &["get"]),
    ("events.k8s.io", "events", &["create", "patch"]),
];

type Grants = BTreeMap<(String, String), BTreeSet<String>>;

fn grants(rules: &[PolicyRule]) -> Grants {
    let mut out = Grants::new();
    for r in rules {
        assert!(r.resource_names.is_none() && r.non_resource_urls.is_none());
        for g in r.api_groups.clone().unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                assert!(!g.contains('*') && !res.contains('*'), "wildcard in {r:?}");
                assert!(!r.verbs.iter().any(|v| v == "*"), "wildcard verb in {r:?}");
                out.entry((g.clone(), res))
                    .or_default()
                    .extend(r.verbs.iter().cloned());
            }
        }
    }
    out
}

fn expected(rules: &[(&str, &str, &[&str])]) -> Grants {
    rules
        .iter()
        .map(|(g, r, v)| {
            (
                (g.to_string(), r.to_string()),
                v.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

fn rules_of(doc: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(doc["rules"].clone()).unwrap()
}

#[test]
fn the_operator_rbac_grants_exactly_what_the_operator_calls() {
    let docs = render(&[]);
    let cluster = grants(&rules_of(find(&docs, "ClusterRole", "redis-operator")));
    let mut want = expected(OPERATOR_RULES);
    want.insert(
        ("".into(), "nodes".into()),
        BTreeSet::from(["list".to_string()]),
    );
    assert_eq!(cluster, want);
    let lease_role = find(&docs, "Role", "redis-operator-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], "redis-operator");
    assert_eq!(
        grants(&rules_of(lease_role)),
        expected(&[(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update"]
        )])
    );
    for binding in [
        find(&docs, "ClusterRoleBinding", "redis-operator"),
        find(&docs, "RoleBinding", "redis-operator-leader-election"),
    ] {
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "redis-operator", "namespace": "redis-operator"}])
        );
    }
    assert!(!cluster.contains_key(&("".into(), "pods/exec".into())));
}

#[test]
fn watching_listed_namespaces_grants_roles_there_and_only_nodes_cluster_wide() {
    let docs = render(&["redisOperator.watchNamespaces={cache,sessions}"]);
    check_types(&docs);
    let cluster = grants(&rules_of(find(&docs, "ClusterRole", "redis-operator")));
    assert_eq!(
        cluster,
        expected(&[("", "nodes", &["list"])]),
        "nothing namespaced cluster-wide"
    );
    for ns in ["cache", "sessions"] {
        let role = docs
            .iter()
            .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert_eq!(grants(&rules_of(role)), expected(OPERATOR_RULES));
        assert!(
            docs.iter()
                .any(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == ns)
        );
    }
    let args = operator_deployment(&docs)
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap();
    assert_eq!(
        args.windows(2)
            .filter(|w| w[0] == "--namespace")
            .map(|w| w[1].as_str())
            .collect::<Vec<_>>(),
        vec!["cache", "sessions"]
    );
}

#[test]
fn prometheus_operator_objects_render_on_request_with_the_charts_alerts() {
    let docs = render(&[
        "prometheus.enabled=false",
        "grafana.enabled=false",
        "monitoring.serviceMonitor.enabled=true",
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.dashboard.enabled=true",
        "monitoring.alertLabels.team=cache",
    ]);
    check_types(&docs);
    let sm = find(&docs, "ServiceMonitor", "redis-operator");
    let svc = find(&docs, "Service", "redis-operator-service");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
    let pm = find(&docs, "PodMonitor", "redis-operator-redis-exporters");
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app.kubernetes.io/managed-by": "redis-operator", "app.kubernetes.io/component": "redis-node"})
    );
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    let rule = find(&docs, "PrometheusRule", "redis-operator");
    let alerts = alert_rules(&rule["spec"]["groups"]);
    assert_eq!(
        alerts.keys().collect::<Vec<_>>(),
        alert_rules(&alerts_file()["groups"])
            .keys()
            .collect::<Vec<_>>()
    );
    for rule in alerts.values() {
        assert_eq!(rule["labels"]["team"], "cache");
        assert!(rule["labels"]["severity"].is_string());
    }
    let dash = find(
        &docs,
        "ConfigMap",
        "redis-operator-redis-operator-dashboards",
    );
    assert_eq!(dash["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value =
        serde_json::from_str(dash["data"]["redis-cluster.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["uid"], "redis-operator-cluster");
}

// ---- alerts, dashboard and the metrics behind them ----------------------------------------

fn promtool() -> PathBuf {
    let path = Path::new("/usr/bin/promtool");
    assert!(
        path.is_file(),
        "promtool is missing: run scripts/setup.sh (it installs Debian's prometheus package)"
    );
    path.to_path_buf()
}

fn promtool_ok(args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn alerts_file() -> Value {
    let text = std::fs::read_to_string(chart().join("files/alerts.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// alert name -> rule, over rule groups.
fn alert_rules(groups: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for g in groups.as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().unwrap().to_string();
            assert!(
                out.insert(name.clone(), r.clone()).is_none(),
                "{name} twice"
            );
        }
    }
    out
}

/// (metric names by section) of files/metrics-allowlist.txt.
fn allow_list() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(chart().join("files/metrics-allowlist.txt")).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        out.entry(section.clone())
            .or_default()
            .insert(line.to_string());
    }
    out
}

/// The metric names a PromQL expression refers to: identifiers outside label matchers,
/// strings and grouping clauses that are not functions, keywords or durations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "rate",
        "increase",
        "irate",
        "changes",
        "absent",
        "histogram_quantile",
        "clamp_min",
        "clamp_max",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "time",
        "vector",
        "label_values",
        "delta",
        "deriv",
        "topk",
        "bottomk",
    ];
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let (mut i, mut depth_braces, mut in_string) = (0, 0, None::<char>);
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = in_string {
            if c == q {
                in_string = None;
            }
            i += 1;
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_string = Some(c),
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => {
                // A range or subquery duration.
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            }
            '(' if after_grouping => {
                // by (...), on (...): label names.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                after_grouping = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if depth_braces == 0 {
                    if [
                        "by",
                        "without",
                        "on",
                        "ignoring",
                        "group_left",
                        "group_right",
                    ]
                    .contains(&word.as_str())
                    {
                        after_grouping = true;
                    } else if !WORDS.contains(&word.as_str()) && !word.starts_with('$') {
                        names.insert(word);
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// The dashboard's queries (panel title, expr), with Grafana's variables given values
/// Prometheus accepts.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(chart().join("files/dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap().to_string();
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            out.push((title.clone(), grafana_vars(t["expr"].as_str().unwrap())));
        }
    }
    out
}

fn grafana_vars(expr: &str) -> String {
    expr.replace("$__rate_interval", "2m")
        .replace("$namespace", ".*")
        .replace("$cluster", ".*")
}

#[test]
fn metric_names_are_read_from_promql_outside_labels_functions_and_durations() {
    assert_eq!(
        metric_names(
            r#"sum by (pod) (rate(redis_a_total{namespace=~"$namespace",x="up"}[2m])) / on (pod) group_right redis_b or up{job="j"} == 0"#
        ),
        BTreeSet::from(["redis_a_total".into(), "redis_b".into(), "up".into()])
    );
}

#[test]
fn every_alert_expression_and_dashboard_query_parses_and_names_only_exported_metrics() {
    let allowed: BTreeSet<String> = allow_list().into_values().flatten().collect();
    let alerts = alert_rules(&alerts_file()["groups"]);
    let mut exprs: Vec<(String, String)> = alerts
        .iter()
        .map(|(name, r)| {
            (
                format!("alert {name}"),
                r["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    exprs.extend(
        dashboard_queries()
            .into_iter()
            .map(|(t, e)| (format!("panel {t}"), e)),
    );
    let mut unknown = Vec::new();
    for (what, expr) in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{what}: no metric in {expr}");
        for n in names {
            if !allowed.contains(&n) {
                unknown.push(format!("{what}: {n}"));
            }
        }
    }
    assert!(unknown.is_empty(), "metrics nobody exports: {unknown:#?}");

    // promtool parses every expression: the dashboard's as recording rules.
    let dir = common::scratch_dir("chart-promql");
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, e))| serde_json::json!({"record": format!("check:query_{i}"), "expr": e}))
        .collect();
    let file = serde_json::json!({"groups": [{"name": "queries", "rules": rules}]});
    std::fs::write(
        dir.join("queries.yaml"),
        serde_yaml::to_string(&file).unwrap(),
    )
    .unwrap();
    let out = promtool_ok(&["check", "rules", "queries.yaml"], &dir);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dashboard_has_a_panel_for_each_thing_the_issue_asks_to_see() {
    let queries = dashboard_queries();
    let all: String = queries
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for metric in [
        "redis_cluster_state",
        "redis_cluster_slots_ok",
        "redis_cluster_slots_pfail",
        "redis_cluster_slots_fail",
        "redis_cluster_known_nodes",
        "redis_commands_processed_total",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_db_keys",
        "redis_evicted_keys_total",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_connected_slave_offset_bytes",
        "redis_connected_slaves",
        "redis_operator_migration_slots_pending",
        "redis_operator_effects_total",
        "redis_operator_reconcile_errors_total",
    ] {
        assert!(all.contains(metric), "no panel shows {metric}");
    }
}

#[test]
fn every_operator_metric_in_the_allow_list_is_named_in_the_operators_sources() {
    let mut sources = String::new();
    let mut stack = vec![
        repo().join("controller/src"),
        repo().join("backends"),
        repo().join("operator/src"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("tests") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let lists = allow_list();
    for name in &lists["operator"] {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            sources.contains(&format!("\"{base}\"")),
            "{name} is in the allow-list but no operator source names it"
        );
    }
}

#[test]
fn every_alert_fires_in_promtool_unit_tests_and_healthy_series_fire_none() {
    let files = chart().join("files");
    let out = promtool_ok(&["test", "rules", "alerts_test.yaml"], &files);
    assert!(out.contains("SUCCESS"), "{out}");
    let text = std::fs::read_to_string(files.join("alerts_test.yaml")).unwrap();
    let tests: Value = serde_yaml::from_str(&text).unwrap();
    let mut firing = BTreeSet::new();
    for t in tests["tests"].as_array().unwrap() {
        for case in t["alert_rule_test"].as_array().unwrap() {
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                firing.insert(case["alertname"].as_str().unwrap().to_string());
            }
        }
    }
    let alerts: BTreeSet<String> = alert_rules(&alerts_file()["groups"]).into_keys().collect();
    let never: Vec<_> = alerts.difference(&firing).collect();
    assert!(never.is_empty(), "alerts with no firing case: {never:?}");
    for wanted in [
        "RedisClusterStateNotOk",
        "RedisClusterSlotsFailing",
        "RedisNodeDown",
        "RedisMemoryNearMaxmemory",
        "RedisReplicaLinkDown",
        "RedisClusterMigrationStuck",
        "RedisOperatorReconcileFailing",
        "RedisOperatorNoLeader",
    ] {
        assert!(alerts.contains(wanted), "the issue asks for {wanted}");
    }
}

#[test]
fn the_rendered_alert_rules_and_prometheus_configuration_pass_promtool() {
    let dir = common::scratch_dir("chart-promtool");
    let data = |docs: &[Value], name: &str, key: &str| {
        find(docs, "ConfigMap", name)["data"][key]
            .as_str()
            .unwrap()
            .to_string()
    };
    let docs = render(&["monitoring.alertLabels.team=cache"]);
    std::fs::write(
        dir.join("rules.yaml"),
        data(
            &docs,
            "redis-operator-redis-operator-alerts",
            "redis-cluster.rules.yaml",
        ),
    )
    .unwrap();
    let alerts = alert_rules(&alerts_file()["groups"]).len();
    let out = promtool_ok(&["check", "rules", "rules.yaml"], &dir);
    assert!(
        out.contains(&format!("SUCCESS: {alerts} rules found")),
        "{out}"
    );

    // Kubernetes discovery (the default). Debian's promtool is built without Kubernetes
    // discovery, so the check swaps each kubernetes_sd_configs for an empty static_configs:
    // everything else (relabelling regexes, rule_files, globals) is still checked.
    let config = data(&docs, "redis-operator-prometheus", "prometheus.yml");
    let parsed: Value = serde_yaml::from_str(&config).unwrap();
    let jobs: Vec<&str> = parsed["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["redis-operator", "redis-exporters"]);
    let mut swapped = parsed.clone();
    for job in swapped["scrape_configs"].as_array_mut().unwrap() {
        let job = job.as_object_mut().unwrap();
        assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod");
        job.remove("kubernetes_sd_configs");
        job.insert(
            "static_configs".into(),
            serde_json::json!([{"targets": []}]),
        );
    }
    std::fs::write(
        dir.join("k8s.yml"),
        serde_yaml::to_string(&swapped).unwrap(),
    )
    .unwrap();
    promtool_ok(&["check", "config", "--syntax-only", "k8s.yml"], &dir);

    // The static alternative, as rendered.
    let docs = render(&[
        "prometheus.discovery=static",
        "prometheus.static.operator={10.1.0.7:9090}",
        "prometheus.static.exporters[0].targets={10.0.0.5:30000}",
        "prometheus.static.exporters[0].labels.cluster=rc",
    ]);
    check_types(&docs);
    std::fs::write(
        dir.join("static.yml"),
        data(&docs, "redis-operator-prometheus", "prometheus.yml"),
    )
    .unwrap();
    promtool_ok(&["check", "config", "--syntax-only", "static.yml"], &dir);
    assert!(
        !kinds(&docs).contains(&("ClusterRole".into(), "redis-operator-prometheus".into())),
        "static discovery needs no API access"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_kubernetes_discovery_keeps_exactly_the_operator_and_the_exporter_sidecars() {
    let docs = render(&[]);
    let config: Value = serde_yaml::from_str(
        find(&docs, "ConfigMap", "redis-operator-prometheus")["data"]["prometheus.yml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let keep = |job: usize| {
        let r = &config["scrape_configs"][job]["relabel_configs"][0];
        assert_eq!(r["action"], "keep");
        let sources: Vec<&str> = r["source_labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        (sources, r["regex"].as_str().unwrap().to_string())
    };
    // The operator pods' labels as the Deployment writes them.
    let deploy = operator_deployment(&docs);
    let tmpl = deploy.spec.unwrap().template;
    let labels = tmpl.metadata.unwrap().labels.unwrap();
    let port = tmpl.spec.unwrap().containers[0].ports.clone().unwrap()[0]
        .name
        .clone()
        .unwrap();
    let meta = |source: &str| -> String {
        if source == "__meta_kubernetes_pod_container_port_name" {
            return port.clone();
        }
        let label = source.trim_start_matches("__meta_kubernetes_pod_label_");
        labels
            .iter()
            .find(|(k, _)| k.replace(['.', '/', '-'], "_") == label)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (sources, regex) = keep(0);
    assert_eq!(
        sources
            .iter()
            .map(|s| meta(s))
            .collect::<Vec<_>>()
            .join(";"),
        regex,
        "the operator job keeps the chart's operator pods"
    );
    // The Redis pods' labels as the operator writes them.
    let (sources, regex) = keep(1);
    assert_eq!(
        sources,
        [
            "__meta_kubernetes_pod_label_app_kubernetes_io_managed_by",
            "__meta_kubernetes_pod_label_app_kubernetes_io_component",
            "__meta_kubernetes_pod_container_port_name"
        ]
    );
    assert_eq!(regex, "redis-operator;redis-node;metrics");
}

#[test]
fn a_misspelled_field_fails_the_type_check() {
    let docs = render(&[]);
    let mut doc = find(&docs, "Deployment", "redis-operator").clone();
    assert!(round_trips_as::<Deployment>(&doc).is_ok());
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] =
        Value::Bool(true);
    assert!(round_trips_as::<Deployment>(&doc).is_err());
}

#[test]
fn grafana_and_prometheus_mount_what_the_parent_chart_renders_for_them() {
    let docs = render(&[]);
    let volume_configmaps = |name: &str| -> BTreeSet<String> {
        let d: Deployment = typed(find(&docs, "Deployment", name));
        d.spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.config_map.map(|c| c.name))
            .collect()
    };
    let grafana = volume_configmaps("redis-operator-grafana");
    assert!(grafana.contains("redis-operator-redis-operator-dashboards"));
    assert!(grafana.contains("redis-operator-grafana"));
    let prometheus = volume_configmaps("redis-operator-prometheus");
    assert!(prometheus.contains("redis-operator-redis-operator-alerts"));
    assert!(prometheus.contains("redis-operator-prometheus"));
    for cm in grafana.iter().chain(&prometheus) {
        find(&docs, "ConfigMap", cm);
    }
    let datasources: Value = serde_yaml::from_str(
        find(&docs, "ConfigMap", "redis-operator-grafana")["data"]["datasources.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let svc: Service = typed(find(&docs, "Service", "redis-operator-prometheus"));
    let port = svc.spec.unwrap().ports.unwrap()[0].port;
    assert_eq!(
        datasources["datasources"][0]["url"],
        format!("http://redis-operator-prometheus:{port}")
    );
    assert_eq!(datasources["datasources"][0]["type"], "prometheus");
}
