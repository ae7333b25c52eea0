//! The Redis side of the e2e tests: `redis-cli`, a cluster client on the pods' addresses,
//! keys written and read back, a writer that records every acknowledged write.

use std::process::Command;
use std::time::Duration;

/// `redis-cli` with `args`; (success, stdout).
pub fn redis_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A cluster-aware client on the cluster's pods.
pub fn cluster_client(addrs: &[(String, u16)]) -> redis::cluster::ClusterConnection {
    let urls: Vec<String> = addrs
        .iter()
        .map(|(ip, port)| format!("redis://{ip}:{port}"))
        .collect();
    redis::cluster::ClusterClient::builder(urls)
        .retries(20)
        .build()
        .expect("client")
        .get_connection()
        .expect("connection")
}

/// Writes `n` keys `prefix:i` = i.
pub fn load_keys(c: &mut redis::cluster::ClusterConnection, prefix: &str, n: usize) {
    for i in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(i)
            .query(c)
            .expect("SET");
    }
}

/// The keys `prefix:i` (i < n) that no longer read back as i.
pub fn missing_keys(
    c: &mut redis::cluster::ClusterConnection,
    prefix: &str,
    n: usize,
) -> Vec<usize> {
    let keys: Vec<u64> = (0..n as u64).collect();
    read_back(c, prefix, &keys)
        .into_iter()
        .map(|i| i as usize)
        .collect()
}

/// The keys `prefix:i` (i in `keys`) that do not read back as i. A read that fails (a
/// connection reset, `LOADING`, `CLUSTERDOWN` while a view settles) is retried for up to
/// 30 s, so only a key that is really gone or wrong is reported; a read that never succeeds
/// fails the test as what it is, not as a lost key.
pub fn read_back(
    c: &mut redis::cluster::ClusterConnection,
    prefix: &str,
    keys: &[u64],
) -> Vec<u64> {
    let mut wrong = Vec::new();
    for &i in keys {
        let key = format!("{prefix}:{i}");
        let mut last_error = None;
        let mut value = None;
        for _ in 0..120 {
            match redis::cmd("GET").arg(&key).query::<Option<u64>>(c) {
                Ok(v) => {
                    value = Some(v);
                    break;
                }
                Err(e) => {
                    last_error = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        match value {
            Some(v) if v == Some(i) => {}
            Some(_) => wrong.push(i),
            None => panic!(
                "GET {key} kept failing for 30 s: {}",
                last_error.unwrap_or_default()
            ),
        }
    }
    wrong
}

/// Each node's role, key count and view of the cluster, for a failure message.
pub fn describe_nodes(addrs: &[(String, u16)]) -> String {
    let mut out = String::new();
    for (ip, port) in addrs {
        let port = port.to_string();
        let role = redis_cli(&["-h", ip, "-p", &port, "role"]).1;
        let dbsize = redis_cli(&["-h", ip, "-p", &port, "dbsize"]).1;
        let info = redis_cli(&["-h", ip, "-p", &port, "info", "replication"]).1;
        let nodes = redis_cli(&["-h", ip, "-p", &port, "cluster", "nodes"]).1;
        out.push_str(&format!(
            "== {ip}:{port} keys={} role={}\n{}{}\n",
            dbsize.trim(),
            role.split_whitespace().collect::<Vec<_>>().join(" "),
            info.replace('\r', ""),
            nodes
        ));
    }
    out
}

/// A client writing `w:i` = i in a thread until stopped, recording the writes Redis
/// acknowledged.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl Writer {
    pub fn start(addrs: &[(String, u16)]) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut client = cluster_client(addrs);
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && i < 1_000_000 {
                let ok: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(format!("w:{i}"))
                    .arg(i)
                    .query(&mut client);
                if ok.is_ok() {
                    acked.push(i);
                }
                i += 1;
                if i.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            acked
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the writer and returns the acknowledged writes that do not read back.
    pub fn stop_and_lost(mut self, addrs: &[(String, u16)]) -> (usize, Vec<u64>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = self
            .handle
            .take()
            .expect("writer")
            .join()
            .expect("writer thread");
        let mut client = cluster_client(addrs);
        let lost = read_back(&mut client, "w", &acked);
        (acked.len(), lost)
    }
}

/// `redis-cli --cluster check` on one node: Ok when every slot is covered and nothing is open.
pub fn cluster_check(addr: &(String, u16)) -> Result<(), String> {
    let (ok, out) = redis_cli(&["--cluster", "check", &format!("{}:{}", addr.0, addr.1)]);
    if ok
        && out.contains("[OK] All 16384 slots covered.")
        && !out.contains("[WARNING]")
        && !out.contains("[ERR]")
    {
        Ok(())
    } else {
        Err(out)
    }
}
