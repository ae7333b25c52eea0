//! One `redis-server` process: spawn it detached, tell whether a pid is still it, stop it.
//! Signals go through the `kill` command so this crate needs neither libc nor unsafe code.

use crate::error::{LocalError, Result};
use crate::resp::{self, Reply};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::time::{Instant, sleep};

const POLL: Duration = Duration::from_millis(50);

/// Whether `pid` is a live (not zombie) `redis-server` or `valkey-server`, and — when `node_dir` is given and the
/// process' working directory is readable — the one serving that directory. The directory check
/// is what makes a stale `redis.pid` harmless when the pid was reused by another redis-server.
pub(crate) fn is_alive(pid: u32, node_dir: Option<&Path>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S …`: comm may itself hold spaces or parentheses, so split at the last ')'.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = stat.get(open + 1..close).unwrap_or_default();
    let state = stat
        .get(close + 1..)
        .unwrap_or_default()
        .trim_start()
        .chars()
        .next();
    let is_server = crate::server::SERVER_NAMES
        .iter()
        .any(|name| comm.starts_with(name));
    if !is_server || matches!(state, Some('Z' | 'X') | None) {
        return false;
    }
    // The same directory by device and inode: two `stat`s, where resolving both paths took
    // a dozen system calls for each of 200 nodes every pass (and a symlinked state
    // directory still matches).
    let Some(dir) = node_dir else { return true };
    match std::fs::metadata(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => {
            std::fs::metadata(dir).is_ok_and(|d| d.dev() == cwd.dev() && d.ino() == cwd.ino())
        }
        Err(_) => true,
    }
}

/// The pid recorded in `path`, if the file exists and holds one.
pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Send `signal` (a name such as `TERM`) to `pid` with the `kill` command.
pub(crate) async fn signal(pid: u32, signal: &'static str) -> Result<()> {
    let out = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| LocalError::Signal {
            signal,
            pid,
            reason: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LocalError::Signal {
            signal,
            pid,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Start `redis-server conf` in `node_dir`, in its own process group (so a Ctrl-C sent to the
/// operator's group never reaches it), output appended to `redis.log`. Returns its pid;
/// `exited` is notified when the process ends.
pub(crate) fn spawn(
    redis_server: &Path,
    node_dir: &Path,
    exited: std::sync::Arc<tokio::sync::Notify>,
) -> Result<u32> {
    let log_path = node_dir.join("redis.log");
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(LocalError::io(&log_path))
    };
    let mut child = tokio::process::Command::new(redis_server)
        .arg(node_dir.join("redis.conf"))
        .current_dir(node_dir)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .process_group(0)
        // Dropping the handle must leave the node running: the cluster outlives the operator.
        .kill_on_drop(false)
        .spawn()
        .map_err(LocalError::io(redis_server))?;
    let pid = child.id().ok_or_else(|| LocalError::Io {
        path: redis_server.to_owned(),
        source: std::io::Error::other("the process exited before its pid could be read"),
    })?;
    // A death is an event, not something the next poll finds: waiting on the child also reaps
    // it, so no zombie is left behind. When the operator exits first, the task goes and the
    // node keeps running (`kill_on_drop(false)`).
    tokio::spawn(async move {
        let status = child.wait().await;
        tracing::debug!(pid, ?status, "redis-server exited");
        exited.notify_one();
    });
    Ok(pid)
}

/// Wait until the node answers PING, giving up after `limit` or as soon as the process dies.
/// `Err(reason)` says which.
pub(crate) async fn wait_ready(
    addr: &str,
    password: Option<&str>,
    pid: u32,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match resp::command(addr, password, &["PING"]).await {
            Ok(Reply::Text(pong)) if pong == "PONG" => return Ok(()),
            Ok(other) => format!("unexpected PING reply {other:?}"),
            Err(e) => e.to_string(),
        };
        if !is_alive(pid, None) {
            return Err(format!("the process (pid {pid}) exited"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no PONG within {} ms (last: {last})",
                limit.as_millis()
            ));
        }
        sleep(POLL).await;
    }
}

/// Stop the node: `SHUTDOWN` (`SAVE` keeps its keys for the next start, `NOSAVE` when it is
/// about to be deleted), then SIGTERM, then SIGKILL, each given a bounded time.
pub(crate) async fn stop(
    ordinal: u32,
    pid: u32,
    node_dir: &Path,
    addr: &str,
    password: Option<&str>,
    save: bool,
) -> Result<()> {
    const GRACE: Duration = Duration::from_secs(10);
    let alive = || is_alive(pid, Some(node_dir));
    if !alive() {
        return Ok(());
    }
    let how = if save { "SAVE" } else { "NOSAVE" };
    match resp::command(addr, password, &["SHUTDOWN", how]).await {
        Ok(_) => {}
        Err(e) => tracing::debug!(ordinal, pid, error = %e, "SHUTDOWN failed, signalling instead"),
    }
    if wait_gone(&alive, GRACE).await {
        return Ok(());
    }
    tracing::warn!(ordinal, pid, "node ignored SHUTDOWN, sending SIGTERM");
    let _ = signal(pid, "TERM").await;
    if wait_gone(&alive, GRACE).await {
        return Ok(());
    }
    tracing::warn!(ordinal, pid, "node ignored SIGTERM, sending SIGKILL");
    let _ = signal(pid, "KILL").await;
    if wait_gone(&alive, Duration::from_secs(2)).await {
        return Ok(());
    }
    Err(LocalError::StopFailed {
        ordinal,
        pid,
        secs: 2 * GRACE.as_secs() + 2,
    })
}

async fn wait_gone(alive: &impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL).await;
    }
    true
}

/// The last `lines` lines of a log, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return "(no log written)".to_owned();
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every live `redis-server` whose working directory is inside `dir`, found through `/proc`
/// rather than pid files: a pid file can be missing (removed by a node exiting at the same
/// path, or not written yet), and a node nobody knows of must still be stopped.
pub(crate) fn redis_servers_under(dir: &Path) -> Vec<u32> {
    let Ok(root) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_alive(*pid, None))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&root))
        })
        .collect()
}

/// Stops stray nodes found by [`redis_servers_under`]: SIGTERM, then SIGKILL.
pub(crate) async fn stop_strays(dir: &Path) {
    let strays = redis_servers_under(dir);
    if strays.is_empty() {
        return;
    }
    tracing::warn!(?strays, "stopping redis-server processes no pid file named");
    for pid in &strays {
        let _ = signal(*pid, "TERM").await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !redis_servers_under(dir).is_empty() {
        tokio::time::sleep(POLL).await;
    }
    for pid in redis_servers_under(dir) {
        let _ = signal(pid, "KILL").await;
    }
}
