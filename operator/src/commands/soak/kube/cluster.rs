//! The `RedisCluster` under a Kubernetes soak: its spec (patched as a user would), the
//! `redis-operator run` it runs as a child process (so it can be SIGKILLed and started again
//! like the e2e tests run it), its pods and where they run, the faults kube-sandbox injects,
//! and the engine's view of it from outside (as `simulate record` takes it).

use super::super::CmdError;
use super::super::client::Endpoints;
use super::super::driver::{Target, Undo};
use super::super::settings::Settings;
use crate::commands::local::Judgement;
use engine::SlotRange;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_backend::record::KubeRecording;
use spec::RedisCluster;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) const NAME: &str = "soak";

/// The field manager of the soak's writes (the user's, as far as the operator knows).
const MANAGER: &str = "redis-operator-soak";

/// A Redis node of the soak's cluster as the soak sees it.
#[derive(Debug, Clone)]
pub(super) struct PodNode {
    /// `<cluster>-<ordinal>-0`.
    pub pod: String,
    /// The Kubernetes node it runs on.
    pub host: Option<String>,
    /// Where its server listens (`host:port`).
    pub addr: Option<String>,
    pub id: String,
    pub master: bool,
    /// Its master's node id (replicas).
    pub master_id: Option<String>,
    /// Slots it serves, and those it is moving in or out.
    pub slots: Vec<SlotRange>,
    /// A replica whose link to its master is up (it has the master's data).
    pub synced: bool,
    /// It is sending a slot's keys to another master (`MIGRATING`).
    pub migrating: bool,
}

impl super::super::driver::MovingNode for PodNode {
    fn is_master(&self) -> bool {
        self.master
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn master_id(&self) -> Option<&str> {
        self.master_id.as_deref()
    }
    fn synced(&self) -> bool {
        self.synced
    }
    fn migrating(&self) -> bool {
        self.migrating
    }
}

pub(super) struct KubeCluster {
    pub client: Client,
    pub kubeconfig: Option<PathBuf>,
    pub namespace: String,
    pub base_port: u16,
    pub settings: Settings,
    work: PathBuf,
    http_port: u16,
    operator: Option<Child>,
    recording: Option<KubeRecording>,
}

impl KubeCluster {
    pub(super) fn new(
        client: Client,
        kubeconfig: Option<PathBuf>,
        namespace: &str,
        base_port: u16,
        work: &std::path::Path,
        http_port: u16,
    ) -> Self {
        Self {
            client,
            kubeconfig,
            namespace: namespace.to_string(),
            base_port,
            settings: Settings::initial(),
            work: work.to_path_buf(),
            http_port,
            operator: None,
            recording: None,
        }
    }

    fn clusters(&self) -> Api<RedisCluster> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Installs the CRD (as `redis-operator crd | kubectl apply` would) and the namespace,
    /// and refuses a namespace that already holds a soak's cluster.
    pub(super) async fn prepare(&self) -> Result<(), CmdError> {
        let crd: CustomResourceDefinition = serde_yaml::from_str(&spec::crd_yaml())?;
        Api::<CustomResourceDefinition>::all(self.client.clone())
            .patch(
                "redisclusters.redis.redis",
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(|e| format!("install the RedisCluster CRD: {e}"))?;
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}
        }))?;
        match Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(format!("create namespace {}: {e}", self.namespace).into()),
        }
        // The CRD is served once its resource answers.
        for _ in 0..150 {
            match self.clusters().get_opt(NAME).await {
                Ok(Some(_)) => {
                    return Err(format!(
                        "namespace {} already holds a RedisCluster {NAME}; delete it or choose \
                         another --namespace",
                        self.namespace
                    )
                    .into());
                }
                Ok(None) => return Ok(()),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Err("the RedisCluster resource is not served".into())
    }

    /// Applies the spec with [`Self::settings`] (server-side apply, the soak's field manager):
    /// creates the cluster the first time, patches it after.
    pub(super) async fn apply(&mut self) -> Result<(), CmdError> {
        let text = self
            .settings
            .manifest(NAME, Some(&self.namespace), self.base_port);
        let rc: RedisCluster = serde_yaml::from_str(&text)?;
        // The API may be cut off by the soak itself a moment ago: a few tries.
        let mut last = None;
        for _ in 0..20 {
            match self
                .clusters()
                .patch(
                    NAME,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&rc),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!(
            "patch RedisCluster {}/{NAME}: {}",
            self.namespace,
            last.map(|e| e.to_string()).unwrap_or_default()
        )
        .into())
    }

    /// Starts `redis-operator run` (this very binary) in the background, its output appended
    /// to `operator.log`.
    pub(super) fn start_operator(&mut self) -> Result<(), CmdError> {
        let mut cmd = crate::commands::soak::operator_command(
            &self.work,
            "info,kube_client=warn,kube_runtime=warn",
        )?;
        cmd.arg("run");
        if let Some(k) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        cmd.args(["--namespace", &self.namespace])
            .args(["--listen", &format!("127.0.0.1:{}", self.http_port)])
            .arg("--no-leader-election");
        self.operator = Some(
            cmd.spawn()
                .map_err(|e| format!("cannot start `redis-operator run`: {e}"))?,
        );
        Ok(())
    }

    /// The engine's view from outside, once the cluster exists (started on first use).
    async fn recording(&mut self) -> Result<&mut KubeRecording, CmdError> {
        if self.recording.is_none() {
            self.recording =
                Some(KubeRecording::start(self.client.clone(), &self.namespace, NAME).await?);
        }
        self.recording.as_mut().ok_or_else(|| "no recording".into())
    }

    /// The pods' Redis nodes, with where each runs and what it serves.
    pub(super) async fn nodes(&mut self) -> Result<Vec<PodNode>, CmdError> {
        let j = Target::judge(self).await?;
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.namespace)
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={NAME}")))
            .await?
            .items;
        let mut out = Vec::new();
        for (ord, m) in &j.observation.members {
            let Some(me) = m.redis.as_ref().and_then(|s| s.myself()) else {
                continue;
            };
            let pod = format!("{NAME}-{ord}-0");
            let host = pods
                .iter()
                .find(|p| p.name_any() == pod)
                .and_then(|p| p.spec.as_ref()?.node_name.clone());
            let mut slots = me.slots.clone();
            slots.extend(me.open_slots.iter().map(|o| SlotRange::single(o.slot())));
            out.push(PodNode {
                pod,
                host,
                addr: m.addr.as_ref().map(ToString::to_string),
                id: me.id.clone(),
                master: me.is_master(),
                master_id: me.master_id.clone(),
                slots,
                synced: !me.is_master() && m.redis.as_ref().is_some_and(|s| s.master_link_up),
                migrating: me
                    .open_slots
                    .iter()
                    .any(|o| matches!(o, engine::OpenSlot::Migrating { .. })),
            });
        }
        Ok(out)
    }

    /// Deletes a pod as `kubectl delete pod` does (gracefully: its server gets SIGTERM) and
    /// returns once it is gone (its StatefulSet makes a new one), so that a write the old
    /// server still took is not counted as the cluster being writable again.
    pub(super) async fn delete_pod(&self, pod: &str) -> Result<(), CmdError> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        let uid = api
            .get(pod)
            .await
            .map_err(|e| format!("get pod {pod}: {e}"))?
            .uid();
        api.delete(pod, &DeleteParams::default())
            .await
            .map_err(|e| format!("delete pod {pod}: {e}"))?;
        for _ in 0..1200 {
            match api.get_opt(pod).await {
                Ok(None) => return Ok(()),
                Ok(Some(p)) if p.uid() != uid => return Ok(()),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err(format!("pod {pod} was still there 2 minutes after its deletion").into())
    }

    /// Waits (at most 10 s) until nothing listens at any of `addrs` any more: a killed
    /// node's processes die on its kubelet's next pass, and until then they still serve.
    pub(super) async fn wait_unreachable(&self, addrs: &[String]) {
        for _ in 0..200 {
            let mut any = false;
            for a in addrs {
                let connect = tokio::net::TcpStream::connect(a.as_str());
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
                    any = true;
                }
            }
            if !any {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts a fault to kube-sandbox (`POST /sandbox/faults`, as `kube-sandbox fault` does).
    pub(super) async fn fault(&self, fault: serde_json::Value) -> Result<(), CmdError> {
        let request = hyper::Request::post("/sandbox/faults")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(fault.to_string().into_bytes())?;
        self.client
            .request_text(request)
            .await
            .map_err(|e| format!("kube-sandbox refused the fault {fault}: {e}"))?;
        Ok(())
    }

    /// `GET path` on the operator's HTTP API: (status, body); `None` when it does not answer.
    async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.http_port))
                .await
                .ok()?;
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.ok()?;
            let text = String::from_utf8_lossy(&buf).into_owned();
            let status = text.split_whitespace().nth(1)?.parse().ok()?;
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
            Some((status, body))
        };
        tokio::time::timeout(Duration::from_secs(3), exchange)
            .await
            .ok()
            .flatten()
    }

    /// The nodes' addresses as a user gets them: `GET /cluster/nodes?clusterName=…`.
    pub(super) async fn addresses(&self) -> Vec<String> {
        let path = format!(
            "/cluster/nodes?clusterName={NAME}&namespace={}",
            self.namespace
        );
        let Some((200, body)) = self.http_get(&path).await else {
            return Vec::new();
        };
        // A chunked body: the JSON array inside.
        let json = match (body.find('['), body.rfind(']')) {
            (Some(a), Some(b)) if a <= b => &body[a..=b],
            _ => return Vec::new(),
        };
        serde_json::from_str::<Vec<serde_json::Value>>(json)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| Some(format!("{}:{}", n["ip"].as_str()?, n["port"].as_u64()?)))
            .collect()
    }

    /// Deletes the cluster (with the operator still running, so its finalizer is honoured)
    /// and waits up to 2 minutes for it to go; then stops the operator.
    pub(super) async fn teardown(&mut self, delete: bool) {
        self.recording = None;
        if delete && self.operator.is_some() {
            let _ = self.clusters().delete(NAME, &DeleteParams::default()).await;
            for _ in 0..600 {
                if matches!(self.clusters().get_opt(NAME).await, Ok(None)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Target::kill_operator(self);
    }
}

impl Target for KubeCluster {
    async fn judge(&mut self) -> Result<Judgement, CmdError> {
        let record = self.recording().await?.sample().await?;
        Ok(Judgement {
            desired: record.spec,
            observation: record.observation,
            decision: record.decision,
        })
    }

    fn kill_operator(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn start_operator(&mut self) -> Result<(), CmdError> {
        KubeCluster::start_operator(self)
    }

    fn operator_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.operator
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn ready_mark(&self) -> usize {
        0
    }

    /// What a user would check: the `RedisCluster` says `Ready` for its current generation;
    /// after a restart, the new operator's `/readyz` answers 200 too.
    async fn operator_settled(&mut self, restarted_since: Option<usize>) -> bool {
        let Ok(rc) = self.clusters().get(NAME).await else {
            return false;
        };
        let ready = rc.status.as_ref().is_some_and(|st| {
            st.observed_generation == rc.metadata.generation
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        ready
            && (restarted_since.is_none()
                || matches!(self.http_get("/readyz").await, Some((200, _))))
    }

    async fn undo(&mut self, undo: &Undo) -> Result<(), CmdError> {
        match undo {
            Undo::StartOperator => KubeCluster::start_operator(self),
            Undo::StartNode(node) => self.fault(serde_json::json!({ "startNode": node })).await,
            Undo::Continue { pid, .. } => {
                Err(format!("a Kubernetes soak freezes no process ({pid})").into())
            }
        }
    }

    async fn refresh(&mut self, endpoints: &Endpoints) {
        endpoints.set(self.addresses().await);
    }
}
