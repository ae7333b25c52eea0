#![forbid(unsafe_code)]
//! The fuzz targets, one definition each: `fuzz/fuzz_targets/*.rs` hand them to libFuzzer
//! (nightly, `cargo fuzz`), and `tests/stable_harness.rs` runs them on stable in CI over the
//! committed seeds (`fuzz/seeds/<target>/`) and seeded mutations of them ([`mutate`]).
//!
//! Each target takes arbitrary bytes, feeds them to a real input surface of the operator and
//! panics when a property the code promises is broken; a panic inside the code under test is
//! a finding too. None of them touches the network, the file system or a clock that matters.

pub mod mutate;
mod targets;

pub use targets::{
    TARGETS, Target, cluster_info, cluster_nodes, decide, http_request, manifest, trace_replay,
};
