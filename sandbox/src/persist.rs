//! Keeps the store in `STATE_DIR/state.json`, written shortly after changes and at stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::SandboxError;
use crate::store::Store;

pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

pub fn load(store: &Store, dir: &Path) -> Result<(), SandboxError> {
    let path = state_file(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SandboxError::File {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let state = serde_json::from_slice(&text).map_err(|source| SandboxError::State {
        path: path.display().to_string(),
        source,
    })?;
    store.load_state(&state);
    Ok(())
}

pub fn save(store: &Store, dir: &Path) -> Result<(), SandboxError> {
    let path = state_file(dir);
    let file_err = |source| SandboxError::File {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(file_err)?;
    let text =
        serde_json::to_vec(&store.to_state()).map_err(|e| SandboxError::Encode(e.to_string()))?;
    // Write then rename, so a crash never leaves half a file.
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, text).map_err(file_err)?;
    std::fs::rename(&tmp, &path).map_err(file_err)?;
    Ok(())
}

pub async fn run(store: Arc<Store>, dir: PathBuf, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if store.is_dirty()
            && let Err(e) = save(&store, &dir)
        {
            tracing::warn!(error = %e, "cannot save state");
        }
    }
}
