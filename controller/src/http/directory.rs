//! The cache the HTTP API answers from. The reconcile loops write into it after each
//! observation; requests only read it, so a burst of clients never reaches a backend.
//!
//! Each cluster's answer is serialised once, when what is observed changes, and published as
//! one immutable [`Published`] behind an `Arc`: a request clones the `Arc` under a read lock
//! held for a map look-up and writes out bytes that never change under it. A reader sees the
//! old list or the new one whole, never a mixture (the swap is one pointer store).

use hyper::body::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One Redis node of a cluster, as last observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeEntry {
    pub ip: String,
    pub port: u16,
    /// `"master"` or `"replica"`.
    pub role: String,
    pub node_id: String,
    /// For a replica, its master's node id.
    pub master_id: Option<String>,
    /// Slot ranges it serves, e.g. `"0-5460"`; empty for a replica.
    pub slots: String,
    pub healthy: bool,
}

/// One cluster's nodes and both answers about them, serialised when they were set.
#[derive(Debug, PartialEq, Eq)]
pub struct Published {
    /// Sorted by ip (numerically when it parses) then port.
    pub entries: Vec<NodeEntry>,
    /// `GET /cluster/nodes`: `[{"ip":…,"port":…},…]`.
    pub addresses_json: Bytes,
    /// `GET /cluster/nodes/detail`: the entries themselves.
    pub detail_json: Bytes,
}

/// The seed's response shape, exactly: no other field may appear.
#[derive(Serialize)]
struct Address<'a> {
    ip: &'a str,
    port: u16,
}

impl Published {
    fn new(entries: Vec<NodeEntry>) -> Self {
        let addresses: Vec<Address<'_>> = entries
            .iter()
            .map(|e| Address {
                ip: &e.ip,
                port: e.port,
            })
            .collect();
        // Serialising strings, numbers and options cannot fail; an empty body would only
        // ever show a bug in serde_json.
        let addresses_json = serde_json::to_vec(&addresses).unwrap_or_default().into();
        let detail_json = serde_json::to_vec(&entries).unwrap_or_default().into();
        Self {
            entries,
            addresses_json,
            detail_json,
        }
    }
}

/// What a lookup by cluster name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The cluster's nodes and its serialised answers.
    Found(Arc<Published>),
    NotFound,
    /// The name exists in several namespaces and none was given: these.
    Ambiguous(Vec<String>),
}

type Key = (String, String);

/// Nodes of every known cluster, keyed by (namespace, name). Cheap to clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    clusters: Arc<RwLock<BTreeMap<Key, Arc<Published>>>>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace what is known of cluster `namespace/name`. An empty list keeps the cluster
    /// known (it answers `[]`), unlike `remove_cluster`. Every pass calls this; the answers
    /// are serialised again only when the entries changed, outside the lock.
    pub fn set_cluster(
        &self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        mut entries: Vec<NodeEntry>,
    ) {
        entries.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        let key = (namespace.into(), name.into());
        if self
            .read()
            .get(&key)
            .is_some_and(|known| known.entries == entries)
        {
            return;
        }
        let published = Arc::new(Published::new(entries));
        self.write().insert(key, published);
    }

    // Local mode's directory lives and dies with its process; the Kubernetes controller calls
    // this when a RedisCluster is deleted.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn remove_cluster(&self, namespace: &str, name: &str) {
        self.write()
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Find cluster `name`, in `namespace` when given, otherwise in the only namespace that
    /// has it.
    pub fn lookup(&self, name: &str, namespace: Option<&str>) -> Lookup {
        let clusters = self.read();
        if let Some(ns) = namespace {
            return match clusters.get(&(ns.to_owned(), name.to_owned())) {
                Some(published) => Lookup::Found(Arc::clone(published)),
                None => Lookup::NotFound,
            };
        }
        let mut hits = clusters.iter().filter(|((_, n), _)| n == name);
        match (hits.next(), hits.next()) {
            (None, _) => Lookup::NotFound,
            (Some((_, published)), None) => Lookup::Found(Arc::clone(published)),
            (Some(_), Some(_)) => Lookup::Ambiguous(
                clusters
                    .keys()
                    .filter(|(_, n)| n == name)
                    .map(|(ns, _)| ns.clone())
                    .collect(),
            ),
        }
    }

    // A panic while holding the lock cannot leave a half-written map (every write is one
    // insert or remove), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Key, Arc<Published>>> {
        self.clusters.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<Key, Arc<Published>>> {
        self.clusters.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// `10.0.0.9` before `10.0.0.10`: addresses compare as addresses when they parse.
fn sort_key(e: &NodeEntry) -> (Option<IpAddr>, &str, u16) {
    (e.ip.parse().ok(), &e.ip, e.port)
}
