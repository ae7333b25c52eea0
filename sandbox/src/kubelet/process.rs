//! Turning a container into a local program: the image table, command and args mapping,
//! path remapping into the pod's volume directories, and process-group signals.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

/// What to run for one container.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// Why a container cannot run here; shown as its Waiting reason and message.
#[derive(Debug, Clone)]
pub struct NotRunnable {
    pub reason: &'static str,
    pub message: String,
}

/// The image's name without registry, path, tag or digest: `docker.io/library/redis:7`
/// → `redis`.
pub fn image_base(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// Finds an executable by name on PATH (or takes an absolute path that exists).
pub fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The workspace's `redis-operator` binary: `KUBE_SANDBOX_OPERATOR_BIN`, else next to (or
/// one level above) the running executable, as in `target/debug` and `target/debug/deps`.
fn operator_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBE_SANDBOX_OPERATOR_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("redis-operator"))
        .find(|c| c.is_file())
}

/// The program an image runs when the container names no command of its own, and whether
/// it is a Redis-compatible server (which gets `--bind <podIP>`).
fn image_program(image: &str) -> Result<(PathBuf, bool), NotRunnable> {
    let base = image_base(image);
    let missing = |what: &str| NotRunnable {
        reason: "ImageNotRunnable",
        message: format!("image {image} maps to {what}, which is not installed here"),
    };
    if base.contains("redis-operator") {
        return operator_binary()
            .map(|p| (p, false))
            .ok_or_else(|| missing("the workspace's redis-operator binary"));
    }
    if base == "redis_exporter" || base == "redis-exporter" {
        return which("prometheus-redis-exporter")
            .map(|p| (p, false))
            .ok_or_else(|| missing("prometheus-redis-exporter"));
    }
    if base == "prometheus" {
        return which("prometheus")
            .map(|p| (p, false))
            .ok_or_else(|| missing("prometheus"));
    }
    // KUBE_SANDBOX_REDIS_SERVER runs every Redis and Valkey image on that one binary (the
    // tests' second run points it at Valkey).
    if let Some(server) = server_override(image) {
        return which(&server.to_string_lossy())
            .map(|p| (p, true))
            .ok_or_else(|| missing("KUBE_SANDBOX_REDIS_SERVER"));
    }
    if base.starts_with("valkey") {
        let server = which("valkey-server").or_else(|| which("redis-server"));
        return server
            .map(|p| (p, true))
            .ok_or_else(|| missing("valkey-server"));
    }
    if base.starts_with("redis") {
        return which("redis-server")
            .map(|p| (p, true))
            .ok_or_else(|| missing("redis-server"));
    }
    Err(NotRunnable {
        reason: "ImageNotRunnable",
        message: format!(
            "kube-sandbox has no local program for image {image} (see the image table in docs/sandbox.md)"
        ),
    })
}

/// The server `KUBE_SANDBOX_REDIS_SERVER` names, for a Redis or Valkey image.
fn server_override(image: &str) -> Option<std::ffi::OsString> {
    let base = image_base(image);
    let server_image = base.starts_with("valkey") || base.starts_with("redis");
    if !server_image || base.contains("operator") || base.contains("exporter") {
        return None;
    }
    std::env::var_os("KUBE_SANDBOX_REDIS_SERVER").filter(|p| !p.is_empty())
}

/// A directory to put first on the container's PATH so that a server started through a
/// shell script (`sh -c '... exec redis-server ...'`, as the operator's pods do) also runs
/// the `KUBE_SANDBOX_REDIS_SERVER` binary: links named `redis-server` and `valkey-server` to
/// it. Without it only a container whose command is the server itself ran the override.
/// `None` when no override applies or the links cannot be made (then PATH's server runs,
/// as before).
pub fn server_shim(image: &str, pod_dir: &Path) -> Option<PathBuf> {
    let server = which(&server_override(image)?.to_string_lossy())?;
    let dir = pod_dir.join("server-bin");
    std::fs::create_dir_all(&dir).ok()?;
    for name in ["redis-server", "valkey-server"] {
        let link = dir.join(name);
        if std::fs::read_link(&link).ok().as_deref() == Some(server.as_path()) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink(&server, &link) {
            tracing::warn!(link = %link.display(), error = %e, "cannot link the server override");
            return None;
        }
    }
    Some(dir)
}

/// Maps a container's command and args to a local program. A command naming
/// `redis-server`, `valkey-server` or the image's entrypoint script runs the image's
/// program; any other command runs the same-named program from PATH.
pub fn program(
    image: &str,
    command: &[String],
    args: &[String],
) -> Result<(PathBuf, Vec<String>, bool), NotRunnable> {
    let (image_prog, is_server) = image_program(image)?;
    let Some((first, rest)) = command.split_first() else {
        return Ok((image_prog, args.to_vec(), is_server));
    };
    let first_base = first.rsplit('/').next().unwrap_or(first);
    let mut all: Vec<String> = rest.to_vec();
    all.extend(args.iter().cloned());
    if matches!(
        first_base,
        "redis-server" | "valkey-server" | "docker-entrypoint.sh"
    ) {
        return Ok((image_prog, all, is_server));
    }
    if first_base == image_base(image) || first.ends_with("/redis-operator") {
        return Ok((image_prog, all, false));
    }
    match which(first).or_else(|| which(first_base)) {
        Some(p) => Ok((p, all, false)),
        None => Err(NotRunnable {
            reason: "ImageNotRunnable",
            message: format!("command {first} of image {image} is not available here"),
        }),
    }
}

/// Appends `--bind <ip>` to a Redis server's args unless they already bind, so every pod
/// listens on its own address.
pub fn add_bind(args: &mut Vec<String>, ip: &str) {
    if !args
        .iter()
        .any(|a| a == "--bind" || a.starts_with("--bind "))
    {
        args.push("--bind".into());
        args.push(ip.into());
    }
}

/// Rewrites every occurrence of a mount path in `text` that stands as a path of its own
/// (preceded by start, whitespace, `=`, `:`, a quote or `,`; followed by end, `/` or such a
/// character) to its directory on this machine. Longer mount paths are tried first.
pub fn remap(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut sorted: Vec<&(String, PathBuf)> = mounts.iter().collect();
    sorted.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    let is_sep = |c: char| c.is_whitespace() || matches!(c, '=' | ':' | '"' | '\'' | ',' | ';');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < text.len() {
        let at_start = i == 0 || text[..i].chars().next_back().is_some_and(is_sep);
        if at_start {
            for (mount, host) in &sorted {
                let mount = mount.trim_end_matches('/');
                if mount.is_empty() || !text[i..].starts_with(mount) {
                    continue;
                }
                let after = &text[i + mount.len()..];
                if after.is_empty()
                    || after.starts_with('/')
                    || after.chars().next().is_some_and(is_sep)
                {
                    out.push_str(&host.to_string_lossy());
                    i += mount.len();
                    continue 'outer;
                }
            }
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Expands `$(VAR)` references as Kubernetes does in command, args and env values; `$$`
/// escapes a dollar, and unknown references stay as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix("$(")
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().rev().find(|(k, _)| k == &inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Starts the program in a process group of its own (so signals reach its children),
/// with a clean environment, output appended to `log`.
pub fn spawn(launch: &Launch, log: &Path) -> std::io::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Command::new(&launch.program)
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Sends `signal` (TERM, KILL, STOP, CONT) to the process group `pgid` with the `kill`
/// program, which keeps this crate free of unsafe code.
pub fn signal_group(pgid: u32, signal: &str) {
    let result = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = result {
        tracing::warn!(pgid, signal, error = %e, "cannot signal process group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_lose_registry_path_tag_and_digest() {
        assert_eq!(image_base("docker.io/library/redis:7"), "redis");
        assert_eq!(
            image_base("oliver006/redis_exporter:v1@sha256:ab"),
            "redis_exporter"
        );
        assert_eq!(image_base("valkey/valkey"), "valkey");
    }

    #[test]
    fn mount_paths_are_remapped_only_where_they_stand_as_paths() {
        let mounts = vec![("/data".to_string(), PathBuf::from("/tmp/p/data"))];
        assert_eq!(remap("--dir /data", &mounts), "--dir /tmp/p/data");
        assert_eq!(remap("/data/x.conf", &mounts), "/tmp/p/data/x.conf");
        assert_eq!(remap("--x=/data", &mounts), "--x=/tmp/p/data");
        assert_eq!(remap("/database", &mounts), "/database");
        assert_eq!(remap("/srv/data", &mounts), "/srv/data");
    }

    #[test]
    fn references_to_variables_expand_and_double_dollars_escape() {
        let env = vec![("POD_IP".to_string(), "127.1.2.3".to_string())];
        assert_eq!(expand("--bind $(POD_IP)", &env), "--bind 127.1.2.3");
        assert_eq!(expand("$$(POD_IP) $(NOPE)", &env), "$(POD_IP) $(NOPE)");
    }

    #[test]
    fn a_redis_server_gets_bound_to_its_pod_address_unless_it_binds_itself() {
        let mut args = vec!["--port".to_string(), "6379".to_string()];
        add_bind(&mut args, "127.1.2.3");
        assert_eq!(args[2..], ["--bind".to_string(), "127.1.2.3".to_string()]);
        let before = args.clone();
        add_bind(&mut args, "127.9.9.9");
        assert_eq!(args, before);
    }
}
