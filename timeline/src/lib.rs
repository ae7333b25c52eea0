#![forbid(unsafe_code)]
//! An HTML timeline of a trace: a lane per Redis node (role over time), the slot map as a
//! band per master, migrations in flight, the phase and conditions, every effect the engine
//! decided with the decision's own reason, and the faults and failures seen. One
//! self-contained file: the data, the style and a small script, no request made.
//!
//! [`build`] folds trace records into a [`Timeline`]; [`render`] writes the page for one
//! timeline, or two (a what-if: the recorded run and the changed one).

mod html;
pub mod model;
pub mod observe;

pub use html::{DATA_ID, embedded, render};
pub use model::{Builder, Note, NoteKind, Timeline, build};
