//! `redis-operator kube soak`: a `RedisCluster` on Kubernetes (kube-sandbox) run by
//! `redis-operator run` (a child process) under seeded chaos: the spec patched (scale,
//! rolling and live configuration changes), pods deleted, an emulated node killed, the API
//! server cut off, the operator SIGKILLed (also mid-migration and mid-roll) and started
//! again. The client finds the nodes through the operator's HTTP API, as a user would.

mod cluster;
mod ops;

use super::client::{Endpoints, SlotTags};
use super::driver::{Soak, Target, run_chaos};
use super::local::ChaosArgs;
use super::{CmdError, CmdResult, Ending, HEAL_LIMIT, conclude, preflight, say};
use crate::commands::run::kube_client;
use cluster::KubeCluster;
use sim::rng::Rng;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct KubeSoakArgs {
    #[command(flatten)]
    pub chaos: ChaosArgs,
    /// The kubeconfig of the kube-sandbox to soak in (default: $KUBECONFIG or
    /// ~/.kube/config). Killing nodes and cutting the API off need kube-sandbox's fault
    /// endpoint; the operator runs here, so the pods' addresses must be reachable from here.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of the soak's RedisCluster (`soak`), created when missing.
    #[arg(long, default_value = "soak")]
    pub namespace: String,
    /// spec.basePort: the nodes use up to 18 ports from here (bus ports + 10000).
    #[arg(long, default_value_t = 16700, value_parser = clap::value_parser!(u16).range(1024..=55517))]
    pub base_port: u16,
    /// Where the operator serves its HTTP API (the client asks it where the nodes are);
    /// 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    pub http_port: u16,
}

pub async fn run(args: KubeSoakArgs) -> CmdResult {
    preflight()?;
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let work = args.chaos.work_dir("kube-soak", "operator.log")?;
    let http_port = match args.http_port {
        0 => free_port()?,
        p => p,
    };
    let c = KubeCluster::new(
        client,
        args.kubeconfig.clone(),
        &args.namespace,
        args.base_port,
        &work,
        http_port,
    );
    c.prepare().await?;
    // The faults only kube-sandbox can cause: refuse to start without them rather than run
    // a soak that silently leaves them out.
    c.fault(serde_json::json!({}))
        .await
        .map_err(|e| format!("this is not a kube-sandbox (no fault endpoint): {e}"))?;
    let epoch = Instant::now();
    let mut soak = Soak {
        c,
        rng: Rng::new(args.chaos.seed),
        endpoints: Endpoints::new(Vec::new(), None),
        tags: SlotTags::default(),
        epoch,
    };
    say(&format!(
        "kube soak: seed {}, {} min, namespace {}, ports {}-{} (bus +10000), operator API \
         127.0.0.1:{http_port}, working directory {}",
        args.chaos.seed,
        args.chaos.minutes,
        args.namespace,
        args.base_port,
        args.base_port + 17,
        work.display()
    ));
    soak.c.apply().await?;
    soak.c.start_operator()?;
    let result = soak_for(&mut soak, &args).await;
    let passed = matches!(result, Ok(true));
    let keep = args.chaos.keep || !passed;
    soak.c.teardown(!keep).await;
    if keep {
        say(&format!(
            "kept {} (operator.log); the RedisCluster {}/soak is left as it is",
            work.display(),
            args.namespace
        ));
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    match result {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::FAILURE),
        Err(e) => Err(e),
    }
}

/// The run itself, after the operator started: `Ok(passed)`.
async fn soak_for(soak: &mut Soak<KubeCluster>, args: &KubeSoakArgs) -> Result<bool, CmdError> {
    let start = Instant::now();
    if soak.wait_healthy(start, HEAL_LIMIT, None).await?.is_none() {
        return Err("the cluster did not become ready at the start (see operator.log)".into());
    }
    let addrs = soak.c.addresses().await;
    if addrs.is_empty() {
        return Err("the operator's HTTP API lists no node of the ready cluster".into());
    }
    soak.endpoints.set(addrs.clone());
    let server = server_of(&addrs)?;
    say(&format!(
        "{server} ready (3 masters x 1 replica) after {:.1} s; nodes at {}",
        start.elapsed().as_secs_f64(),
        addrs.join(" ")
    ));
    // Whatever happened, the client's writes are read back and the cluster checked.
    let run = run_chaos(soak, &args.chaos).await?;
    let check_addr = soak
        .c
        .judge()
        .await
        .ok()
        .and_then(|j| {
            j.observation.members.values().find_map(|m| {
                let me = m.redis.as_ref()?.myself()?;
                me.is_master()
                    .then(|| m.addr.as_ref().map(ToString::to_string))?
            })
        })
        .unwrap_or_else(|| addrs[0].clone());
    let endpoints = soak.endpoints.clone();
    conclude(
        run.writer,
        &endpoints,
        Ending {
            server,
            seed: args.chaos.seed,
            write_rate: args.chaos.write_rate,
            minutes_run: soak.epoch.elapsed().as_secs_f64() / 60.0,
            episodes: run.episodes,
            chaos: run.outcome,
            settled: run.settled,
            check_addr,
            password: None,
        },
    )
    .await
}

/// `redis-server 7.0.15` or `valkey-server 8.1.8`, as a node says in `INFO server`.
fn server_of(addrs: &[String]) -> Result<String, CmdError> {
    let addr = addrs.first().ok_or("no node")?;
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .map(str::to_owned)
    };
    Ok(match (field("server_name"), field("valkey_version")) {
        (Some(name), Some(v)) if name == "valkey" => format!("valkey-server {v}"),
        _ => format!(
            "redis-server {}",
            field("redis_version").unwrap_or_else(|| "?".into())
        ),
    })
}

fn free_port() -> Result<u16, CmdError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
