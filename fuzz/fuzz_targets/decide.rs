//! `decide` must never panic on any observation that deserializes, however contradictory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((desired, phase, obs)) = serde_json::from_slice::<(
        engine::Desired,
        engine::Phase,
        engine::Observation,
    )>(data)
    {
        let a = engine::decide(&desired, phase, &obs);
        assert_eq!(a, engine::decide(&desired, phase, &obs), "decide is deterministic");
    }
});
