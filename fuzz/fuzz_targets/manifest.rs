//! Manifest parsing and validation must never panic, whatever the user feeds them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cluster) = spec::parse_manifest(text)
    {
        let _ = spec::validate(&cluster.spec, None);
    }
});
