//! Test harness: real `redis-server` (or Valkey, see [`server_binary`]) processes on loopback, killed on drop even when the
//! test fails, plus helpers to build a cluster through the adapter itself.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use engine::{Addr, Effect, SlotRange};
use redis_operator_redis::{AdapterConfig, ExecContext, MemberInfo, RedisAdapter};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PASSWORD: &str = "s3cret-test";

/// The server the tests run: `REDIS_OPERATOR_TEST_SERVER` (scripts/test.sh points it at
/// Valkey for its second run), else Debian's redis-server.
pub fn server_binary() -> PathBuf {
    std::env::var_os("REDIS_OPERATOR_TEST_SERVER")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/redis-server"), PathBuf::from)
}

/// One redis-server process and its directory; both go away on drop.
pub struct Node {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Node {
    pub fn spawn(port: u16, password: Option<&str>) -> Node {
        Self::spawn_with(port, password, &[])
    }

    /// Started as the backends start nodes: replicas authenticate as the replication user,
    /// which no server has until its gate is opened (`engine::replication_gate`).
    pub fn spawn_gated(port: u16, password: Option<&str>) -> Node {
        let auth = engine::replication_gate::masterauth(password).to_string();
        Self::spawn_with(
            port,
            password,
            &[
                "--masteruser",
                engine::replication_gate::USER,
                "--masterauth",
                &auth,
            ],
        )
    }

    fn spawn_with(port: u16, password: Option<&str>, extra: &[&str]) -> Node {
        // 22000-22099: steady_views (the pass-cost work's block).
        assert!(
            (12000..12500).contains(&port) || (22000..22100).contains(&port),
            "tests own ports 12000-12499 and 22000-22099 only"
        );
        let dir =
            std::env::temp_dir().join(format!("redis-backend-test-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(server_binary());
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(dir.join("nodes.conf"))
            .arg("--dir")
            .arg(&dir)
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-node-timeout",
                "2000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(pw) = password {
            cmd.args(["--requirepass", pw]);
            if extra.is_empty() {
                cmd.args(["--masterauth", pw]);
            }
        }
        cmd.args(extra);
        let child = cmd.spawn().expect("redis-server starts");
        Node { port, child, dir }
    }

    /// SIGKILL: the process dies at once, its in-memory data with it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP (`freeze`) and SIGCONT (`thaw`): the process keeps its sockets and memory
    /// but answers nothing, as a node stuck in a long pause would.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {sig} {}", self.child.id());
    }

    pub fn addr(&self) -> Addr {
        Addr::new("127.0.0.1", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn test_adapter(password: Option<&str>) -> RedisAdapter {
    RedisAdapter::new(AdapterConfig {
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(3),
        password: password.map(str::to_string),
        migrate_batch: 100,
        ..AdapterConfig::default()
    })
}

pub fn members(nodes: &[Node]) -> Vec<MemberInfo> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| MemberInfo::new(i as u32, Some(n.addr()), true))
        .collect()
}

/// Polls `check` every 50 ms, at most `tries` times.
pub async fn eventually<F, Fut>(tries: u32, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A running cluster: the processes, their ids by ordinal and an execution context.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub ids: Vec<String>,
    pub adapter: RedisAdapter,
}

impl Cluster {
    /// Starts `ports.len()` nodes; the first `masters` share the slots evenly, the rest
    /// replicate the masters round-robin. Returns once every node reports `cluster_state:ok`.
    pub async fn start(ports: &[u16], masters: usize, password: Option<&str>) -> Cluster {
        let nodes: Vec<Node> = ports.iter().map(|p| Node::spawn(*p, password)).collect();
        let adapter = test_adapter(password);
        for n in &nodes {
            let a = n.addr();
            eventually(100, "redis-server answers", || {
                let (adapter, a) = (adapter.clone(), a.clone());
                async move { adapter.observe_node(&a).await.is_ok() }
            })
            .await;
        }
        let mut cluster = Cluster {
            nodes,
            ids: Vec::new(),
            adapter,
        };
        let obs = cluster.observe().await;
        cluster.ids = obs
            .members
            .values()
            .map(|m| m.redis.as_ref().expect("observed").id.clone())
            .collect();
        let ctx = cluster.ctx().await;
        for n in cluster.nodes.iter().skip(1) {
            let meet = Effect::Meet {
                on: 0,
                ip: "127.0.0.1".into(),
                port: n.port,
            };
            cluster.adapter.execute(&meet, &ctx).await.expect("meet");
        }
        for (i, range) in engine::slots::even_split(masters as u32)
            .into_iter()
            .enumerate()
        {
            let add = Effect::AddSlots {
                on: i as u32,
                slots: vec![range],
            };
            cluster.adapter.execute(&add, &ctx).await.expect("addslots");
        }
        let total = cluster.nodes.len();
        eventually(200, "every node knows every other", || {
            let c = &cluster;
            async move {
                c.observe().await.members.values().all(|m| {
                    m.redis.as_ref().is_some_and(|s| {
                        s.nodes.len() == total && s.nodes.iter().all(|n| !n.flags.handshake)
                    })
                })
            }
        })
        .await;
        for r in masters..total {
            let master_id = cluster.ids[(r - masters) % masters].clone();
            let replicate = Effect::Replicate {
                on: r as u32,
                master_id,
            };
            let (adapter, ctx) = (cluster.adapter.clone(), ctx.clone());
            eventually(100, "replicate accepted", || {
                let (adapter, ctx, replicate) = (adapter.clone(), ctx.clone(), replicate.clone());
                async move { adapter.execute(&replicate, &ctx).await.is_ok() }
            })
            .await;
        }
        cluster.wait_ok().await;
        cluster
    }

    pub async fn observe(&self) -> engine::Observation {
        self.adapter.observe(members(&self.nodes), 0).await
    }

    pub async fn ctx(&self) -> ExecContext {
        ExecContext::from_observation(&self.observe().await)
    }

    pub async fn wait_ok(&self) {
        eventually(200, "cluster_state:ok everywhere", || async {
            self.observe()
                .await
                .members
                .values()
                .all(|m| m.redis.as_ref().is_some_and(|s| s.cluster_ok))
        })
        .await;
    }

    /// A plain client connection to node `i` (no cluster redirection).
    pub async fn client(
        &self,
        i: usize,
        password: Option<&str>,
    ) -> redis::aio::MultiplexedConnection {
        let url = match password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.nodes[i].port),
            None => format!("redis://127.0.0.1:{}", self.nodes[i].port),
        };
        // Valkey holds a `SETSLOT` until the node's replicas acknowledge it (up to 2 s): the
        // library's default response timeout is shorter than that on a loaded machine.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap()
    }

    /// The first slot member `ord` says it owns.
    pub async fn first_slot_of(&self, ord: u32) -> u16 {
        let obs = self.observe().await;
        let me = obs.members[&ord].redis.as_ref().unwrap().myself().unwrap();
        engine::slots::expand(&me.slots).next().unwrap()
    }

    /// Waits until member `master` lists a replica in state `online`.
    pub async fn wait_replica_online(&self, master: usize) {
        eventually(400, "the replica is online", || async {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut self.client(master, None).await)
                .await
                .unwrap();
            info.contains("state=online")
        })
        .await;
    }

    /// The effect moving `slots` from member `from` to member `to`, with their node ids.
    pub fn migrate_effect(&self, from: u32, to: u32, slots: &[u16]) -> Effect {
        Effect::MigrateSlots {
            from,
            from_id: self.ids[from as usize].clone(),
            to,
            to_id: self.ids[to as usize].clone(),
            slots: ranges(slots),
        }
    }

    /// Member `i`'s own line of its view.
    pub async fn myself(&self, i: usize) -> engine::ClusterNode {
        let obs = self.observe().await;
        obs.members[&(i as u32)]
            .redis
            .as_ref()
            .and_then(|s| s.myself())
            .expect("the member answers with its own line")
            .clone()
    }

    /// `CLUSTER COUNTKEYSINSLOT slot` on member `i`.
    pub async fn count_in_slot(&self, i: usize, slot: u16) -> u64 {
        redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query_async(&mut self.client(i, None).await)
            .await
            .unwrap()
    }

    /// Waits until every member from `first` on routes `slot` to node `id`.
    pub async fn wait_routed_to(&self, slot: u16, id: &str, first: usize) {
        eventually(
            200,
            "every live node routes the slot to its new owner",
            || async {
                self.owners_of(slot)
                    .await
                    .iter()
                    .skip(first)
                    .all(|o| o.as_deref() == Some(id))
            },
        )
        .await;
    }

    /// Member `i` serves every key of `keys` with the value `fill` wrote.
    pub async fn assert_serves(&self, i: usize, keys: &[String]) {
        let mut conn = self.client(i, None).await;
        for k in keys {
            let v: Option<String> = redis::cmd("GET")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(v.as_deref(), Some(format!("v-{k}").as_str()), "{k}");
        }
    }

    /// The node id every reachable node believes owns `slot`, one entry per node.
    pub async fn owners_of(&self, slot: u16) -> Vec<Option<String>> {
        self.observe()
            .await
            .members
            .values()
            .map(|m| {
                m.redis.as_ref().and_then(|s| {
                    s.nodes
                        .iter()
                        .find(|n| n.slots.iter().any(|r| r.start <= slot && slot <= r.end))
                        .map(|n| n.id.clone())
                })
            })
            .collect()
    }
}

pub use engine::slots::crc16;

/// A hash tag whose keys all land in `slot`.
pub fn tag_for_slot(slot: u16) -> String {
    (0u32..)
        .map(|i| format!("t{i}"))
        .find(|t| crc16(t.as_bytes()) % 16384 == slot)
        .unwrap()
}

/// `count` key names in `slot`.
pub fn keys_in_slot(slot: u16, count: usize) -> Vec<String> {
    let tag = tag_for_slot(slot);
    (0..count).map(|i| format!("{{{tag}}}:k{i}")).collect()
}

/// Writes `key -> "v-key"` for every key, on node `i` (which must own their slots).
pub async fn fill(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) {
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("SET").arg(k).arg(format!("v-{k}")).ignore();
        }
        let () = pipe.query_async(conn).await.unwrap();
    }
}

pub fn ranges(slots: &[u16]) -> Vec<SlotRange> {
    engine::slots::to_ranges(slots.iter().copied())
}
