//! The HTML timeline of a large generated trace: 10,000 records of 100 masters and 100
//! replicas, with a master failing and its replica taking over every 40 records, a slot
//! migration in flight every 100, and two effects decided per record.
//! `cargo run --release -p redis-operator-timeline --example large_trace -- [OUT.html] [RECORDS] [MASTERS] [TRACE.jsonl]`
//!
//! With `TRACE.jsonl` the records are also written there, so the whole path a user takes can
//! be timed: `redis-operator simulate replay TRACE.jsonl --html OUT.html` (reading, replaying
//! through today's engine and drawing; the generated decisions are not the engine's, so the
//! replay reports differences).
//!
//! Each node's view holds only its own `CLUSTER NODES` line (with every node's view of every
//! other, the trace itself would be ~100 GB); the timeline reads roles and claims from those
//! lines, so the page is the same size it would be. Prints the time to fold and render the
//! page next to the time to serialise the same records as JSON Lines (the peer), and the size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::trace::TraceRecord;
use engine::{
    Addr, ClusterNode, Condition, ConditionKind, Decision, Desired, Effect, LinkState, Member,
    NodeFlags, NodeState, Observation, OpenSlot, Phase, SlotRange,
};
use std::collections::BTreeMap;
use std::time::Instant;

fn id(n: u32) -> String {
    format!("{n:040x}")
}

fn entry(n: u32, master: Option<u32>, epoch: u64, slots: Vec<SlotRange>) -> ClusterNode {
    ClusterNode {
        id: id(n),
        addr: Some(Addr::new(format!("10.0.{}.{}", n / 256, n % 256), 6379)),
        hostname: None,
        flags: NodeFlags {
            myself: true,
            master: master.is_none(),
            replica: master.is_some(),
            ..NodeFlags::default()
        },
        master_id: master.map(id),
        ping_sent_ms: 0,
        pong_recv_ms: 0,
        config_epoch: epoch,
        link: LinkState::Connected,
        slots,
        open_slots: Vec::new(),
    }
}

/// Record `i` of the generated run.
fn record(i: u32, masters: u32) -> TraceRecord {
    let per = 16384 / masters;
    let range = |m: u32| {
        let end = if m + 1 == masters {
            16383
        } else {
            (m + 1) * per - 1
        };
        vec![SlotRange::new((m * per) as u16, end as u16)]
    };
    // Every 40 records (window k) the primary of shard k mod masters stops for 15 records;
    // 5 records in, its replica is elected. It comes back as the replica of the new primary.
    let (window, since) = (i / 40, i % 40);
    let mut members = BTreeMap::new();
    for s in 0..masters {
        let failing = window % masters == s;
        // Windows of this shard whose election has happened by record i.
        let done = |until: u32| (0..=until).filter(|k| k % masters == s).count() as u32;
        let before = if window == 0 { 0 } else { done(window - 1) };
        let elections = if failing && since >= 5 {
            before + 1
        } else {
            before
        };
        let of = |n: u32| if n.is_multiple_of(2) { s } else { s + masters };
        let (primary, secondary) = (of(elections), of(elections + 1));
        let failed = of(before);
        let down = failing && since < 15;
        let epoch = u64::from(elections) + 1;
        for (n, is_primary) in [(primary, true), (secondary, false)] {
            let running = !(down && n == failed);
            let mut me = if is_primary && running {
                entry(n, None, epoch, range(s))
            } else {
                entry(n, Some(primary), epoch, Vec::new())
            };
            let mut open_slot_keys = BTreeMap::new();
            if i % 100 < 3 && s == (i / 100) % masters && is_primary && running {
                let slot = range(s)[0].start;
                me.open_slots = vec![OpenSlot::Migrating {
                    slot,
                    target: id((s + 1) % masters),
                }];
                open_slot_keys.insert(slot, u64::from(30 - 10 * (i % 100)));
            }
            let redis = running.then(|| NodeState {
                id: id(n),
                nodes: vec![me].into(),
                cluster_ok: !down,
                current_epoch: epoch,
                repl_offset: u64::from(i),
                master_link_up: true,
                keys: u64::from(1000 + i / 10),
                open_slot_keys,
                ever_linked: true,
                serves_replicas: true,
                replicates_from: None,
                hands_over_source_first: false,
                replid: None,
                config: BTreeMap::new(),
            });
            members.insert(
                n,
                Member {
                    ordinal: n,
                    addr: Some(Addr::new(format!("10.0.{}.{}", n / 256, n % 256), 6379)),
                    running,
                    host: None,
                    fingerprint: None,
                    redis,
                },
            );
        }
    }
    let shard = (i / 40) % masters;
    let effects = vec![
        Effect::Meet {
            on: shard,
            ip: "10.0.0.1".to_string(),
            port: 6379,
        },
        Effect::MigrateSlots {
            from: shard,
            from_id: id(shard),
            to: (shard + 1) % masters,
            to_id: id((shard + 1) % masters),
            slots: vec![SlotRange::new(0, (i % 50) as u16)],
        },
    ];
    let phase = if i % 40 < 15 {
        Phase::Recovering
    } else {
        Phase::Ready
    };
    let cond = |kind, status: bool| Condition {
        kind,
        status,
        reason: format!("{kind:?}Reason"),
        message: format!("{kind:?} at record {}", i / 40 * 40),
    };
    TraceRecord {
        time: 1_700_000_000_000 + u64::from(i) * 1000,
        spec: Desired::new(masters, 1),
        phase_hint: phase,
        observation: Observation {
            now_ms: 1_700_000_000_000 + u64::from(i) * 1000,
            members,
            history: Default::default(),
        },
        decision: Decision {
            phase,
            effects,
            conditions: vec![
                cond(ConditionKind::Ready, phase == Phase::Ready),
                cond(ConditionKind::Progressing, phase != Phase::Ready),
                cond(ConditionKind::Degraded, false),
                cond(ConditionKind::Invalid, false),
            ],
            requeue_ms: Some(500),
            summary: format!("recovering shard {shard}"),
        },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .unwrap_or_else(|| "target/large-trace.html".to_string());
    let records: u32 = args.next().map_or(10_000, |s| s.parse().expect("RECORDS"));
    let masters: u32 = args.next().map_or(100, |s| s.parse().expect("MASTERS"));
    let mut trace = args.next().map(|path| {
        std::io::BufWriter::new(std::fs::File::create(&path).expect("TRACE.jsonl can be created"))
    });
    let started = Instant::now();
    let mut builder = timeline::Builder::new("Generated trace", Vec::new());
    let mut serialise = std::time::Duration::ZERO;
    let mut jsonl_bytes = 0usize;
    let mut generate = std::time::Duration::ZERO;
    let mut fold = std::time::Duration::ZERO;
    for i in 0..records {
        let t = Instant::now();
        let rec = record(i, masters);
        generate += t.elapsed();
        let t = Instant::now();
        let line = serde_json::to_string(&rec).unwrap();
        jsonl_bytes += line.len() + 1;
        serialise += t.elapsed();
        if let Some(out) = trace.as_mut() {
            use std::io::Write;
            writeln!(out, "{line}").expect("TRACE.jsonl is written");
        }
        let t = Instant::now();
        builder.push(&rec);
        fold += t.elapsed();
    }
    if let Some(mut out) = trace.take() {
        use std::io::Write;
        out.flush().expect("TRACE.jsonl is written");
    }
    let t = Instant::now();
    let tl = builder.finish();
    let page = timeline::render("Generated trace", &[tl]).unwrap();
    let render = t.elapsed() + fold;
    std::fs::write(&out, &page).unwrap();
    println!(
        "{records} records, {} nodes: trace {:.1} MiB as JSON Lines, page {:.1} MiB ({out})",
        masters * 2,
        jsonl_bytes as f64 / 1048576.0,
        page.len() as f64 / 1048576.0
    );
    println!(
        "fold + render {:.0} ms; peer: serialising the records as JSON Lines {:.0} ms; ratio {:.2} (generating them {:.0} ms, total {:.0} ms)",
        render.as_secs_f64() * 1000.0,
        serialise.as_secs_f64() * 1000.0,
        render.as_secs_f64() / serialise.as_secs_f64(),
        generate.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64() * 1000.0
    );
}
