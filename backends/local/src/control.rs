//! Files through which separate `redis-operator local …` invocations talk to a running `up`:
//! `desired.json` (the shape `local scale` asks for) and `operator.pid` (whom `local down`
//! signals).

use crate::error::{LocalError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

const DESIRED: &str = "desired.json";
const OPERATOR_PID: &str = "operator.pid";

/// The shape a running `local up` should converge to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub masters: u32,
    /// Replicas per master.
    pub replicas: u32,
}

/// Write `desired.json` atomically (temp file + rename), so a reader never sees half a file.
pub fn write_desired(dir: &Path, masters: u32, replicas: u32) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(LocalError::io(dir))?;
    let body = serde_json::to_string_pretty(&Desired { masters, replicas })
        .map_err(|e| LocalError::io(dir.join(DESIRED))(std::io::Error::other(e)))?;
    write_atomically(&dir.join(DESIRED), body.as_bytes())
}

/// The shape in `desired.json`, `None` when no one wrote one.
pub fn read_desired(dir: &Path) -> Result<Option<Desired>> {
    let path = dir.join(DESIRED);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LocalError::io(path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| LocalError::BadDesired { path, source })
}

/// Record this process as the `up` serving `dir`. The file holds the pid and the process'
/// start time, so a pid later reused by an unrelated process is never signalled.
pub fn write_operator_pid(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(LocalError::io(dir))?;
    let pid = std::process::id();
    let start = start_time(pid).unwrap_or_default();
    write_atomically(
        &dir.join(OPERATOR_PID),
        format!("{pid} {start}\n").as_bytes(),
    )
}

/// The pid of the live `up` serving `dir`; `None` when there is no file or its process is gone.
pub fn read_operator_pid(dir: &Path) -> Result<Option<u32>> {
    let path = dir.join(OPERATOR_PID);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LocalError::io(path)(e)),
    };
    let mut fields = text.split_whitespace();
    let bad = || LocalError::BadPidFile {
        path: path.clone(),
        content: text.trim().to_owned(),
    };
    let pid: u32 = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let recorded_start: Option<u64> = fields.next().and_then(|s| s.parse().ok());
    let live = match (start_time(pid), recorded_start) {
        (None, _) => false,
        (Some(now), Some(then)) if then != 0 => now == then,
        (Some(_), _) => true,
    };
    Ok(live.then_some(pid))
}

/// Remove `operator.pid` (on a clean exit of `up`); a missing file is fine.
pub fn remove_operator_pid(dir: &Path) -> Result<()> {
    let path = dir.join(OPERATOR_PID);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LocalError::io(path)(e)),
        _ => Ok(()),
    }
}

/// Ask the running `up` serving `dir` to stop (SIGTERM). Returns its pid, or `None` when no
/// `up` is running there.
pub async fn signal_operator(dir: &Path) -> Result<Option<u32>> {
    let Some(pid) = read_operator_pid(dir)? else {
        return Ok(None);
    };
    crate::process::signal(pid, "TERM").await?;
    Ok(Some(pid))
}

/// Field 22 of `/proc/<pid>/stat`: start time in clock ticks since boot, `None` when the
/// process does not exist.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised comm start at field 3 (state); start time is field 22.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after.split_whitespace().nth(19)?.parse().ok()
}

fn write_atomically(path: &Path, body: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(LocalError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(LocalError::io(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rol-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn desired_shape_round_trips_and_is_none_before_anyone_writes_it() {
        let d = tmp("desired");
        assert_eq!(read_desired(&d).unwrap(), None);
        write_desired(&d, 4, 2).unwrap();
        assert_eq!(
            read_desired(&d).unwrap(),
            Some(Desired {
                masters: 4,
                replicas: 2
            })
        );
        std::fs::write(d.join(DESIRED), "{").unwrap();
        assert!(
            read_desired(&d)
                .unwrap_err()
                .to_string()
                .contains("desired.json")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_operator_pid_file_names_this_process_until_removed() {
        let d = tmp("pid");
        assert_eq!(read_operator_pid(&d).unwrap(), None);
        write_operator_pid(&d).unwrap();
        assert_eq!(read_operator_pid(&d).unwrap(), Some(std::process::id()));
        remove_operator_pid(&d).unwrap();
        assert_eq!(read_operator_pid(&d).unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_pid_file_whose_process_started_at_another_time_is_stale() {
        let d = tmp("stale");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(OPERATOR_PID), format!("{} 1\n", std::process::id())).unwrap();
        assert_eq!(read_operator_pid(&d).unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
