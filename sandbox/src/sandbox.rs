//! Starting and stopping a sandbox in-process, and the kubeconfig clients use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::SandboxError;
use crate::http::{self, Server};
use crate::store::{self, Store};
use crate::{gc, persist};

/// Configures a sandbox before it starts.
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    listen: SocketAddr,
    state_dir: Option<PathBuf>,
    history_limit: usize,
    bookmark_interval: Duration,
    anonymous_is_admin: bool,
    tls: bool,
    nodes: usize,
    workloads_dir: Option<PathBuf>,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(60),
            anonymous_is_admin: true,
            tls: false,
            nodes: 0,
            workloads_dir: None,
        }
    }
}

pub struct Sandbox;

impl Sandbox {
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }
}

impl SandboxBuilder {
    /// Address to serve on; it must be a loopback address (port 0 picks a free one).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// How many changes watches can resume across; older versions get 410 Gone.
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n;
        self
    }

    /// How often an idle watch that asked for bookmarks gets one.
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    /// Whether a request without a bearer token acts as the admin (the default, since
    /// kubectl and helm send no token over plain HTTP) or as `system:anonymous`.
    pub fn anonymous_is_admin(mut self, yes: bool) -> Self {
        self.anonymous_is_admin = yes;
        self
    }

    /// Serve HTTPS with a sandbox CA (kept in the state dir when there is one); the
    /// kubeconfig and clients then trust that CA.
    pub fn tls(mut self, yes: bool) -> Self {
        self.tls = yes;
        self
    }

    /// Emulated nodes `node-0..n-1` with a scheduler, the StatefulSet controller and a
    /// kubelet that runs pods as local processes. Zero (the default for the builder) serves
    /// the API alone, so pods stay as written.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Where the kubelet keeps pods' files (volumes, container logs). By default they live
    /// under the state dir, or in a temporary directory removed at the end; a test sets it
    /// to keep the Redis logs of a failed run.
    pub fn workloads_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workloads_dir = Some(dir.into());
        self
    }

    pub async fn start(self) -> Result<SandboxHandle, SandboxError> {
        if !self.listen.ip().is_loopback() {
            return Err(SandboxError::NotLoopback(self.listen.to_string()));
        }
        let store = Store::new(self.history_limit);
        if let Some(dir) = &self.state_dir {
            persist::load(&store, dir)?;
        }
        store::seed(&store);
        // Controllers' first pass, before any client is served (e.g. the seeded
        // namespaces' default service accounts).
        gc::sweep(&store);
        let listener =
            TcpListener::bind(self.listen)
                .await
                .map_err(|source| SandboxError::Bind {
                    addr: self.listen.to_string(),
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: self.listen.to_string(),
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let faults = crate::faults::Faults::new(store.clone());
        let tokens = Arc::new(crate::auth::Tokens::new(self.anonymous_is_admin));
        let tls = match (&self.tls, &self.state_dir) {
            (false, _) => None,
            (true, Some(dir)) => Some(crate::tls::TlsMaterial::in_dir(dir)?),
            (true, None) => Some(crate::tls::TlsMaterial::generate()?),
        };
        let acceptor = tls
            .as_ref()
            .map(crate::tls::TlsMaterial::acceptor)
            .transpose()?;
        let audit = Arc::new(crate::audit::AuditLog::new(100_000));
        // Where the kubelet keeps pods' files; the API reads container logs from there.
        let workloads = (self.nodes > 0).then(|| match (&self.workloads_dir, &self.state_dir) {
            (Some(dir), _) => (dir.clone(), false),
            (None, Some(dir)) => (dir.join("workloads"), false),
            (None, None) => (
                std::env::temp_dir().join(format!(
                    "kube-sandbox-workloads-{}-{}",
                    std::process::id(),
                    crate::object::random_suffix()
                )),
                true,
            ),
        });
        let server = Arc::new(Server {
            store: store.clone(),
            workloads: workloads.as_ref().map(|(root, _)| root.clone()),
            faults: faults.clone(),
            tokens: tokens.clone(),
            audit: audit.clone(),
            address: addr.to_string(),
            bookmark_interval: self.bookmark_interval,
        });
        let mut tasks = vec![
            tokio::spawn(http::serve(listener, server, acceptor, stopped.clone())),
            tokio::spawn(gc::run(store.clone(), stopped.clone())),
        ];
        if let Some((root, remove_root)) = workloads {
            let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
            let cfg = crate::cluster::ClusterConfig {
                nodes: self.nodes,
                root,
                remove_root,
                tokens: tokens.clone(),
                kubeconfig: kubeconfig_yaml(&url, tls.as_ref().map(|t| t.ca_pem.as_str())),
                api_url: url,
                faults: faults.workloads.clone(),
            };
            let ctl = crate::controllers::Ctl {
                store: store.clone(),
                addrs: Arc::new(crate::addresses::Addresses::pick()),
            };
            tasks.push(tokio::spawn(crate::cluster::run(ctl, cfg, stopped.clone())));
        }
        if let Some(dir) = &self.state_dir {
            tasks.push(tokio::spawn(persist::run(
                store.clone(),
                dir.clone(),
                stopped.clone(),
            )));
        }
        tracing::info!(%addr, "kube-sandbox API serving");
        Ok(SandboxHandle {
            addr,
            store,
            faults,
            tokens,
            audit,
            stop,
            tasks,
            state_dir: self.state_dir,
            tls,
        })
    }
}

/// A running sandbox. Dropping it stops the server and its background tasks.
pub struct SandboxHandle {
    tls: Option<crate::tls::TlsMaterial>,
    addr: SocketAddr,
    store: Arc<Store>,
    faults: Arc<crate::faults::Faults>,
    tokens: Arc<crate::auth::Tokens>,
    audit: Arc<crate::audit::AuditLog>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    state_dir: Option<PathBuf>,
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The store, for tests that need to reach under the API (e.g. compact history).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Faults to inject into the API (cut watches, 410, 409s, latency, downtime).
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.faults
    }

    /// Faults for running pods: kill a container, stop or start a node.
    pub fn workload_faults(&self) -> &crate::workload_faults::WorkloadFaults {
        &self.faults.workloads
    }

    /// Every process id the kubelet has started, for checking that none outlives the sandbox.
    pub fn started_pids(&self) -> Vec<u32> {
        self.faults.workloads.started_pids()
    }

    /// A kube-rs client for this sandbox as the admin user, default namespace `default`.
    pub fn client(&self) -> Result<kube::Client, SandboxError> {
        self.client_with_token(crate::auth::ADMIN_TOKEN)
    }

    /// A kube-rs client that presents `token` (e.g. from
    /// [`SandboxHandle::service_account_token`]).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, SandboxError> {
        let url = self
            .url()
            .parse()
            .map_err(|e| SandboxError::Client(format!("{e}")))?;
        let mut config = kube::Config::new(url);
        if let Some(tls) = &self.tls {
            config.root_cert = Some(vec![tls.ca_der()?]);
        }
        let value = hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| SandboxError::Client(e.to_string()))?;
        config.headers.push((hyper::header::AUTHORIZATION, value));
        kube::Client::try_from(config).map_err(|e| SandboxError::Client(e.to_string()))
    }

    /// A token for the service account `namespace/name`, as the TokenRequest API gives.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.tokens.issue(namespace, name)
    }

    /// Every resource request so far (most recent last): who, what, allowed, answer code.
    pub fn audit_log(&self) -> Vec<crate::audit::AuditEntry> {
        self.audit.entries()
    }

    /// A kubeconfig with one cluster, one admin user and one context, all `kube-sandbox`.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url(), self.tls.as_ref().map(|t| t.ca_pem.as_str()))
    }

    /// The same kubeconfig presenting `token` instead of the admin's.
    pub fn kubeconfig_yaml_with_token(&self, token: &str) -> String {
        self.kubeconfig_yaml().replace(
            &format!("token: {}", crate::auth::ADMIN_TOKEN),
            &format!("token: {token}"),
        )
    }

    /// Writes the kubeconfig to `path` whole (through a temporary file and a rename), so a
    /// client waiting for the file never reads half of it.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SandboxError> {
        let file_err = |source| SandboxError::File {
            path: path.display().to_string(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, self.kubeconfig_yaml()).map_err(file_err)?;
        std::fs::rename(&tmp, path).map_err(file_err)
    }

    /// Stops serving, waits for the tasks and saves state when a state dir is set.
    pub async fn stop(mut self) -> Result<(), SandboxError> {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(dir) = &self.state_dir {
            persist::save(&self.store, dir)?;
        }
        Ok(())
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A kubeconfig for the admin user at `server`; `ca_pem` is the CA to trust for https.
pub fn kubeconfig_yaml(server: &str, ca_pem: Option<&str>) -> String {
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                crate::protobuf::base64(pem.as_bytes())
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-sandbox
  cluster:
    server: {server}{ca}
users:
- name: kube-sandbox-admin
  user:
    token: {token}
contexts:
- name: kube-sandbox
  context:
    cluster: kube-sandbox
    user: kube-sandbox-admin
    namespace: default
current-context: kube-sandbox
",
        token = crate::auth::ADMIN_TOKEN
    )
}
