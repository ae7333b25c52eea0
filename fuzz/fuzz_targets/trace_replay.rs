//! libFuzzer entry for the `trace_replay` target; its body (and what it asserts) is
//! `fuzzing::trace_replay`, which the stable harness runs in CI too.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::trace_replay(data));
