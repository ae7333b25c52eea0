//! startupProbe: liveness and readiness wait until it passes once; failing it
//! `failureThreshold` times in a row kills the container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::eventually;
use common::workloads::*;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

async fn container_status(pods: &Api<Pod>, name: &str) -> Option<ContainerStatus> {
    let p = pods.get(name).await.ok()?;
    p.status?.container_statuses?.into_iter().next()
}

#[tokio::test]
async fn liveness_waits_for_the_startup_probe_and_a_failing_startup_probe_kills_the_container() {
    let dir = common::scratch_dir("startup");
    let sb = kube_sandbox::Sandbox::builder()
        .nodes(1)
        .state_dir(&dir)
        .start()
        .await
        .unwrap();
    let pods = Api::<Pod>::default_namespaced(sb.client().unwrap());
    let exec = |cmd: &[&str], threshold: u32| json!({"exec": {"command": cmd}, "periodSeconds": 1, "failureThreshold": threshold});
    // `warm` starts once /data/warm exists; its liveness probe always fails, so it is
    // killed as soon as (and only once) the startup probe has passed.
    let warm = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "warm"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7",
            "startupProbe": exec(&["test", "-f", "/data/warm"], 60),
            "livenessProbe": exec(&["false"], 1),
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "warm"}}]}}),
    );
    // `cold` never starts: two failed startup probes kill it, again and again.
    let cold = pod_manifest(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cold"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7",
            "startupProbe": exec(&["false"], 2)}]}}),
    );
    for pod in [warm, cold] {
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    eventually(30, "warm running", || async {
        let cs = container_status(&pods, "warm").await?;
        cs.state?.running.map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cs = container_status(&pods, "warm").await.unwrap();
    assert_eq!(
        cs.restart_count, 0,
        "liveness ran before the startup probe passed"
    );
    assert_eq!((cs.started, cs.ready), (Some(false), false));

    let cold_status = eventually(30, "cold killed by its startup probe", || async {
        let cs = container_status(&pods, "cold").await?;
        (cs.restart_count >= 1).then_some(cs)
    })
    .await;
    assert_eq!(
        cold_status
            .last_state
            .unwrap()
            .terminated
            .unwrap()
            .exit_code,
        137
    );

    std::fs::write(dir.join("workloads/pvcs/default/warm/warm"), "").unwrap();
    eventually(30, "warm started, then killed by liveness", || async {
        let cs = container_status(&pods, "warm").await?;
        (cs.restart_count >= 1).then_some(())
    })
    .await;
    sb.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
