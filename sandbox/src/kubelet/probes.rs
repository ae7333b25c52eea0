//! Probes: exec (the command run here with the container's environment and remapped
//! paths), tcpSocket (a connection to the pod address) and httpGet (a plain HTTP/1.0 GET;
//! 200-399 passes), each bounded by `timeoutSeconds`; and when each of a container's
//! startup, readiness and liveness probes is due and what its result does.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::container::ContainerRun;
use super::process::{Launch, remap, which};

fn period(probe: &Value) -> Duration {
    Duration::from_secs(probe["periodSeconds"].as_u64().unwrap_or(10).max(1))
}

fn failure_threshold(probe: &Value) -> u64 {
    probe["failureThreshold"].as_u64().unwrap_or(3).max(1)
}

/// Runs whichever of the container's probes are due, as a kubelet does: the startup probe
/// first, alone, until it passes once (`failureThreshold` failures in a row kill the
/// container); then readiness (one result decides `ready`; ready without a probe) and
/// liveness (`failureThreshold` failures in a row kill it). A killed container restarts
/// per restartPolicy.
pub async fn check(c: &mut ContainerRun, pod: &str, ip: &str) {
    if !c.state.is_running() {
        c.ready = false;
        return;
    }
    let Ok(launch) = &c.launch else {
        return;
    };
    if !c.startup_passed {
        c.ready = false;
        let startup = &c.spec["startupProbe"];
        if Instant::now() < c.next_startup {
            return;
        }
        c.next_startup = Instant::now() + period(startup);
        if run(startup, ip, &c.spec, launch, &c.mounts).await {
            c.startup_passed = true;
            // Readiness and liveness start now, not a period later.
            c.next_probe = c.next_probe.min(Instant::now());
            c.next_liveness = c.next_liveness.min(Instant::now());
        } else {
            c.startup_failures += 1;
            if c.startup_failures >= failure_threshold(startup) {
                tracing::info!(pod, container = %c.name, "startup probe failed, killing");
                c.startup_failures = 0;
                c.signal("KILL");
            }
            return;
        }
    }
    let probe = &c.spec["readinessProbe"];
    if !probe.is_object() {
        c.ready = true;
    } else if Instant::now() >= c.next_probe {
        c.ready = run(probe, ip, &c.spec, launch, &c.mounts).await;
        c.next_probe = Instant::now() + period(probe);
    }
    let live = &c.spec["livenessProbe"];
    if live.is_object() && Instant::now() >= c.next_liveness {
        let passed = run(live, ip, &c.spec, launch, &c.mounts).await;
        c.next_liveness = Instant::now() + period(live);
        c.liveness_failures = if passed { 0 } else { c.liveness_failures + 1 };
        if c.liveness_failures >= failure_threshold(live) {
            tracing::info!(pod, container = %c.name, "liveness probe failed, killing");
            c.liveness_failures = 0;
            c.signal("KILL");
        }
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port(spec: &Value, container: &Value) -> Option<u16> {
    match spec {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(s) => s.parse().ok().or_else(|| {
            container["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == s.as_str())?["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
        }),
        _ => None,
    }
}

/// Runs one probe; true when it passes.
pub async fn run(
    probe: &Value,
    ip: &str,
    container: &Value,
    launch: &Launch,
    mounts: &[(String, std::path::PathBuf)],
) -> bool {
    let timeout = Duration::from_secs(probe["timeoutSeconds"].as_u64().unwrap_or(1).max(1));
    let attempt = async {
        if let Some(command) = probe["exec"]["command"].as_array() {
            return exec(command, launch, mounts).await;
        }
        if probe["tcpSocket"].is_object() {
            let Some(p) = port(&probe["tcpSocket"]["port"], container) else {
                return false;
            };
            return TcpStream::connect((ip, p)).await.is_ok();
        }
        if probe["httpGet"].is_object() {
            return http(&probe["httpGet"], ip, container).await;
        }
        // A probe of a kind not emulated (grpc) passes rather than holding the pod back.
        true
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

async fn exec(command: &[Value], launch: &Launch, mounts: &[(String, std::path::PathBuf)]) -> bool {
    let words: Vec<String> = command
        .iter()
        .filter_map(Value::as_str)
        .map(|w| remap(w, mounts))
        .collect();
    let Some((first, rest)) = words.split_first() else {
        return false;
    };
    let base = first.rsplit('/').next().unwrap_or(first);
    let Some(program) = which(first).or_else(|| which(base)) else {
        return false;
    };
    let status = tokio::process::Command::new(program)
        .args(rest)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    status.is_ok_and(|s| s.success())
}

async fn http(get: &Value, ip: &str, container: &Value) -> bool {
    let Some(p) = port(&get["port"], container) else {
        return false;
    };
    let path = get["path"].as_str().unwrap_or("/");
    let Ok(mut stream) = TcpStream::connect((ip, p)).await else {
        return false;
    };
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {ip}:{p}\r\nUser-Agent: kube-probe/1.33\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let Ok(n) = stream.read(&mut head).await else {
        return false;
    };
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (200..400).contains(&code))
}
