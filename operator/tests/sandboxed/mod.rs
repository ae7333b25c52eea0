//! Runs `redis-operator run` as a user would, against kube-sandbox (our Kubernetes API and
//! kubelet on one machine, where every Redis pod is a real `redis-server`), and checks what
//! a user would check: the object's status and events, the pods, the HTTP API, and the Redis
//! cluster itself with `redis-cli`. The guards stop the operator and the sandbox (and with it
//! every pod's process) even when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_sandbox::{Sandbox, SandboxHandle};
use spec::RedisCluster;
use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod redis_side;
// Each test binary includes this module and uses a different part of it.
#[allow(unused_imports)]
pub use redis_side::*;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_redis-operator")
}

/// Where a test's cluster lives: a kube-sandbox of its own (CI), or the real cluster the
/// kubeconfig in `E2E_KUBECONFIG` points to (by hand, one test at a time: see
/// docs/operator.md, "Running the e2e suite against a real cluster").
pub struct Env {
    /// `None` on a real cluster: faults only the sandbox can cause are skipped there.
    pub sandbox: Option<SandboxHandle>,
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    /// Namespaces this test made (on a real cluster they are deleted when it ends).
    made: std::sync::Mutex<Vec<String>>,
}

/// The environment variable that points the suite at a real cluster.
pub const REAL_CLUSTER: &str = "E2E_KUBECONFIG";

impl Env {
    /// A sandbox with `nodes` emulated nodes (or the real cluster of `E2E_KUBECONFIG`), with
    /// the RedisCluster CRD installed.
    pub async fn start(name: &str, nodes: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("rop-kube-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (sandbox, client, kubeconfig) = match std::env::var_os(REAL_CLUSTER) {
            Some(path) => {
                let path = PathBuf::from(path);
                let config =
                    kube::config::Kubeconfig::read_from(&path).expect("E2E_KUBECONFIG reads");
                let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                    .await
                    .expect("E2E_KUBECONFIG is usable");
                let client = Client::try_from(config).expect("client");
                (None, client, path)
            }
            None => {
                // Pods' files (Redis logs among them) under the test's directory: kept
                // when the test fails, removed with it otherwise.
                let sandbox = Sandbox::builder()
                    .nodes(nodes)
                    .workloads_dir(dir.join("workloads"))
                    .start()
                    .await
                    .expect("sandbox starts");
                let client = sandbox.client().expect("client");
                let kubeconfig = dir.join("kubeconfig");
                sandbox.write_kubeconfig(&kubeconfig).expect("kubeconfig");
                (Some(sandbox), client, kubeconfig)
            }
        };
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&spec::crd_yaml()).expect("crd parses");
        Api::<CustomResourceDefinition>::all(client.clone())
            .patch(
                "redisclusters.redis.redis",
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("crd applied");
        let env = Self {
            sandbox,
            client,
            kubeconfig,
            dir,
            made: std::sync::Mutex::new(Vec::new()),
        };
        // The CRD is served once its resource answers.
        eventually(30, "the RedisCluster resource is served", || async {
            Api::<RedisCluster>::all(env.client.clone())
                .list(&ListParams::default())
                .await
                .ok()
        })
        .await;
        env
    }

    /// The sandbox, for a fault only it can cause; `None` (and a line saying the step is
    /// skipped) on a real cluster.
    pub fn sandbox_for(&self, what: &str) -> Option<&SandboxHandle> {
        if self.sandbox.is_none() {
            eprintln!("skipped on a real cluster (needs kube-sandbox): {what}");
        }
        self.sandbox.as_ref()
    }

    pub async fn namespace(&self, name: &str) {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .unwrap();
        if Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .is_ok()
        {
            self.made
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(name.to_string());
        }
    }

    pub fn clusters(&self, ns: &str) -> Api<RedisCluster> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Applies a RedisCluster manifest (YAML) the way `kubectl apply --server-side` does.
    pub async fn apply(&self, yaml: &str) -> RedisCluster {
        let rc: RedisCluster = serde_yaml::from_str(yaml).expect("manifest parses");
        let ns = rc.namespace().unwrap_or_else(|| "default".to_string());
        self.namespace(&ns).await;
        self.clusters(&ns)
            .patch(
                &rc.name_any(),
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&rc),
            )
            .await
            .expect("applied")
    }

    /// Starts the operator with `args` on top of the kubeconfig and a free HTTP port.
    pub fn operator(&self, extra: &[&str]) -> Operator {
        self.operator_as(&self.kubeconfig, extra)
    }

    /// Starts the operator with another identity's kubeconfig (a service account's token).
    pub fn operator_as(&self, kubeconfig: &std::path::Path, extra: &[&str]) -> Operator {
        let port = free_port();
        let log = self.dir.join(format!("operator-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("E2E_OPERATOR_LOG")
                    .unwrap_or_else(|_| "info,kube_client=warn,kube_runtime=warn".to_string()),
            )
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("operator starts");
        Operator {
            child: Some(child),
            port,
            log,
        }
    }

    pub async fn pods(&self, ns: &str, cluster: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={cluster}")))
            .await
            .expect("pods")
            .items
    }

    /// Events about `cluster`, as (type, reason).
    pub async fn events(&self, ns: &str, cluster: &str) -> Vec<(String, String, String)> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), ns);
        let mut out: Vec<(String, String, String)> = events
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(cluster))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect();
        let core: Api<Event> = Api::namespaced(self.client.clone(), ns);
        out.extend(
            core.list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e.involved_object.name.as_deref() == Some(cluster))
                .map(|e| {
                    (
                        e.type_.unwrap_or_default(),
                        e.reason.unwrap_or_default(),
                        e.message.unwrap_or_default(),
                    )
                }),
        );
        out
    }

    /// Waits until condition `kind` of the cluster has `status`.
    pub async fn wait_condition(
        &self,
        ns: &str,
        name: &str,
        kind: &str,
        status: &str,
        secs: u64,
    ) -> RedisCluster {
        let api = self.clusters(ns);
        eventually(secs, &format!("{ns}/{name} {kind}={status}"), || async {
            let rc = api.get(name).await.ok()?;
            let st = rc.status.as_ref()?;
            st.conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == status)
                .then_some(rc)
        })
        .await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.sandbox.is_none() {
            self.clean_real_cluster();
        }
        // A failed test keeps its operator logs for a look.
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Env {
    /// On a real cluster nothing stops with the test: its clusters (their finalizer dropped,
    /// the operator being gone) and namespaces are deleted with kubectl.
    fn clean_real_cluster(&self) {
        let kubectl =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/kubectl");
        let kubectl = if kubectl.exists() {
            kubectl
        } else {
            PathBuf::from("kubectl")
        };
        let made = self.made.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for ns in made {
            let names = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["get", "rdc", "-n", &ns, "-o", "name"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            for obj in names.lines() {
                let _ = Command::new(&kubectl)
                    .arg("--kubeconfig")
                    .arg(&self.kubeconfig)
                    .args(["patch", obj, "-n", &ns, "--type=merge"])
                    .args(["-p", r#"{"metadata":{"finalizers":null}}"#])
                    .output();
            }
            let _ = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])
                .output();
        }
    }
}

pub struct Operator {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Operator {
    /// `GET path` on the operator's HTTP API: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// The operator's log so far, without terminal color codes.
    pub fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s); returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILL: the operator dies wherever it is.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- operator log ({}) ---\n{}",
                self.log.display(),
                tail(&self.log_text(), 80)
            );
        }
        self.kill();
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `text` without ANSI escape sequences (ESC [ ... letter).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    // Chunked bodies: keep the JSON part.
    let body = match (body.find(['[', '{']), body.rfind([']', '}'])) {
        (Some(a), Some(b)) if a <= b => body[a..=b].to_string(),
        _ => body,
    };
    Some((status, body))
}

pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The (host IP, port) each pod of a cluster serves Redis on.
pub fn pod_addresses(pods: &[Pod]) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = pods
        .iter()
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            let port = p
                .spec
                .as_ref()?
                .containers
                .iter()
                .find(|c| c.name == "redis")?
                .ports
                .as_ref()?
                .iter()
                .find(|port| port.name.as_deref() == Some("redis"))?
                .container_port;
            Some((ip, u16::try_from(port).ok()?))
        })
        .collect();
    out.sort();
    out
}

impl Env {
    /// Waits until the cluster is Ready with `masters` masters and `nodes` nodes in its status
    /// (for the spec's current generation), and returns the pods' addresses.
    pub async fn wait_shape(
        &self,
        ns: &str,
        name: &str,
        masters: usize,
        nodes: usize,
        secs: u64,
    ) -> Vec<(String, u16)> {
        let api = self.clusters(ns);
        eventually(
            secs,
            &format!("{ns}/{name} ready with {masters} masters and {nodes} nodes"),
            || async {
                let rc = api.get(name).await.ok()?;
                let st = rc.status.as_ref()?;
                let ready = st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let m = st.nodes.iter().filter(|n| n.role == "master").count();
                // The status may lag behind the pods (a pass that has not seen a pod
                // replaced yet): the pods must also be where it says, each with an address.
                let shown: std::collections::BTreeSet<(String, u16)> = st
                    .nodes
                    .iter()
                    .map(|n| (n.ip.clone(), u16::try_from(n.port).unwrap_or(0)))
                    .collect();
                let addrs = pod_addresses(&self.pods(ns, name).await);
                let pods_match = addrs.len() == nodes && addrs.iter().all(|a| shown.contains(a));
                (ready
                    && st.observed_generation == rc.metadata.generation
                    && m == masters
                    && st.nodes.len() == nodes
                    && pods_match)
                    .then_some(addrs)
            },
        )
        .await
    }

    pub async fn patch_spec(&self, ns: &str, name: &str, spec: serde_json::Value) {
        self.clusters(ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "spec": spec })),
            )
            .await
            .expect("spec patched");
    }
}
