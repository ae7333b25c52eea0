//! The soak's Redis client: a writer that records every acknowledged write and reads earlier
//! ones back as it goes, a probe that asks whether every slot takes writes, and the final
//! read of everything acknowledged. Blocking (the `redis` crate's cluster client), run on
//! threads of their own.

use super::report::Miss;
use engine::slots::key_slot;
use redis::cluster::{ClusterClient, ClusterConnection};
use sim::rng::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the cluster can be reached: the addresses (`host:port`) a node of the soak may
/// listen on (a client needs one live node to learn the rest), with the password when there
/// is one. Shared by every clone, so that a soak whose nodes move (pods on Kubernetes) can
/// point the running writer at the new ones with [`Endpoints::set`].
#[derive(Debug, Clone)]
pub(super) struct Endpoints {
    addrs: Arc<RwLock<Vec<String>>>,
    password: Option<String>,
}

impl Endpoints {
    pub(super) fn new(addrs: impl IntoIterator<Item = String>, password: Option<&str>) -> Self {
        Self {
            addrs: Arc::new(RwLock::new(addrs.into_iter().collect())),
            password: password.map(str::to_owned),
        }
    }

    /// Replaces the addresses, for every clone (an empty list is ignored: a client keeps
    /// the last addresses it knew rather than none).
    pub(super) fn set(&self, addrs: Vec<String>) {
        if !addrs.is_empty() {
            *self.addrs.write().unwrap_or_else(|p| p.into_inner()) = addrs;
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.addrs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A copy (not shared) without `addr`: a frozen node accepts connections and answers
    /// nothing, so a client that starts from it waits for its timeouts first.
    pub(super) fn without(&self, addr: &str) -> Self {
        Self::new(
            self.snapshot().into_iter().filter(|a| a != addr),
            self.password.as_deref(),
        )
    }

    /// A fresh cluster connection. Short timeouts and few retries: a write to a dead or
    /// frozen master should fail fast (it is then simply not acknowledged), not hang the
    /// client for the library's default of a dozen backed-off retries.
    pub(super) fn connect(&self) -> redis::RedisResult<ClusterConnection> {
        self.connect_with(Duration::from_millis(1_000), 4)
    }

    /// `retries` also bounds the redirects (`MOVED`, `ASK`) a command follows.
    fn connect_with(
        &self,
        response_timeout: Duration,
        retries: u32,
    ) -> redis::RedisResult<ClusterConnection> {
        let urls: Vec<String> = self
            .snapshot()
            .iter()
            .map(|a| match &self.password {
                Some(pw) => format!("redis://:{pw}@{a}/"),
                None => format!("redis://{a}/"),
            })
            .collect();
        ClusterClient::builder(urls)
            .connection_timeout(Duration::from_millis(500))
            .response_timeout(response_timeout)
            .retries(retries)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()?
            .get_connection()
    }
}

pub(super) fn key(i: u64) -> String {
    format!("soak:{i}")
}

fn value(i: u64) -> String {
    format!("v{i}")
}

/// What the writer did: the keys Redis acknowledged, with when, and its read-backs.
#[derive(Debug, Default)]
pub(super) struct WriterLog {
    /// (key index, ms since the soak started), in the order written.
    pub acked: Vec<(u64, u64)>,
    pub attempts: u64,
    pub read_checks: u64,
    /// Read-backs that answered (not an error) with something else than the acknowledged
    /// value.
    pub wrong_reads: Vec<Miss>,
}

/// A thread writing `soak:i` = `vi` for i = 0, 1, 2, … at a bounded rate until stopped; after
/// every tenth acknowledged write it reads a random earlier acknowledged key back.
pub(super) struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    handle: Option<JoinHandle<WriterLog>>,
}

impl Writer {
    pub(super) fn start(endpoints: Endpoints, epoch: Instant, rate: u32, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let (flag, count) = (stop.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let mut log = WriterLog::default();
            let mut rng = Rng::new(seed);
            let mut conn = None;
            let interval = Duration::from_secs(1) / rate.max(1);
            let started = Instant::now();
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                // Paced against the start, so a stall (a failover) is not made up in a burst.
                let due = started + interval * (i.min(u64::from(u32::MAX)) as u32);
                match due.checked_duration_since(Instant::now()) {
                    Some(wait) => std::thread::sleep(wait),
                    None if Instant::now() - due > Duration::from_secs(1) => {
                        i = (started.elapsed().as_nanos() / interval.as_nanos().max(1)) as u64;
                    }
                    None => {}
                }
                let Some(c) = connection(&endpoints, &mut conn) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                log.attempts += 1;
                let n = log.attempts;
                let ok: redis::RedisResult<()> =
                    redis::cmd("SET").arg(key(n)).arg(value(n)).query(c);
                match ok {
                    Ok(()) => {
                        log.acked.push((n, epoch.elapsed().as_millis() as u64));
                        count.store(log.acked.len() as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        // A cached connection to a dead node keeps failing: start over.
                        conn = None;
                    }
                }
                i += 1;
                if log.acked.len().is_multiple_of(10) && !log.acked.is_empty() {
                    read_back(&mut log, &mut rng, &mut conn, &endpoints, epoch);
                }
            }
            log
        });
        Self {
            stop,
            acked,
            handle: Some(handle),
        }
    }

    /// Acknowledged writes so far.
    pub(super) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub(super) fn stop(mut self) -> WriterLog {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn connection<'a>(
    endpoints: &Endpoints,
    conn: &'a mut Option<ClusterConnection>,
) -> Option<&'a mut ClusterConnection> {
    if conn.is_none() {
        *conn = endpoints.connect().ok();
    }
    conn.as_mut()
}

fn read_back(
    log: &mut WriterLog,
    rng: &mut Rng,
    conn: &mut Option<ClusterConnection>,
    endpoints: &Endpoints,
    epoch: Instant,
) {
    let Some(&(n, acked_ms)) = rng.pick(&log.acked) else {
        return;
    };
    let Some(c) = connection(endpoints, conn) else {
        return;
    };
    let got: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(key(n)).query(c);
    match got {
        Ok(v) => {
            log.read_checks += 1;
            if v.as_deref() != Some(value(n).as_str()) {
                log.wrong_reads.push(Miss {
                    key: n,
                    acked_ms,
                    slot: key_slot(key(n).as_bytes()),
                    read_ms: Some(epoch.elapsed().as_millis() as u64),
                });
            }
        }
        Err(_) => *conn = None,
    }
}

/// Whether a write to each of `slots` is accepted now, through a fresh connection (a cached
/// one could still point at the node that went away); the first refusal otherwise. One
/// command per slot, not a pipeline: the client follows `ASK` for a command but not inside a
/// pipeline, and a slot being moved (or repaired) answers `ASK` for the keys it sent on,
/// which a client writes through its target.
pub(super) fn writable(
    endpoints: &Endpoints,
    slots: &[u16],
    tags: &mut SlotTags,
) -> Result<(), String> {
    // A shorter wait than the writer's: the probe runs every 100 ms and a frozen master
    // should cost it little; two retries: one redirect and one more try.
    let mut c = endpoints
        .connect_with(Duration::from_millis(300), 2)
        .map_err(|e| format!("connect: {e}"))?;
    for &s in slots {
        redis::cmd("SET")
            .arg(format!("soak-probe:{{{}}}", tags.tag(s)))
            .arg("p")
            .query::<()>(&mut c)
            .map_err(|e| format!("slot {s}: {e}"))?;
    }
    Ok(())
}

/// A hash tag per slot, found by search once and remembered.
#[derive(Debug, Default)]
pub(super) struct SlotTags(BTreeMap<u16, String>);

impl SlotTags {
    pub(super) fn tag(&mut self, slot: u16) -> &str {
        self.0.entry(slot).or_insert_with(|| {
            (0u64..)
                .map(|i| format!("t{i}"))
                .find(|t| key_slot(t.as_bytes()) == slot)
                .unwrap_or_default()
        })
    }
}

/// The acknowledged writes that do not read back now; `None` when the cluster could not be
/// read (every chunk gets 20 tries a few hundred ms apart).
pub(super) fn verify(endpoints: &Endpoints, acked: &[(u64, u64)]) -> Option<Vec<Miss>> {
    let mut conn = endpoints.connect().ok();
    let mut lost = Vec::new();
    for chunk in acked.chunks(1000) {
        let mut values: Option<Vec<Option<String>>> = None;
        for _ in 0..20 {
            if let Some(c) = conn.as_mut() {
                let mut p = redis::cluster::cluster_pipe();
                for (n, _) in chunk {
                    p.get(key(*n));
                }
                if let Ok(v) = p.query(c) {
                    values = Some(v);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(300));
            conn = endpoints.connect().ok();
        }
        for (&(n, acked_ms), v) in chunk.iter().zip(values?) {
            if v.as_deref() != Some(value(n).as_str()) {
                lost.push(Miss {
                    key: n,
                    acked_ms,
                    slot: key_slot(key(n).as_bytes()),
                    read_ms: None,
                });
            }
        }
    }
    Some(lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_tag_hashes_to_its_slot() {
        let mut tags = SlotTags::default();
        for slot in [0, 1, 5460, 16383] {
            let key = format!("soak-probe:{{{}}}", tags.tag(slot));
            assert_eq!(key_slot(key.as_bytes()), slot);
        }
    }

    #[test]
    fn new_addresses_reach_every_clone_but_not_a_copy_without_one() {
        let endpoints = Endpoints::new(["10.0.0.1:1".to_string()], None);
        let writer_side = endpoints.clone();
        let probe = endpoints.without("10.0.0.2:2");
        endpoints.set(vec!["10.0.0.2:2".into(), "10.0.0.3:3".into()]);
        assert_eq!(writer_side.snapshot(), ["10.0.0.2:2", "10.0.0.3:3"]);
        assert_eq!(probe.snapshot(), ["10.0.0.1:1"]);
        endpoints.set(Vec::new());
        assert_eq!(
            writer_side.snapshot().len(),
            2,
            "an empty answer keeps the last known"
        );
        assert_eq!(endpoints.without("10.0.0.2:2").snapshot(), ["10.0.0.3:3"]);
    }
}
