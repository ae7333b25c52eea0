//! Local mode on a full disk: a small tmpfs (mounted by the test, which runs as root in CI as
//! here), filled before `local up` starts. It fails with one line naming the cause, starts no
//! redis-server and leaves no state behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 64 KiB tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str) -> Tmpfs {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }

    /// Writes until the file system refuses with ENOSPC.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        for _ in 0..1024 {
            if let Err(e) = f.write_all(&block).and_then(|()| f.flush()) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}");
                return;
            }
        }
        panic!("a 64 KiB tmpfs took 4 MiB");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Whether any process runs with `path` in its command line.
fn process_mentions(path: &Path) -> bool {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&needle))
            .unwrap_or(false)
    })
}

#[test]
fn local_up_on_a_full_disk_fails_with_one_line_and_starts_no_server() {
    let disk = Tmpfs::mount("local-full-disk");
    disk.fill();
    let state = disk.0.join("state");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/local-3x1.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_redis-operator"))
        .args(["local", "up", "-f"])
        .arg(&manifest)
        .arg("--dir")
        .arg(&state)
        .args(["--listen", "off"])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("No space left on device"), "{stderr}");
    assert!(
        !process_mentions(&state),
        "a process was started on the full disk"
    );
    assert!(!state.exists(), "state was left behind: {stderr}");
}
