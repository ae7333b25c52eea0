//! The HTML timeline looked at as a person would: `simulate replay --html` writes the page,
//! a real headless Chromium (Debian's `chromium`, installed by scripts/setup.sh) opens it,
//! and the test reads what the browser shows: the rendered DOM, its console and its network
//! log. Chromium runs with its own background traffic switched off and every name resolving
//! nowhere, so nothing leaves the machine whatever it tries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::trace::TraceRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/traces")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("html_timeline");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes the page for an example trace through the binary, as a user would.
fn page_for(trace: &str) -> PathBuf {
    let out = scratch(&trace.replace(".jsonl", ".html"));
    let run = Command::new(env!("CARGO_BIN_EXE_redis-operator"))
        .args(["simulate", "replay"])
        .arg(traces_dir().join(trace))
        .arg("--html")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(
        text(&run.stdout).contains("wrote "),
        "{}",
        text(&run.stdout)
    );
    out
}

/// Headless Chromium with no traffic of its own (no updates, no sync, no sign-in), a proxy
/// that does not exist and names that resolve nowhere: a request the page made would show
/// in the net log, and could go nowhere.
fn chromium(profile: &Path, args: &[&str]) -> Output {
    let version = Command::new("chromium").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "chromium is not installed: run scripts/setup.sh (Debian package `chromium`)"
    );
    Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

/// The tags of a serialized DOM, each as its name and attributes (Chromium writes every
/// attribute as name="value").
fn tags(dom: &str) -> Vec<(String, BTreeMap<String, String>)> {
    // Script text is not markup: the page's own script spells tags in strings.
    let mut markup = String::new();
    let mut rest = dom;
    while let Some(open) = rest.find("<script") {
        markup.push_str(&rest[..open]);
        let close = rest[open..]
            .find("</script>")
            .map_or(rest.len(), |c| open + c + 9);
        rest = &rest[close..];
    }
    markup.push_str(rest);
    let mut out = Vec::new();
    for chunk in markup.split('<').skip(1) {
        let Some(end) = chunk.find('>') else { continue };
        let inside = &chunk[..end];
        let name: String = inside.chars().take_while(|c| !c.is_whitespace()).collect();
        let mut attrs = BTreeMap::new();
        let mut rest = &inside[name.len()..];
        while let Some(eq) = rest.find("=\"") {
            let key = rest[..eq].trim().to_string();
            let after = &rest[eq + 2..];
            let Some(close) = after.find('"') else { break };
            attrs.insert(key, after[..close].to_string());
            rest = &after[close + 1..];
        }
        out.push((name, attrs));
    }
    out
}

fn load(trace: &str) -> Vec<TraceRecord> {
    std::fs::read_to_string(traces_dir().join(trace))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A member's role at one record, read straight from the trace.
fn role(rec: &TraceRecord, o: u32) -> &'static str {
    match rec.observation.members.get(&o) {
        None => "absent",
        Some(m) if !m.running => "stopped",
        Some(m) => match m.redis.as_ref().and_then(|s| s.myself()) {
            None => "silent",
            Some(me) if me.is_master() => "master",
            Some(_) => "replica",
        },
    }
}

/// Requests the page itself made (the network isolation key of a page opened from disk is
/// `file://`), from Chromium's net log.
fn page_requests(net_log: &Path) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net_log).unwrap()).unwrap();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            let url = p["url"].as_str()?;
            let from_page = p["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("file://"));
            (from_page && !url.starts_with("file:")).then(|| url.to_string())
        })
        .collect()
}

#[test]
fn the_failover_page_renders_in_chromium_with_no_error_and_no_request_and_lanes_match_the_trace() {
    let page = page_for("failover.jsonl");
    let profile = scratch("profile-dom");
    let net_log = scratch("net-log.json");
    let _ = std::fs::remove_file(&net_log);
    let out = chromium(
        &profile,
        &[
            &format!("--log-net-log={}", net_log.display()),
            "--window-size=1400,900",
            "--dump-dom",
            &format!("file://{}", page.display()),
        ],
    );
    let (dom, log) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert_eq!(
        page_requests(&net_log),
        Vec::<String>::new(),
        "the page made requests"
    );

    let tags = tags(&dom);
    let body = &tags.iter().find(|(n, _)| n == "body").unwrap().1;
    assert_eq!(
        body.get("data-rendered").map(String::as_str),
        Some("1"),
        "{body:?}"
    );
    assert_eq!(body.get("data-errors"), None, "{body:?}");

    // Lanes: one per member, each drawn as the runs of roles the trace shows.
    let records = load("failover.jsonl");
    let mut lanes: BTreeMap<u32, Vec<(String, u32, u32)>> = BTreeMap::new();
    let mut current = None;
    for (name, a) in &tags {
        if name == "g" {
            current = (a.get("class").map(String::as_str) == Some("lane"))
                .then(|| a["data-ordinal"].parse::<u32>().unwrap());
            if let Some(o) = current {
                lanes.entry(o).or_default();
            }
        }
        if let (Some(o), "rect") = (current, name.as_str())
            && a.get("class").map(String::as_str) == Some("span")
        {
            let n = |k: &str| a[k].parse::<u32>().unwrap();
            lanes
                .get_mut(&o)
                .unwrap()
                .push((a["data-role"].clone(), n("data-a"), n("data-b")));
        }
    }
    assert_eq!(
        lanes.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    for (&o, drawn) in &lanes {
        let mut want: Vec<(String, u32, u32)> = Vec::new();
        for (i, rec) in records.iter().enumerate() {
            let (r, i) = (role(rec, o).to_string(), i as u32);
            match want.last_mut() {
                Some(last) if last.0 == r => last.2 = i + 1,
                _ => want.push((r, i, i + 1)),
            }
        }
        // A run keeps going while the role, master and slot count stay: compare by record.
        for i in 0..records.len() as u32 {
            let shown = drawn
                .iter()
                .find(|s| s.1 <= i && i < s.2)
                .map(|s| s.0.as_str());
            let expected = want
                .iter()
                .find(|s| s.1 <= i && i < s.2)
                .map(|s| s.0.as_str());
            assert_eq!(shown, expected, "node #{o} at record {i}");
        }
    }

    // Bands: at the first record #0's slots are served by nobody; at the last, by #3.
    let bands: Vec<&BTreeMap<String, String>> = tags
        .iter()
        .filter(|(n, a)| n == "rect" && a.get("class").map(String::as_str) == Some("band"))
        .map(|(_, a)| a)
        .collect();
    let band_at = |record: u32, slot: u32| {
        bands
            .iter()
            .find(|b| {
                let n = |k: &str| b[k].parse::<u32>().unwrap();
                n("data-a") <= record
                    && record < n("data-b")
                    && n("data-start") <= slot
                    && slot <= n("data-end")
            })
            .map(|b| b["data-owner"].clone())
    };
    let last = records.len() as u32 - 1;
    assert_eq!(
        band_at(0, 0).as_deref(),
        Some(""),
        "slot 0 unserved while #0 is down"
    );
    assert_eq!(band_at(0, 6000).as_deref(), Some("1"));
    assert_eq!(
        band_at(last, 0).as_deref(),
        Some("3"),
        "#3 took over #0's slots"
    );
    assert_eq!(band_at(last, 16383).as_deref(), Some("2"));
}

#[test]
fn a_linked_record_opens_with_its_effects_and_the_reason_that_chose_them() {
    let page = page_for("failover.jsonl");
    let records = load("failover.jsonl");
    let profile = scratch("profile-detail");
    let out = chromium(
        &profile,
        &[
            "--window-size=1400,900",
            "--dump-dom",
            &format!("file://{}#record=1", page.display()),
        ],
    );
    let dom = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = dom.find("<aside id=\"detail\"").expect("a detail panel");
    let panel = &dom[start..start + dom[start..].find("</aside>").unwrap()];
    assert!(panel.contains("data-record=\"1\""), "{panel}");
    let rec = &records[1];
    assert!(!rec.decision.effects.is_empty());
    for e in &rec.decision.effects {
        assert!(panel.contains(&e.to_string()), "{e} in {panel}");
    }
    let why = rec
        .decision
        .summary
        .replace('&', "&amp;")
        .replace('<', "&lt;");
    assert!(panel.contains(&why), "the reason {why:?} in {panel}");
}

#[test]
fn a_screenshot_of_the_failover_page_is_a_picture() {
    let page = page_for("failover.jsonl");
    let png = scratch("failover.png");
    let _ = std::fs::remove_file(&png);
    let out = chromium(
        &scratch("profile-shot"),
        &[
            "--window-size=1400,760",
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", page.display()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // A blank 1400x760 page compresses to a few KB; the timeline has colour everywhere.
    assert!(bytes.len() > 20_000, "{} bytes", bytes.len());
}
