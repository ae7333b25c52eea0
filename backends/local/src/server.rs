//! Which server binary a local cluster runs: Redis' `redis-server` or Valkey's
//! `valkey-server`, chosen by `spec.image` or given explicitly (`local up --server-binary`).

use crate::config::find_on_path;
use crate::error::{LocalError, Result};
use std::path::{Path, PathBuf};

/// The process names local nodes run under. A node is recognised by its process name (and
/// its working directory), so an explicit binary must carry one of them.
pub(crate) const SERVER_NAMES: [&str; 2] = ["redis-server", "valkey-server"];

/// Whether `image` (e.g. `valkey/valkey:8.1`, `docker.io/valkey/valkey@sha256:…`) is a Valkey
/// image: its name, without registry, path, tag or digest, starts with `valkey`.
pub fn image_is_valkey(image: &str) -> bool {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last).starts_with("valkey")
}

/// The server for `spec.image`: `valkey-server` from PATH for a Valkey image (there is no
/// silent fallback to Redis: the user asked for Valkey), `redis-server` for any other.
pub fn server_for_image(image: &str) -> Result<PathBuf> {
    server_for_image_on(image, std::env::var_os("PATH").as_deref())
}

pub(crate) fn server_for_image_on(image: &str, path: Option<&std::ffi::OsStr>) -> Result<PathBuf> {
    if image_is_valkey(image) {
        return find_on_path("valkey-server", path).map_err(|_| LocalError::ValkeyServerNotFound {
            image: image.to_owned(),
        });
    }
    find_on_path("redis-server", path)
}

/// Checks an explicitly given server binary: it exists, is named like a server (see
/// [`SERVER_NAMES`]) and says it is Redis or Valkey when asked for its version. Returns its
/// absolute path and that version line.
pub fn check_server_binary(path: &Path) -> Result<(PathBuf, String)> {
    let not_a_server = |reason: String| LocalError::NotAServer {
        path: path.to_owned(),
        reason,
    };
    // Not canonicalised: the name it is run by is the process name, and Debian's
    // redis-server is a symlink to a multi-call binary that reads that name.
    let resolved =
        std::path::absolute(path).map_err(|_| LocalError::RedisServerMissing(path.into()))?;
    if !resolved.is_file() {
        return Err(LocalError::RedisServerMissing(path.into()));
    }
    let name = resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !SERVER_NAMES.iter().any(|s| name.starts_with(s)) {
        return Err(not_a_server(format!(
            "its file name {name:?} does not start with redis-server or valkey-server (local \
             mode recognises its nodes by process name)"
        )));
    }
    let out = std::process::Command::new(&resolved)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| not_a_server(format!("it does not run: {e}")))?;
    let banner = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !(banner.starts_with("Redis server v=") || banner.starts_with("Valkey server v=")) {
        let shown: String = banner.chars().take(80).collect();
        return Err(not_a_server(format!(
            "`--version` printed {shown:?}, not a Redis or Valkey version"
        )));
    }
    Ok((resolved, banner))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn valkey_images_are_told_by_their_name_whatever_the_registry_tag_or_digest() {
        for image in [
            "valkey/valkey:8.1",
            "docker.io/valkey/valkey@sha256:abc",
            "registry.local:5000/mirror/valkey-bundle:9",
        ] {
            assert!(image_is_valkey(image), "{image}");
        }
        for image in [
            "redis:7.2",
            "bitnami/redis-cluster:7",
            "registry.local:5000/redis",
        ] {
            assert!(!image_is_valkey(image), "{image}");
        }
    }

    #[test]
    fn a_valkey_image_without_valkey_server_says_how_to_get_one() {
        let e =
            server_for_image_on("valkey/valkey:8.1", Some("/nonexistent".as_ref())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.image valkey/valkey:8.1 asks for Valkey, but valkey-server is not on PATH; \
             install it (`bash scripts/valkey.sh` puts Valkey 8.1 in target/tools/valkey/bin) \
             or pass --server-binary PATH"
        );
    }

    #[test]
    fn a_redis_image_finds_redis_server_on_path() {
        assert_eq!(
            server_for_image_on("redis:7.2", Some("/usr/bin".as_ref())).unwrap(),
            PathBuf::from("/usr/bin/redis-server")
        );
    }

    #[test]
    fn a_binary_that_is_not_a_server_is_refused_with_the_reason() {
        let e = check_server_binary(Path::new("/bin/true")).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "/bin/true is not a redis-server or valkey-server binary: its file name"
            ),
            "{e}"
        );
        let e = check_server_binary(Path::new("/nonexistent/valkey-server")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "redis-server binary /nonexistent/valkey-server does not exist or is not a file"
        );
    }

    #[test]
    fn redis_server_passes_the_check_with_its_version() {
        let (path, banner) = check_server_binary(Path::new("/usr/bin/redis-server")).unwrap();
        assert!(path.is_file());
        assert!(banner.starts_with("Redis server v="), "{banner}");
    }
}
