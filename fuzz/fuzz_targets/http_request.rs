//! libFuzzer entry for the `http_request` target; its body (and what it asserts) is
//! `fuzzing::http_request`, which the stable harness runs in CI too.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::http_request(data));
