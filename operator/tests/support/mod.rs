//! Runs `redis-operator local` as a user would, against real `redis-server` (or Valkey, see
//! [`test_server`]) processes on
//! loopback, and checks the cluster with a cluster-aware client. Every test owns its ports
//! (client ports below 22768, bus ports +10000) and its state directory; the guard stops the
//! operator and every node even when the test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_redis-operator")
}

/// The server binary the tests run when set (`REDIS_OPERATOR_TEST_SERVER`: scripts/test.sh
/// points it at Valkey for its second run); else `local up` picks `redis-server` as a user's
/// would.
pub fn test_server() -> Option<PathBuf> {
    std::env::var_os("REDIS_OPERATOR_TEST_SERVER")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

pub struct LocalCluster {
    pub name: String,
    pub base_port: u16,
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub http_port: u16,
    operator: Option<Child>,
    /// Set with [`LocalCluster::with_password`]: the nodes require it, every command and
    /// client here uses it.
    pub password: Option<String>,
}

impl LocalCluster {
    /// Writes a manifest for `masters` x `replicas` on `base_port` in a fresh temp dir.
    pub fn new(name: &str, base_port: u16, masters: u32, replicas: u32) -> Self {
        let dir = std::env::temp_dir().join(format!("rop-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("cluster.yaml");
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n\
                 spec:\n  masters: {masters}\n  replicas: {replicas}\n  basePort: {base_port}\n  \
                 maxMemory: 256mb\n  clusterNodeTimeoutMs: 2000\n"
            ),
        )
        .unwrap();
        Self {
            name: name.into(),
            base_port,
            dir,
            manifest,
            http_port: base_port + 99,
            operator: None,
            password: None,
        }
    }

    /// The same cluster with `cluster-node-timeout` at `ms` instead of 2000.
    pub fn with_node_timeout(self, ms: u64) -> Self {
        let text = std::fs::read_to_string(&self.manifest).unwrap();
        std::fs::write(
            &self.manifest,
            text.replace(
                "clusterNodeTimeoutMs: 2000",
                &format!("clusterNodeTimeoutMs: {ms}"),
            ),
        )
        .unwrap();
        self
    }

    /// The same cluster with `requirepass` (given to `local` as `REDIS_OPERATOR_PASSWORD`).
    pub fn with_password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// A client URL for `port`, with the password when there is one.
    pub fn url(&self, port: u16) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}/"),
            None => format!("redis://127.0.0.1:{port}/"),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// `redis-operator ARGS`; a `local up` runs the test server (see [`test_server`]).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).current_dir(&self.dir).env("RUST_LOG", "warn");
        if let (["local", "up", ..], Some(server)) = (args, test_server()) {
            c.arg("--server-binary").arg(server);
        }
        if let Some(pw) = &self.password {
            c.env("REDIS_OPERATOR_PASSWORD", pw);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("redis-operator runs")
    }

    fn name_args(&self) -> Vec<String> {
        vec![
            "--name".into(),
            self.name.clone(),
            "--dir".into(),
            self.state_dir().to_string_lossy().into_owned(),
        ]
    }

    /// `local up --until-ready`: builds (or adopts) the cluster and returns once it is ready.
    pub fn up_until_ready(&self) -> Output {
        let dir = self.state_dir().to_string_lossy().into_owned();
        let manifest = self.manifest.to_string_lossy().into_owned();
        let out = self.run(&[
            "local",
            "up",
            "-f",
            &manifest,
            "--dir",
            &dir,
            "--listen",
            "off",
            "--until-ready",
            "--ready-timeout",
            "120",
        ]);
        assert!(
            out.status.success(),
            "local up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `local up` in the background (HTTP on `http_port`).
    pub fn start_operator(&mut self) {
        self.start_operator_with(&[], "info");
    }

    /// Starts `local up` in the background with `extra` arguments and `RUST_LOG=log`.
    pub fn start_operator_with(&mut self, extra: &[&str], log: &str) {
        let dir = self.state_dir().to_string_lossy().into_owned();
        let manifest = self.manifest.to_string_lossy().into_owned();
        let listen = format!("127.0.0.1:{}", self.http_port);
        let log_file = std::fs::File::create(self.dir.join("operator.log")).unwrap();
        let child = self
            .cmd(
                &[
                    &[
                        "local", "up", "-f", &manifest, "--dir", &dir, "--listen", &listen,
                    ][..],
                    extra,
                ]
                .concat(),
            )
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        self.operator = Some(child);
    }

    /// SIGKILL the background operator (the nodes keep running).
    pub fn kill_operator(&mut self) {
        if let Some(mut c) = self.operator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("operator.log")).unwrap_or_default()
    }

    pub fn scale(&self, masters: u32, replicas: u32) {
        let mut args: Vec<String> = vec!["local".into(), "scale".into()];
        args.extend(self.name_args());
        args.extend([
            "--masters".into(),
            masters.to_string(),
            "--replicas".into(),
            replicas.to_string(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "scale failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn status(&self) -> String {
        let mut args: Vec<String> = vec!["local".into(), "status".into()];
        args.extend(self.name_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `local status` says the cluster converged to `masters` x `replicas`.
    pub fn wait_ready(&self, masters: u32, replicas: u32, timeout: Duration) {
        let want = format!("{masters} masters x {replicas} replicas wanted; ready:");
        let start = Instant::now();
        loop {
            let s = self.status();
            if s.contains(&want) && self.topology().len() == (masters * (1 + replicas)) as usize {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "not ready after {timeout:?}:\n{s}\noperator log tail:\n{}",
                tail(&self.operator_log(), 30)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn port(&self, ordinal: u16) -> u16 {
        self.base_port + ordinal
    }

    pub fn conn(&self, port: u16) -> redis::Connection {
        redis::Client::open(self.url(port))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// `CLUSTER NODES` of node 0: id -> (port, flags, slots count).
    pub fn topology(&self) -> BTreeMap<String, (u16, String, usize)> {
        let Ok(client) = redis::Client::open(self.url(self.port(0))) else {
            return BTreeMap::new();
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return BTreeMap::new();
        };
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut c)
            .unwrap_or_default();
        parse_nodes(&text)
    }

    pub fn cluster_client(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::builder(vec![self.url(self.port(0))])
            .retries(20)
            .build()
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// `redis-cli --cluster check` from node 0: Ok when it reports no error or warning.
    pub fn redis_cli_check(&self) -> Result<(), String> {
        let out = Command::new("redis-cli")
            .args(["--cluster", "check", &format!("127.0.0.1:{}", self.port(0))])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success()
            && text.contains("[OK] All 16384 slots covered")
            && !text.contains("[ERR]")
            && !text.contains("[WARNING]")
        {
            Ok(())
        } else {
            Err(text)
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.kill_operator();
        let mut args: Vec<String> = vec!["local".into(), "down".into()];
        args.extend(self.name_args());
        args.push("--purge".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = self.run(&args);
        // Belt and braces: kill anything still listening on our ports' pid files.
        if let Ok(entries) = std::fs::read_dir(self.state_dir()) {
            for e in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("redis.pid")) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn parse_nodes(text: &str) -> BTreeMap<String, (u16, String, usize)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => {
                        b.parse::<usize>().unwrap_or(0) - a.parse::<usize>().unwrap_or(0) + 1
                    }
                    None => 1,
                })
                .sum();
            Some((f[0].to_string(), (port, f[2].to_string(), slots)))
        })
        .collect()
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Writes `count` keys `k:{i}` = `v{i}` through the cluster, in pipelines.
pub fn load_keys(c: &mut redis::cluster::ClusterConnection, prefix: &str, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::cluster::cluster_pipe();
        for i in chunk {
            p.set(format!("{prefix}:{i}"), format!("v{i}")).ignore();
        }
        p.query::<()>(c).expect("pipeline of SETs");
    }
}

/// Keys among `prefix:{0..count}` that are missing or wrong, read through a fresh cluster
/// client (a cached connection to a node killed by the test would only report EOF); a chunk
/// that fails on a connection error is read again.
pub fn missing_keys(c: &LocalCluster, prefix: &str, count: usize) -> Vec<usize> {
    let mut conn = c.cluster_client();
    let mut missing = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut values: Option<Vec<Option<String>>> = None;
        for _ in 0..10 {
            let mut p = redis::cluster::cluster_pipe();
            for i in chunk {
                p.get(format!("{prefix}:{i}"));
            }
            match p.query(&mut conn) {
                Ok(v) => {
                    values = Some(v);
                    break;
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(300));
                    conn = c.cluster_client();
                }
            }
        }
        let values = values.expect("a pipeline of GETs succeeds within 10 tries");
        for (i, v) in chunk.iter().zip(values) {
            if v.as_deref() != Some(format!("v{i}").as_str()) {
                missing.push(*i);
            }
        }
    }
    missing
}

/// Slot counts per master, from node 0's view.
pub fn master_slot_counts(t: &BTreeMap<String, (u16, String, usize)>) -> Vec<usize> {
    t.values()
        .filter(|(_, f, _)| f.contains("master"))
        .map(|(_, _, s)| *s)
        .collect()
}

/// Every node's view, as the set of node ids it knows.
pub fn views(c: &LocalCluster, ports: &[u16]) -> Vec<BTreeSet<String>> {
    ports
        .iter()
        .map(|p| {
            let mut conn = c.conn(*p);
            let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).unwrap();
            parse_nodes(&text).into_keys().collect()
        })
        .collect()
}

pub fn pid_of(dir: &Path, ordinal: u16) -> String {
    std::fs::read_to_string(dir.join(format!("node-{ordinal}/redis.pid")))
        .unwrap()
        .trim()
        .to_string()
}
