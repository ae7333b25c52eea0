//! The data a page embeds says what the trace says: each member's role at each record, the
//! slot map as the masters claim it, every effect with the decision's reason. Checked against
//! the committed example traces, read here without the crate's own helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::trace::TraceRecord;
use serde_json::Value;
use std::path::PathBuf;

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/traces")
}

fn load(name: &str) -> Vec<TraceRecord> {
    std::fs::read_to_string(traces_dir().join(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const EXAMPLES: [&str; 4] = [
    "bootstrap.jsonl",
    "failover.jsonl",
    "interrupted-migration.jsonl",
    "scale-out.jsonl",
];

/// The page for `records`, and the first timeline it embeds, parsed back from the HTML.
fn page_data(records: &[TraceRecord]) -> (String, Value) {
    let tl = timeline::build("test", records, Vec::new());
    let page = timeline::render("test", &[tl]).unwrap();
    let json = timeline::embedded(&page).expect("the page embeds its data");
    let all: Value = serde_json::from_str(json).unwrap();
    (page.clone(), all[0].clone())
}

/// The value of the span of `spans` that holds record `i`.
fn at(spans: &Value, i: u64) -> Option<&Value> {
    spans
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["a"].as_u64().unwrap() <= i && i < s["b"].as_u64().unwrap())
        .map(|s| &s["v"])
}

fn role_in_trace(rec: &TraceRecord, ordinal: u32) -> &'static str {
    match rec.observation.members.get(&ordinal) {
        None => "absent",
        Some(m) if !m.running => "stopped",
        Some(m) => match &m.redis {
            None => "silent",
            Some(state) => {
                let me = state.nodes.iter().find(|n| n.flags.myself).unwrap();
                if me.master_id.is_none() && !me.flags.replica {
                    "master"
                } else {
                    "replica"
                }
            }
        },
    }
}

#[test]
fn every_member_has_a_lane_whose_role_at_each_record_is_the_one_the_trace_shows() {
    for name in EXAMPLES {
        let records = load(name);
        let (_, data) = page_data(&records);
        let lanes = data["lanes"].as_array().unwrap();
        let mut members: Vec<u32> = records
            .iter()
            .flat_map(|r| r.observation.members.keys().copied())
            .collect();
        members.sort_unstable();
        members.dedup();
        let drawn: Vec<u32> = lanes
            .iter()
            .map(|l| l["o"].as_u64().unwrap() as u32)
            .collect();
        assert_eq!(drawn, members, "{name}: one lane per member, in order");
        for lane in lanes {
            let o = lane["o"].as_u64().unwrap() as u32;
            for (i, rec) in records.iter().enumerate() {
                let want = role_in_trace(rec, o);
                let got = at(&lane["sp"], i as u64).map_or("absent", |v| v["r"].as_str().unwrap());
                assert_eq!(got, want, "{name}: node #{o} at record {i}");
            }
        }
    }
}

#[test]
fn the_slot_bands_cover_every_slot_and_each_owner_claims_its_band_itself() {
    for name in EXAMPLES {
        let records = load(name);
        let (_, data) = page_data(&records);
        for (i, rec) in records.iter().enumerate() {
            let bands = at(&data["slots"], i as u64).unwrap().as_array().unwrap();
            let mut next = 0u64;
            for b in bands {
                let (start, end) = (b[0].as_u64().unwrap(), b[1].as_u64().unwrap());
                assert_eq!(start, next, "{name} record {i}: bands are contiguous");
                next = end + 1;
                // Who claims the first and the last slot of the band, among running masters.
                let claimants = |slot: u64| -> Vec<u64> {
                    rec.observation
                        .members
                        .iter()
                        .filter(|(_, m)| m.running)
                        .filter_map(|(&o, m)| {
                            let me = m.redis.as_ref()?.nodes.iter().find(|n| n.flags.myself)?;
                            let mine = me.master_id.is_none()
                                && me.slots.iter().any(|r| {
                                    u64::from(r.start) <= slot && slot <= u64::from(r.end)
                                });
                            mine.then_some(u64::from(o))
                        })
                        .collect()
                };
                for slot in [start, end] {
                    let who = claimants(slot);
                    match b[2].as_u64() {
                        Some(owner) => assert!(
                            who.contains(&owner),
                            "{name} record {i}: #{owner} claims slot {slot} (claimants {who:?})"
                        ),
                        None => assert!(
                            who.is_empty(),
                            "{name} record {i}: slot {slot} drawn unserved, claimed by {who:?}"
                        ),
                    }
                }
            }
            assert_eq!(next, 16384, "{name} record {i}: bands end at 16383");
        }
    }
}

#[test]
fn every_effect_is_embedded_with_the_summary_of_the_decision_that_chose_it() {
    for name in EXAMPLES {
        let records = load(name);
        let (_, data) = page_data(&records);
        let strings = data["strings"].as_array().unwrap();
        let text = |v: &Value| {
            strings[v.as_u64().unwrap() as usize]
                .as_str()
                .unwrap()
                .to_string()
        };
        let recs = data["records"].as_array().unwrap();
        assert_eq!(recs.len(), records.len());
        for (i, (rec, got)) in records.iter().zip(recs).enumerate() {
            assert_eq!(text(&got["s"]), rec.decision.summary, "{name} record {i}");
            assert_eq!(got["p"], rec.decision.phase.as_str());
            let effects: Vec<String> = got["e"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| text(&e[1]))
                .collect();
            let want: Vec<String> = rec
                .decision
                .effects
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(effects, want, "{name} record {i}");
        }
    }
}

#[test]
fn the_failover_example_shows_the_dead_master_unserved_then_its_replica_serving_its_slots() {
    let records = load("failover.jsonl");
    let (_, data) = page_data(&records);
    let last = records.len() as u64 - 1;
    let lane = |o: usize| &data["lanes"][o]["sp"];
    assert_eq!(at(lane(0), 0).unwrap()["r"], "stopped");
    assert_eq!(at(lane(3), 0).unwrap()["r"], "replica");
    assert_eq!(at(lane(3), 0).unwrap()["g"], 0, "#3 replicates the dead #0");
    let first = at(&data["slots"], 0).unwrap();
    assert_eq!(first[0], serde_json::json!([0, 5461, null, false]));
    assert_eq!(at(lane(3), last).unwrap()["r"], "master");
    assert_eq!(at(lane(0), last).unwrap()["r"], "replica");
    assert_eq!(
        at(lane(0), last).unwrap()["g"],
        3,
        "#0 came back as #3's replica"
    );
    let end = at(&data["slots"], last).unwrap();
    assert_eq!(end[0][2], 3, "#3 serves the slots #0 had: {end}");
    let notes = data["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["k"] == "failure" && n["o"] == 0),
        "a failure of #0 is noted: {notes:?}"
    );
}

#[test]
fn text_from_a_trace_cannot_end_the_embedded_script_or_inject_markup() {
    let mut records = load("bootstrap.jsonl");
    let evil = "</script><script>alert(1)</script><!--";
    records[0].decision.summary = evil.to_string();
    let tl = timeline::build("<b>title</b>", &records, Vec::new());
    let page = timeline::render("<b>title</b>", &[tl]).unwrap();
    assert!(!page.contains("<script>alert(1)"), "the summary is escaped");
    assert!(!page.contains("<b>title</b>"), "the title is escaped");
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "only the page's own scripts end"
    );
    let data: Value = serde_json::from_str(timeline::embedded(&page).unwrap()).unwrap();
    let s = data[0]["records"][0]["s"].as_u64().unwrap() as usize;
    assert_eq!(data[0]["strings"][s], evil, "and reads back unchanged");
}

#[test]
fn the_page_loads_nothing_from_anywhere() {
    let (page, _) = page_data(&load("failover.jsonl"));
    // The SVG namespace is a name, not an address anything is fetched from.
    let page = page.replace("\"http://www.w3.org/2000/svg\"", "");
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for needle in [
        "http://", "https://", " src=", "<link", "@import", "url(http",
    ] {
        assert!(!page.contains(needle), "the page holds no {needle:?}");
    }
}
