//! Faults tests can inject into the API: cut every watch stream, make watch resumes fail
//! with 410 Gone, fail the next writes of a resource with 409 or 500, delay every request, or
//! answer 503 for a while. Reachable from Rust (`SandboxHandle::faults`) and over HTTP
//! (`POST /sandbox/faults`, used by `kube-sandbox fault`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::store::Store;

#[derive(Default)]
struct State {
    latency: Duration,
    /// Writes left to fail, per plural resource.
    conflicts: HashMap<String, u32>,
    /// Writes left to fail with 500, per plural resource.
    errors: HashMap<String, u32>,
    down_until: Option<Instant>,
}

pub struct Faults {
    state: Mutex<State>,
    /// Bumped to end every open watch stream.
    cut: watch::Sender<u64>,
    store: Arc<Store>,
    /// Faults for running pods and nodes (used when the sandbox has nodes).
    pub workloads: Arc<crate::workload_faults::WorkloadFaults>,
}

impl Faults {
    pub fn new(store: Arc<Store>) -> Arc<Faults> {
        let (cut, _) = watch::channel(0);
        Arc::new(Faults {
            state: Mutex::new(State::default()),
            cut,
            store,
            workloads: Arc::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every open watch; clients resume from the last version they saw.
    pub fn cut_watches(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// A receiver whose change means "end this watch".
    pub fn watch_cuts(&self) -> watch::Receiver<u64> {
        self.cut.subscribe()
    }

    /// Forgets the event history, so resuming any watch gets 410 Gone; with
    /// [`Faults::cut_watches`] every watcher has to list again.
    pub fn compact(&self) {
        self.store.compact();
    }

    /// The next `count` writes (create, update, patch, delete) of `resource` (a plural such
    /// as `configmaps`) fail with 409 Conflict.
    pub fn inject_conflicts(&self, resource: &str, count: u32) {
        self.lock().conflicts.insert(resource.to_string(), count);
    }

    /// The next `count` writes of `resource` fail with 500 InternalError, as an API server
    /// whose storage hiccups answers.
    pub fn inject_errors(&self, resource: &str, count: u32) {
        self.lock().errors.insert(resource.to_string(), count);
    }

    /// Every request waits this long before it is handled (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Answers every request with 503 for `duration` and ends open watches.
    pub fn api_down_for(&self, duration: Duration) {
        self.lock().down_until = Some(Instant::now() + duration);
        self.cut_watches();
    }

    pub fn latency(&self) -> Duration {
        self.lock().latency
    }

    pub fn is_down(&self) -> bool {
        self.lock()
            .down_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Consumes one injected conflict for `resource`, if any is left.
    pub fn take_conflict(&self, resource: &str) -> bool {
        take(&mut self.lock().conflicts, resource)
    }

    /// Consumes one injected 500 for `resource`, if any is left.
    pub fn take_error(&self, resource: &str) -> bool {
        take(&mut self.lock().errors, resource)
    }

    /// Applies a request of the control endpoint:
    /// `{"cutWatches": true, "compact": true, "latencyMs": N, "downForMs": N,
    ///   "conflicts": {"resource": "configmaps", "count": N},
    ///   "errors": {"resource": "pods", "count": N},
    ///   "killContainer": {"namespace": NS, "pod": NAME, "container": NAME?},
    ///   "stopNode": NODE, "killNode": NODE, "startNode": NODE}`, any subset (a node is
    ///   stopped or killed before it is started).
    pub fn apply(&self, req: &Value) -> Result<Value, ApiError> {
        if !req.is_object() {
            return Err(ApiError::BadRequest(
                "a fault request is a JSON object".into(),
            ));
        }
        if let Some(ms) = req.get("latencyMs") {
            let ms = ms
                .as_u64()
                .ok_or_else(|| ApiError::BadRequest("latencyMs must be a whole number".into()))?;
            self.set_latency(Duration::from_millis(ms));
        }
        if let Some(c) = req.get("conflicts") {
            let resource = c["resource"].as_str().filter(|r| !r.is_empty());
            let count = c["count"].as_u64().and_then(|n| u32::try_from(n).ok());
            match (resource, count) {
                (Some(r), Some(n)) => self.inject_conflicts(r, n),
                _ => {
                    return Err(ApiError::BadRequest(
                        "conflicts needs a resource and a count".into(),
                    ));
                }
            }
        }
        if let Some(k) = req.get("killContainer") {
            let (Some(ns), Some(pod)) = (k["namespace"].as_str(), k["pod"].as_str()) else {
                return Err(ApiError::BadRequest(
                    "killContainer needs a namespace and a pod".into(),
                ));
            };
            self.workloads
                .kill_container(ns, pod, k["container"].as_str());
        }
        if let Some(node) = req["stopNode"].as_str() {
            self.workloads.stop_node(node);
        }
        if let Some(node) = req["killNode"].as_str() {
            self.workloads.kill_node(node);
        }
        if let Some(node) = req["startNode"].as_str() {
            self.workloads.start_node(node);
        }
        if req["compact"].as_bool() == Some(true) {
            self.compact();
        }
        if req["cutWatches"].as_bool() == Some(true) {
            self.cut_watches();
        }
        if let Some(ms) = req.get("downForMs") {
            let ms = ms
                .as_u64()
                .ok_or_else(|| ApiError::BadRequest("downForMs must be a whole number".into()))?;
            self.api_down_for(Duration::from_millis(ms));
        }
        if let Some(c) = req.get("errors") {
            let resource = c["resource"].as_str().filter(|r| !r.is_empty());
            let count = c["count"].as_u64().and_then(|n| u32::try_from(n).ok());
            match (resource, count) {
                (Some(r), Some(n)) => self.inject_errors(r, n),
                _ => {
                    return Err(ApiError::BadRequest(
                        "errors needs a resource and a count".into(),
                    ));
                }
            }
        }
        Ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}))
    }
}

/// Takes one from `resource`'s counter when it has any left.
fn take(counters: &mut HashMap<String, u32>, resource: &str) -> bool {
    match counters.get_mut(resource) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}
