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
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(60),
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

    pub async fn start(self) -> Result<SandboxHandle, SandboxError> {
        if !self.listen.ip().is_loopback() {
            return Err(SandboxError::NotLoopback(self.listen.to_string()));
        }
        let store = Store::new(self.history_limit);
        if let Some(dir) = &self.state_dir {
            persist::load(&store, dir)?;
        }
        store::seed(&store);
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
        let server = Arc::new(Server {
            store: store.clone(),
            faults: faults.clone(),
            address: addr.to_string(),
            bookmark_interval: self.bookmark_interval,
        });
        let mut tasks = vec![
            tokio::spawn(http::serve(listener, server, stopped.clone())),
            tokio::spawn(gc::run(store.clone(), stopped.clone())),
        ];
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
            stop,
            tasks,
            state_dir: self.state_dir,
        })
    }
}

/// A running sandbox. Dropping it stops the server and its background tasks.
pub struct SandboxHandle {
    addr: SocketAddr,
    store: Arc<Store>,
    faults: Arc<crate::faults::Faults>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    state_dir: Option<PathBuf>,
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The store, for tests that need to reach under the API (e.g. compact history).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Faults to inject into the API (cut watches, 410, 409s, latency, downtime).
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.faults
    }

    /// A kube-rs client for this sandbox, default namespace `default`.
    pub fn client(&self) -> Result<kube::Client, SandboxError> {
        let url = self
            .url()
            .parse()
            .map_err(|e| SandboxError::Client(format!("{e}")))?;
        let config = kube::Config::new(url);
        kube::Client::try_from(config).map_err(|e| SandboxError::Client(e.to_string()))
    }

    /// A kubeconfig with one cluster, one admin user and one context, all `kube-sandbox`.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SandboxError> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| SandboxError::File {
            path: path.display().to_string(),
            source,
        })
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

pub fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-sandbox
  cluster:
    server: {server}
users:
- name: kube-sandbox-admin
  user:
    token: kube-sandbox-admin
contexts:
- name: kube-sandbox
  context:
    cluster: kube-sandbox
    user: kube-sandbox-admin
    namespace: default
current-context: kube-sandbox
"
    )
}
