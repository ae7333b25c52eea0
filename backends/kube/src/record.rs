//! A `RedisCluster` on Kubernetes watched for `simulate record`: its members come from the
//! same watch caches and [`KubeMembers`] the controller reads, its password from its Secret
//! as the controller reads it, and [`controller::recording::Recorder`] decides. Nothing is
//! written to the API server or to a Redis node.

use crate::controller::synced;
use crate::error::{Error, is_not_found};
use crate::members::{KubeMembers, member_caches};
use crate::password::{adapter, current_password};
use controller::recording::Recorder;
use engine::trace::TraceRecord;
use futures_util::StreamExt;
use kube::{Api, Client, ResourceExt};
use spec::RedisCluster;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long the watch caches may take to list the cluster's objects the first time.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// One cluster being recorded.
pub struct KubeRecording {
    client: Client,
    namespace: String,
    name: String,
    recorder: Recorder<KubeMembers>,
    /// The password the recorder's adapter was built with (compared, never logged).
    password: Option<String>,
    /// The watches that keep the member caches current; stopped with the recording.
    watches: Vec<JoinHandle<()>>,
}

impl KubeRecording {
    /// Finds `namespace/name` and starts watching its members. Fails with one line when the
    /// API server cannot be reached, the cluster does not exist or the caches never fill.
    pub async fn start(client: Client, namespace: &str, name: &str) -> Result<Self, Error> {
        client
            .apiserver_version()
            .await
            .map_err(|e| Error::kube("reach the API server", e))?;
        let obj = get_cluster(&client, namespace, name).await?;
        let uid = obj.uid().ok_or(Error::MissingField("metadata.uid"))?;
        let (caches, streams) = member_caches(&client, Some(namespace));
        // Errors of a watch are retried by its backoff; the recorder only needs the caches.
        let watches = vec![
            tokio::spawn(streams.pods.for_each(|_| async {})),
            tokio::spawn(streams.statefulsets.for_each(|_| async {})),
            tokio::spawn(streams.claims.for_each(|_| async {})),
        ];
        let all_synced = async {
            synced(&caches.pods).await;
            synced(&caches.statefulsets).await;
            synced(&caches.claims).await;
        };
        if tokio::time::timeout(SYNC_TIMEOUT, all_synced)
            .await
            .is_err()
        {
            watches.iter().for_each(JoinHandle::abort);
            return Err(Error::NotSynced {
                namespace: namespace.to_string(),
                secs: SYNC_TIMEOUT.as_secs(),
            });
        }
        let members = KubeMembers::new(client.clone(), namespace, name, &uid, caches);
        // A Secret that makes the spec invalid is reported by every sample, which reads it again.
        let password = current_password(&client, &obj, namespace, None, &mut Vec::new()).await;
        let redis = adapter(&obj.spec, password.clone(), namespace, name);
        Ok(Self {
            client,
            namespace: namespace.to_string(),
            name: name.to_string(),
            recorder: Recorder::new(members, redis),
            password,
            watches,
        })
    }

    /// Reads the cluster's spec and password again, observes its nodes and returns what the
    /// engine decides, executing nothing. A changed password is used from now on.
    pub async fn sample(&mut self) -> Result<TraceRecord, Error> {
        let obj = get_cluster(&self.client, &self.namespace, &self.name).await?;
        let mut problems = Vec::new();
        let last = Some(self.password.clone());
        let password = current_password(
            &self.client,
            &obj,
            &self.namespace,
            last.as_ref(),
            &mut problems,
        )
        .await;
        if password != self.password {
            self.recorder.set_redis(adapter(
                &obj.spec,
                password.clone(),
                &self.namespace,
                &self.name,
            ));
            self.password = password;
        }
        self.recorder.sample(&obj.spec, &problems).await
    }
}

impl Drop for KubeRecording {
    fn drop(&mut self) {
        self.watches.iter().for_each(JoinHandle::abort);
    }
}

async fn get_cluster(client: &Client, namespace: &str, name: &str) -> Result<RedisCluster, Error> {
    let api: Api<RedisCluster> = Api::namespaced(client.clone(), namespace);
    match api.get(name).await {
        Ok(obj) => Ok(obj),
        Err(e) if is_not_found(&e) => {
            Err(Error::NotFound(format!("RedisCluster {namespace}/{name}")))
        }
        Err(e) => Err(Error::kube(
            format!("get RedisCluster {namespace}/{name}"),
            e,
        )),
    }
}
