//! What `local up` shows while it runs. On a terminal: one block (phase and reason, a slot
//! bar per master, migration progress) redrawn in place; log lines go through the same lock,
//! which erases the block before a log line and draws it again after, so the two never
//! interleave. On a file or a pipe: plain lines, each printed once when it changes, and no
//! escape sequence at all.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};

#[derive(Default)]
struct State {
    tty: bool,
    /// Phase line and slot bars, from the last pass.
    status: Vec<String>,
    /// Migration progress, while slots move.
    progress: Option<String>,
    /// Lines of the block now on screen (terminal only).
    drawn: usize,
    /// What plain mode printed last, to print each change once.
    printed_status: Vec<String>,
    printed_progress: Option<String>,
}

fn state() -> MutexGuard<'static, State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            Mutex::new(State {
                tty: std::io::stderr().is_terminal(),
                ..State::default()
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Whether stderr is a terminal (the live block is drawn, logs may be coloured).
pub fn is_tty() -> bool {
    state().tty
}

impl State {
    fn erase(&mut self, err: &mut impl Write) {
        if self.drawn > 0 {
            // Up to the block's first line, then clear to the end of the screen.
            let _ = write!(err, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, err: &mut impl Write) {
        let lines: Vec<&String> = self.status.iter().chain(self.progress.iter()).collect();
        for l in &lines {
            let _ = writeln!(err, "{l}");
        }
        self.drawn = lines.len();
        let _ = err.flush();
    }

    fn redraw(&mut self) {
        let mut err = std::io::stderr().lock();
        self.erase(&mut err);
        self.draw(&mut err);
    }
}

/// The block's status part: the phase line first, then the slot bars. Plain mode prints the
/// phase line when it changes and the bars when they change.
pub fn set_status(lines: Vec<String>) {
    let mut s = state();
    if s.tty {
        s.status = lines;
        s.redraw();
        return;
    }
    let mut err = std::io::stderr().lock();
    let head_changed = lines.first() != s.printed_status.first();
    let bars_changed = lines.get(1..) != s.printed_status.get(1..);
    if head_changed && let Some(head) = lines.first() {
        let _ = writeln!(err, "{head}");
    }
    if bars_changed {
        for l in lines.iter().skip(1) {
            let _ = writeln!(err, "{l}");
        }
    }
    s.printed_status = lines;
}

/// The migration progress line (`None` once nothing moves).
pub fn set_progress(line: Option<String>) {
    let mut s = state();
    if s.tty {
        s.progress = line;
        s.redraw();
        return;
    }
    if line != s.printed_progress
        && let Some(l) = &line
    {
        let _ = writeln!(std::io::stderr().lock(), "{l}");
    }
    s.printed_progress = line;
}

/// A line that stays (a warning, a data loss): above the block on a terminal.
pub fn line(text: &str) {
    let mut s = state();
    let mut err = std::io::stderr().lock();
    if s.tty {
        s.erase(&mut err);
        let _ = writeln!(err, "{text}");
        s.draw(&mut err);
    } else {
        let _ = writeln!(err, "{text}");
    }
}

/// The block is finished with: it stays on screen as it is, and later output goes below it.
pub fn finish() {
    let mut s = state();
    s.drawn = 0;
    s.status.clear();
    s.progress = None;
}

/// `tracing`'s writer: each log line is written with the block erased, then the block comes
/// back below it.
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(Vec::new())
    }
}

/// One log record, buffered, then written under the console's lock.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut s = state();
        let mut err = std::io::stderr().lock();
        if s.tty {
            s.erase(&mut err);
            let _ = err.write_all(&self.0);
            s.draw(&mut err);
        } else {
            let _ = err.write_all(&self.0);
        }
    }
}
