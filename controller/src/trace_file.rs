//! Trace files that rotate by size: `redis-operator run --record DIR` keeps one per cluster,
//! `DIR/<namespace>/<name>.jsonl`, moved to `<name>.1.jsonl` (and `.2`, … up to `keep`)
//! when it grows past `max_bytes`. Rotation happens only between lines, so every file is a
//! trace `simulate replay` reads on its own.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where and how large each cluster's trace may grow.
#[derive(Debug, Clone)]
pub struct TraceFiles {
    pub dir: PathBuf,
    /// A file is rotated once it holds at least this many bytes (at the next line).
    pub max_bytes: u64,
    /// Rotated files kept besides the current one; older ones are removed.
    pub keep: u32,
}

impl TraceFiles {
    /// The trace of cluster `namespace/name`, appended to (created with its directory).
    pub fn open(&self, namespace: &str, name: &str) -> io::Result<RotatingFile> {
        let dir = self.dir.join(namespace);
        std::fs::create_dir_all(&dir)?;
        RotatingFile::open(dir.join(format!("{name}.jsonl")), self.max_bytes, self.keep)
    }
}

/// An append-only file that starts afresh past a size, keeping `keep` older ones.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    keep: u32,
    /// The last byte written ended a line: only then may the file rotate.
    at_line_start: bool,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            written,
            max_bytes,
            keep,
            at_line_start: true,
        })
    }

    /// `<stem>.<n>.jsonl` beside the current file.
    fn rotated(&self, n: u32) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        dir.join(format!("{stem}.{n}.jsonl"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.at_line_start && self.written >= self.max_bytes && !buf.is_empty() {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if n > 0 {
            self.at_line_start = buf[n - 1] == b'\n';
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trace-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_file_past_its_size_rotates_between_lines_and_keeps_only_the_newest() {
        let files = TraceFiles {
            dir: scratch("rotate"),
            max_bytes: 100,
            keep: 2,
        };
        let mut f = files.open("ns", "demo").unwrap();
        // 40-byte lines, each written in two pieces as `writeln!` may.
        for i in 0..12 {
            write!(f, "{{\"line\":{i:02},\"pad\":\"").unwrap();
            writeln!(f, "{}\"}}", "x".repeat(20)).unwrap();
        }
        f.flush().unwrap();
        let dir = files.dir.join("ns");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["demo.1.jsonl", "demo.2.jsonl", "demo.jsonl"]);
        for name in &names {
            let text = read(name);
            assert!(text.ends_with('\n'), "{name} ends with a whole line");
            for line in text.lines() {
                assert!(
                    line.starts_with("{\"line\":") && line.ends_with("\"}"),
                    "{line}"
                );
            }
        }
        // Three lines (120 bytes) per file: the newest in demo.jsonl, the oldest dropped.
        assert!(read("demo.jsonl").starts_with("{\"line\":09"));
        assert!(read("demo.1.jsonl").starts_with("{\"line\":06"));
        assert!(read("demo.2.jsonl").starts_with("{\"line\":03"));
        let _ = std::fs::remove_dir_all(&files.dir);
    }

    #[test]
    fn an_existing_trace_is_appended_to_and_counts_towards_its_size() {
        let files = TraceFiles {
            dir: scratch("append"),
            max_bytes: 10,
            keep: 1,
        };
        let dir = files.dir.join("ns");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("demo.jsonl"), "{\"old\":1234567}\n").unwrap();
        let mut f = files.open("ns", "demo").unwrap();
        writeln!(f, "{{\"new\":1}}").unwrap();
        f.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("demo.1.jsonl")).unwrap(),
            "{\"old\":1234567}\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("demo.jsonl")).unwrap(),
            "{\"new\":1}\n"
        );
        let _ = std::fs::remove_dir_all(&files.dir);
    }
}
