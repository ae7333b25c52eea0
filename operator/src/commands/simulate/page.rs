//! Writing HTML timelines: of a trace, of a simulated seed, of a what-if.

use crate::commands::{CmdError, CmdResult};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;
use timeline::{Note, NoteKind, Timeline};

/// Renders `timelines` into `path` and says where, how large and how long it took.
pub(super) fn write(path: &Path, title: &str, timelines: &[Timeline]) -> Result<(), CmdError> {
    let started = Instant::now();
    let page = timeline::render(title, timelines)?;
    std::fs::write(path, &page).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let records: usize = timelines.iter().map(|t| t.records.len()).sum();
    let lanes = timelines.iter().map(|t| t.lanes.len()).max().unwrap_or(0);
    writeln!(
        std::io::stdout().lock(),
        "wrote {} ({records} record(s), {lanes} node(s), {} KiB) in {} ms",
        path.display(),
        page.len().div_ceil(1024),
        started.elapsed().as_millis()
    )?;
    Ok(())
}

/// The injected faults of a simulated run as timeline notes.
pub(super) fn fault_notes(faults: &[(usize, &'static str)]) -> Vec<Note> {
    faults
        .iter()
        .map(|&(index, kind)| Note {
            index: index as u32,
            ordinal: None,
            kind: NoteKind::Fault,
            text: format!("injected: {}", kind.replace('_', " ")),
        })
        .collect()
}

/// `simulate run --seed S --html OUT`: runs the seed with recording on and draws it, pass or
/// fail; the exit code is the seed's.
pub(super) fn seed_page(seed: u64, cfg: &sim::SimConfig, out: &Path) -> CmdResult {
    let (result, recording) = sim::record_seed_with_faults(seed, cfg);
    let title = format!("Simulated seed {seed}");
    let tl = timeline::build(&title, &recording.records, fault_notes(&recording.faults));
    let verdict = match &result {
        Ok(r) => format!("seed {seed} passed in {} steps", r.steps),
        Err(e) => format!("seed {seed} failed at {e}"),
    };
    writeln!(std::io::stdout().lock(), "{verdict}")?;
    write(out, &title, &[tl])?;
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
