//! Leader election on a `coordination.k8s.io` Lease, small enough to read in one go.
//!
//! Every replica of the operator keeps its caches warm; only the holder of the Lease runs
//! effects and writes status. As client-go does, expiry is judged by the local clock from
//! when this process last saw the Lease change, never by comparing another process's
//! timestamps with ours, so clock skew between machines cannot make two holders. The holder
//! renews every third of the duration and stops acting once a renewal is overdue — before any
//! other replica may take the Lease over.

use crate::error::Error;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This process's identity (pod name, or host name and pid).
    pub identity: String,
    pub duration: Duration,
}

/// Whether this process holds the lease, as last established.
#[derive(Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// A leadership that is always held (a single operator with election turned off).
    pub fn always() -> Self {
        // A receiver keeps the last value after its sender is gone.
        let (_, rx) = watch::channel(true);
        metrics::gauge!(controller::telemetry::LEADER).set(1.0);
        Self { rx }
    }

    pub fn watch(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

/// Runs the election until `shutdown` turns true, then releases the lease if held.
pub fn spawn(
    client: Client,
    config: LeaseConfig,
    mut shutdown: watch::Receiver<bool>,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut elector = Elector {
            config,
            observed: None,
            renewed_at: None,
        };
        let period = elector.config.duration / 3;
        loop {
            let leader = match elector.try_acquire_or_renew(&api).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot read or write the lease");
                    // The API is out of reach: keep acting only while the last renewal is
                    // fresh enough that nobody else can have taken over yet.
                    *tx.borrow()
                        && elector
                            .renewed_at
                            .is_some_and(|t| t.elapsed() < elector.config.duration * 2 / 3)
                }
            };
            if leader != *tx.borrow() {
                tracing::info!(identity = %elector.config.identity, leader, "leadership changed");
                metrics::gauge!(controller::telemetry::LEADER).set(if leader { 1.0 } else { 0.0 });
            }
            let _ = tx.send(leader);
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        if *tx.borrow() {
            let _ = tx.send(false);
            if let Err(e) = elector.release(&api).await {
                tracing::warn!(error = %e, "leader election: cannot release the lease");
            } else {
                tracing::info!("released the leader lease");
            }
        }
    });
    (Leadership { rx }, task)
}

struct Elector {
    config: LeaseConfig,
    /// The lease's spec as last seen and when it was seen to change.
    observed: Option<(LeaseSpec, Instant)>,
    renewed_at: Option<Instant>,
}

impl Elector {
    async fn try_acquire_or_renew(&mut self, api: &Api<Lease>) -> Result<bool, Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let me = self.config.identity.clone();
        let secs = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let current = api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| Error::kube("get Lease", e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.renewed_at = Some(Instant::now());
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(Error::kube("create Lease", e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let changed = self.observed.as_ref().map(|(s, _)| s) != Some(&spec);
        if changed {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(me.as_str());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.duration, Duration::from_secs);
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, seen)| seen.elapsed() >= duration);
        if !(mine || holder.is_none() || expired) {
            return Ok(false);
        }
        let mut next = spec;
        if !mine {
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0) + 1);
        }
        next.holder_identity = Some(me);
        next.lease_duration_seconds = Some(secs);
        next.renew_time = Some(now);
        lease.spec = Some(next.clone());
        // A replace carries the resourceVersion read above: if another replica wrote in
        // between, this fails with 409 and nobody holds it twice.
        match api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observed = Some((next, Instant::now()));
                self.renewed_at = Some(Instant::now());
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(Error::kube("renew Lease", e)),
        }
    }

    async fn release(&mut self, api: &Api<Lease>) -> Result<(), Error> {
        let Some(mut lease) = api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| Error::kube("get Lease", e))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        // A released lease is free at once for the next replica.
        spec.lease_duration_seconds = Some(1);
        api.replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| Error::kube("release Lease", e))?;
        Ok(())
    }
}
