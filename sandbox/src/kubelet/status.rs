//! A container's state as the kubelet tracks it, and the Pod status built from it.

use serde_json::{Value, json};

use crate::scheduler::set_condition;

#[derive(Debug, Clone)]
pub enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

impl State {
    pub fn waiting(reason: &str, message: impl Into<String>) -> State {
        State::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                started_at,
                finished_at,
            } => json!({
                "terminated": {"exitCode": exit_code, "reason": reason,
                    "startedAt": started_at, "finishedAt": finished_at}
            }),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, State::Running { .. })
    }
}

/// What the Pod status needs to know about one container.
pub struct ContainerView<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub pid: Option<u32>,
    pub state: &'a State,
    pub last: Option<&'a State>,
    pub restarts: u32,
    pub ready: bool,
    /// Running, and past its startup probe when it has one.
    pub started: bool,
    /// Exited for good (restartPolicy says no restart).
    pub done: bool,
}

/// The status a kubelet reports, starting from the stored one so condition transition
/// times survive.
pub fn pod_status(
    previous: &Value,
    pod_ip: &str,
    host_ip: &str,
    started: &str,
    init: &[ContainerView<'_>],
    containers: &[ContainerView<'_>],
) -> Value {
    let mut status = if previous.is_object() {
        previous.clone()
    } else {
        json!({})
    };
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    let any_running = containers.iter().any(|c| c.state.is_running());
    let all_done = !containers.is_empty() && containers.iter().all(|c| c.done);
    let succeeded =
        |c: &ContainerView<'_>| c.done && matches!(c.state, State::Terminated { exit_code: 0, .. });
    let initialized = init.iter().all(succeeded);
    let init_failed = init.iter().any(|c| c.done && !succeeded(c));
    let phase = if init_failed {
        "Failed"
    } else if !initialized {
        "Pending"
    } else if all_done {
        let ok = containers
            .iter()
            .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
        if ok { "Succeeded" } else { "Failed" }
    } else if any_running || containers.iter().any(|c| c.restarts > 0) {
        "Running"
    } else {
        "Pending"
    };
    status["phase"] = json!(phase);
    status["podIP"] = json!(pod_ip);
    status["podIPs"] = json!([{"ip": pod_ip}]);
    status["hostIP"] = json!(host_ip);
    status["hostIPs"] = json!([{"ip": host_ip}]);
    status["startTime"] = json!(started);
    status["qosClass"] = json!("BestEffort");
    let truth = |b: bool| if b { "True" } else { "False" };
    set_condition(&mut status, "PodScheduled", "True", None, None);
    let init_reason = (!initialized).then_some("ContainersNotInitialized");
    set_condition(
        &mut status,
        "Initialized",
        truth(initialized),
        init_reason,
        None,
    );
    let reason = (!all_ready).then_some("ContainersNotReady");
    set_condition(
        &mut status,
        "ContainersReady",
        truth(all_ready),
        reason,
        None,
    );
    set_condition(&mut status, "Ready", truth(all_ready), reason, None);
    if !init.is_empty() {
        status["initContainerStatuses"] = statuses(init);
    }
    status["containerStatuses"] = statuses(containers);
    status
}

fn statuses(containers: &[ContainerView<'_>]) -> Value {
    Value::Array(
        containers
            .iter()
            .map(|c| {
                let mut s = json!({
                    "name": c.name, "image": c.image, "imageID": "",
                    "ready": c.ready, "started": c.started,
                    "restartCount": c.restarts, "state": c.state.to_json(),
                    "lastState": c.last.map(State::to_json).unwrap_or_else(|| json!({})),
                });
                if let Some(pid) = c.pid {
                    s["containerID"] = json!(format!("kube-sandbox://{pid}"));
                }
                s
            })
            .collect(),
    )
}
