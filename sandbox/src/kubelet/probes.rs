//! Readiness probes: exec (the command run here with the container's environment and
//! remapped paths), tcpSocket (a connection to the pod address) and httpGet (a plain
//! HTTP/1.0 GET; 200-399 passes). Each is bounded by `timeoutSeconds`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{Launch, remap, which};

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
