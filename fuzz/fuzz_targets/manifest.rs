//! libFuzzer entry for the `manifest` target; its body (and what it asserts) is
//! `fuzzing::manifest`, which the stable harness runs in CI too.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::manifest(data));
