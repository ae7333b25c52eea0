//! The endpoints plan over objects as the store lists them: what it writes, and that a
//! plan over its own result writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;

fn service(extra_spec: Value) -> Value {
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "db"},
            "ports": [{"name": "redis", "port": 6380, "targetPort": "redis", "protocol": "TCP"}]},
    });
    if let (Some(spec), Some(extra)) = (svc["spec"].as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    svc
}

fn pod(name: &str, ip: &str, ready: bool, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"), "labels": labels},
        "spec": {"nodeName": "node-0", "containers": [{"name": "redis",
            "ports": [{"name": "redis", "containerPort": 6379, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

/// Applies a plan to the lists as the store would (creates append, updates overwrite the
/// owned fields, deletes remove).
fn apply(actions: Vec<Action>, endpoints: &mut Vec<Value>, slices: &mut Vec<Value>) {
    for action in actions {
        match action {
            Action::Create { kind, object } => match kind {
                Kind::Endpoints => endpoints.push(object),
                Kind::EndpointSlice => slices.push(object),
            },
            Action::Update { kind, desired } => {
                let list = if kind == Kind::Endpoints {
                    &mut *endpoints
                } else {
                    &mut *slices
                };
                let live = list
                    .iter_mut()
                    .find(|o| object::name(o) == object::name(&desired))
                    .expect("updated object exists");
                overwrite(live, &desired, kind);
            }
            Action::Delete { kind, name, .. } => {
                let list = if kind == Kind::Endpoints {
                    &mut *endpoints
                } else {
                    &mut *slices
                };
                list.retain(|o| object::name(o) != name);
            }
        }
    }
}

#[test]
fn ready_and_not_ready_pods_land_in_their_lists_with_the_named_target_port_resolved() {
    let pods = vec![
        pod("db-1", "127.9.1.2", false, json!({"app": "db"})),
        pod("db-0", "127.9.1.1", true, json!({"app": "db"})),
        pod("other", "127.9.1.3", true, json!({"app": "other"})),
    ];
    let actions = plan(&[service(json!({}))], &pods, &[], &[]);
    let (mut eps, mut slices) = (Vec::new(), Vec::new());
    apply(actions, &mut eps, &mut slices);
    assert_eq!(eps.len(), 1);
    let subset = &eps[0]["subsets"][0];
    assert_eq!(subset["addresses"][0]["ip"], "127.9.1.1");
    assert_eq!(subset["addresses"][0]["targetRef"]["name"], "db-0");
    assert_eq!(subset["addresses"][0]["nodeName"], "node-0");
    assert_eq!(subset["notReadyAddresses"][0]["ip"], "127.9.1.2");
    assert_eq!(
        subset["ports"],
        json!([{"name": "redis", "port": 6379, "protocol": "TCP"}])
    );
    assert_eq!(eps[0]["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
    assert_eq!(eps[0]["metadata"]["labels"]["team"], "a");

    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    assert!(object::name(s).starts_with("db-"));
    assert_eq!(s["metadata"]["labels"]["kubernetes.io/service-name"], "db");
    assert_eq!(s["addressType"], "IPv4");
    assert_eq!(s["ports"][0]["port"], 6379);
    assert_eq!(s["endpoints"][0]["addresses"], json!(["127.9.1.1"]));
    assert_eq!(s["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(s["endpoints"][1]["conditions"]["ready"], false);
    assert_eq!(s["endpoints"][1]["conditions"]["serving"], false);
}

#[test]
fn a_plan_over_its_own_result_writes_nothing() {
    let svc = service(json!({}));
    let pods = vec![
        pod("db-0", "127.9.1.1", true, json!({"app": "db"})),
        pod("db-1", "127.9.1.2", false, json!({"app": "db"})),
    ];
    let (mut eps, mut slices) = (Vec::new(), Vec::new());
    apply(
        plan(std::slice::from_ref(&svc), &pods, &eps, &slices),
        &mut eps,
        &mut slices,
    );
    assert_eq!(
        plan(std::slice::from_ref(&svc), &pods, &eps, &slices),
        Vec::new()
    );
    // A change of readiness is one update of each object, and then nothing again.
    let pods = vec![
        pod("db-0", "127.9.1.1", true, json!({"app": "db"})),
        pod("db-1", "127.9.1.2", true, json!({"app": "db"})),
    ];
    let actions = plan(std::slice::from_ref(&svc), &pods, &eps, &slices);
    assert_eq!(actions.len(), 2, "{actions:?}");
    apply(actions, &mut eps, &mut slices);
    assert_eq!(plan(&[svc], &pods, &eps, &slices), Vec::new());
}

#[test]
fn publish_not_ready_addresses_lists_every_pod_as_ready() {
    let svc = service(json!({"publishNotReadyAddresses": true}));
    let pods = vec![pod("db-0", "127.9.1.1", false, json!({"app": "db"}))];
    let (mut eps, mut slices) = (Vec::new(), Vec::new());
    apply(plan(&[svc], &pods, &[], &[]), &mut eps, &mut slices);
    assert_eq!(eps[0]["subsets"][0]["addresses"][0]["ip"], "127.9.1.1");
    assert!(eps[0]["subsets"][0].get("notReadyAddresses").is_none());
    assert_eq!(slices[0]["endpoints"][0]["conditions"]["ready"], true);
}

#[test]
fn a_terminating_pod_leaves_the_endpoints_but_stays_in_the_slice_as_terminating() {
    let mut gone = pod("db-0", "127.9.1.1", true, json!({"app": "db"}));
    gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let (mut eps, mut slices) = (Vec::new(), Vec::new());
    apply(
        plan(&[service(json!({}))], &[gone], &[], &[]),
        &mut eps,
        &mut slices,
    );
    assert!(eps[0].get("subsets").is_none(), "{}", eps[0]);
    let conditions = &slices[0]["endpoints"][0]["conditions"];
    assert_eq!(conditions["terminating"], true);
    assert_eq!(conditions["ready"], false);
    assert_eq!(conditions["serving"], true);
}

#[test]
fn a_pod_without_the_named_port_or_an_address_is_no_endpoint_and_the_slice_stays_as_a_placeholder()
{
    let mut no_port = pod("db-0", "127.9.1.1", true, json!({"app": "db"}));
    no_port["spec"]["containers"][0]["ports"] = json!([]);
    let mut no_ip = pod("db-1", "", true, json!({"app": "db"}));
    no_ip["status"].as_object_mut().unwrap().remove("podIP");
    let (mut eps, mut slices) = (Vec::new(), Vec::new());
    apply(
        plan(&[service(json!({}))], &[no_port, no_ip], &[], &[]),
        &mut eps,
        &mut slices,
    );
    assert!(eps[0].get("subsets").is_none());
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0]["endpoints"], json!([]));
}

#[test]
fn services_without_a_selector_and_slices_of_other_managers_are_left_alone() {
    let mut bare = service(json!({}));
    bare["spec"].as_object_mut().unwrap().remove("selector");
    let foreign = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-manual", "namespace": "ns",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4", "endpoints": []});
    assert_eq!(
        plan(&[bare], &[], &[], std::slice::from_ref(&foreign)),
        Vec::new()
    );
    // With a selector, the controller makes its own slice and still leaves the other one.
    let actions = plan(&[service(json!({}))], &[], &[], &[foreign]);
    assert!(
        actions.iter().all(|a| !matches!(a, Action::Delete { .. })),
        "{actions:?}"
    );
}

#[test]
fn headless_services_mark_their_endpoints_and_statefulset_pods_get_hostnames() {
    let svc = service(json!({"clusterIP": "None"}));
    let mut p = pod("db-0", "127.9.1.1", true, json!({"app": "db"}));
    p["spec"]["hostname"] = json!("db-0");
    p["spec"]["subdomain"] = json!("db");
    let (mut eps, mut slices) = (Vec::new(), Vec::new());
    apply(plan(&[svc], &[p], &[], &[]), &mut eps, &mut slices);
    assert_eq!(
        eps[0]["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    assert_eq!(eps[0]["subsets"][0]["addresses"][0]["hostname"], "db-0");
    assert_eq!(slices[0]["endpoints"][0]["hostname"], "db-0");
}
