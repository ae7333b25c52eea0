//! The slot map in a terminal: one bar per master across slots 0-16383 (`█` a chunk it owns
//! wholly, `▒` partly, `·` not at all), for `local status` and `local up`'s live block.

use engine::{Observation, SLOT_COUNT};

/// Characters per bar: each stands for 16384 / 32 = 512 slots.
pub const BAR_WIDTH: usize = 32;

/// One line per master that answers and claims slots, in ordinal order.
pub fn slot_bars(obs: &Observation, width: usize) -> Vec<String> {
    let width = width.max(1);
    let chunk = f64::from(SLOT_COUNT) / width as f64;
    let mut out = Vec::new();
    for (ordinal, m) in &obs.members {
        let Some(me) = m.redis.as_ref().and_then(|s| s.myself()) else {
            continue;
        };
        if !me.is_master() || me.slots.is_empty() {
            continue;
        }
        let mut owned = vec![0u32; width];
        for slot in engine::slots::expand(&me.slots) {
            let i = ((f64::from(slot) / chunk) as usize).min(width - 1);
            owned[i] += 1;
        }
        let bar: String = owned
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let size =
                    ((i + 1) as f64 * chunk).round() as u32 - (i as f64 * chunk).round() as u32;
                match n {
                    0 => '·',
                    n if n >= size => '█',
                    _ => '▒',
                }
            })
            .collect();
        let count = me.slot_count();
        let addr = m
            .addr
            .as_ref()
            .map_or_else(|| "-".to_string(), |a| a.to_string());
        out.push(format!(
            "  #{ordinal:<3} {addr:<21} {bar} {count:>5} slots {:>5.1}%",
            f64::from(count) * 100.0 / f64::from(SLOT_COUNT)
        ));
    }
    out
}

/// Migration progress: slots and keys, rate, and time left at the rate so far.
pub fn progress_line(p: &redis_backend::ProgressSnapshot) -> String {
    let secs = p.elapsed.as_secs_f64();
    let left = if p.slots_done > 0 && secs > 0.0 {
        let per_slot = secs / p.slots_done as f64;
        format!(", ~{:.0} s left", per_slot * p.slots_pending() as f64)
    } else {
        String::new()
    };
    format!(
        "  migrating: {}/{} slots, {} keys moved, {:.0} keys/s, {} slots left{left}",
        p.slots_done,
        p.slots_total,
        p.keys_moved,
        p.keys_per_second(),
        p.slots_pending()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use engine::trace::TraceRecord;

    fn first_record(name: &str) -> TraceRecord {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/traces")
            .join(name);
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }

    #[test]
    fn each_master_gets_a_bar_where_its_slots_are() {
        // failover.jsonl, first record: #0 is down, #1 owns 5462-10922, #2 10923-16383.
        let rec = first_record("failover.jsonl");
        let bars = slot_bars(&rec.observation, BAR_WIDTH);
        assert_eq!(bars.len(), 2, "{bars:#?}");
        let bar = |line: &str| -> String {
            line.chars()
                .filter(|c| matches!(c, '█' | '▒' | '·'))
                .collect()
        };
        assert!(bars[0].starts_with("  #1 "), "{}", bars[0]);
        assert!(bars[0].contains(" 5461 slots  33.3%"), "{}", bars[0]);
        // 512 slots a character: 5462 starts in chunk 10 (partly), 10922 ends in chunk 21.
        let b1 = bar(&bars[0]);
        assert_eq!(b1.chars().count(), BAR_WIDTH);
        assert_eq!(&b1, "··········▒██████████▒··········");
        let b2 = bar(&bars[1]);
        assert_eq!(&b2, "·····················▒██████████");
    }
}
