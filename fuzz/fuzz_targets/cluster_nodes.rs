//! `CLUSTER NODES` and `INFO` parsing must return errors, never panic, on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = engine::parse::parse_cluster_nodes(text);
        let _ = engine::parse::parse_info(text);
    }
});
