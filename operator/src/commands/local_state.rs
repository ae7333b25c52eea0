//! What `local up` keeps in a cluster's state directory between runs: the manifest (and
//! which of it is in force), and the server binary chosen with `--server-binary`.

use super::CmdError;
use super::local::NameArgs;
use spec::RedisCluster;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Always absolute: nodes are recognised by their working directory, which the kernel reports
/// absolute, so a relative state dir would make `down` miss the very nodes it should stop.
pub(super) fn state_dir(name: &str, dir: Option<&Path>) -> PathBuf {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".local-clusters").join(name));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The manifest copy `up` keeps in the state dir, so `status`, `scale` and `down` know the
/// cluster without being handed the file again.
pub(super) fn saved_manifest(dir: &Path) -> PathBuf {
    dir.join("cluster.yaml")
}

/// Copies the manifest into the state dir with its modification time, which decides whether
/// the manifest or a later `local scale` is in force.
pub(super) fn save_manifest(file: &Path, dir: &Path) -> Result<(), CmdError> {
    let target = saved_manifest(dir);
    let fail = |e: std::io::Error| format!("cannot save the manifest in {}: {e}", dir.display());
    // Copied aside and renamed into place: `local scale` may read it at this very moment
    // (a restarted `local up` saves it again), and must never see half a file.
    let partial = dir.join("cluster.yaml.partial");
    std::fs::copy(file, &partial).map_err(fail)?;
    if let Some(t) = modified(file) {
        std::fs::File::options()
            .write(true)
            .open(&partial)
            .and_then(|f| f.set_modified(t))
            .map_err(fail)?;
    }
    std::fs::rename(&partial, &target).map_err(fail)?;
    Ok(())
}

pub(super) fn read_manifest(path: &Path) -> Result<RedisCluster, CmdError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    spec::parse_manifest(&text).map_err(|e| format!("{}: {e}", path.display()).into())
}

pub(super) fn load_saved(args: &NameArgs) -> Result<(PathBuf, RedisCluster), CmdError> {
    let dir = state_dir(&args.name, args.dir.as_deref());
    let path = saved_manifest(&dir);
    if !path.exists() {
        return Err(format!(
            "no local cluster named {:?} in {} (start it with `redis-operator local up -f FILE`)",
            args.name,
            dir.display()
        )
        .into());
    }
    Ok((dir, read_manifest(&path)?))
}

/// Where `up --server-binary` records its choice, so later commands on the cluster (and a
/// restarted `up`) run and recognise the same server.
fn saved_server_binary(dir: &Path) -> PathBuf {
    dir.join("server-binary")
}

/// The server binary of the cluster in `dir`: the one `up --server-binary` saved, else the
/// one `spec.image` names.
pub(super) fn server_binary(cluster: &RedisCluster, dir: &Path) -> Result<PathBuf, CmdError> {
    let saved = saved_server_binary(dir);
    match std::fs::read_to_string(&saved) {
        Ok(text) if !text.trim().is_empty() => Ok(PathBuf::from(text.trim())),
        Ok(_) => Ok(local::server_for_image(cluster.spec.image())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(local::server_for_image(cluster.spec.image())?)
        }
        Err(e) => Err(format!("cannot read {}: {e}", saved.display()).into()),
    }
}

/// Checks `--server-binary` and records it for the cluster in `dir`.
pub(super) fn save_server_binary(path: &Path, dir: &Path) -> Result<(), CmdError> {
    let (resolved, banner) = local::check_server_binary(path)?;
    let saved = saved_server_binary(dir);
    std::fs::write(&saved, format!("{}\n", resolved.display()))
        .map_err(|e| format!("cannot write {}: {e}", saved.display()))?;
    tracing::info!(binary = %resolved.display(), version = %banner, "server binary chosen");
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The spec in force: the manifest, with `local scale`'s counts when those are newer.
pub(super) fn effective_spec(manifest: &Path, dir: &Path) -> Result<RedisCluster, CmdError> {
    let mut cluster = read_manifest(manifest)?;
    let control = dir.join("desired.json");
    if let (Some(scaled), Some(edited)) = (modified(&control), modified(manifest))
        && scaled >= edited
        && let Some(d) = local::read_desired(dir)?
    {
        cluster.spec.masters = d.masters;
        cluster.spec.replicas = Some(d.replicas);
    }
    Ok(cluster)
}
