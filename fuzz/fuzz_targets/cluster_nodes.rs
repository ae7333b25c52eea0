//! libFuzzer entry for the `cluster_nodes` target; its body (and what it asserts) is
//! `fuzzing::cluster_nodes`, which the stable harness runs in CI too.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::cluster_nodes(data));
