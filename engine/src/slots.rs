//! Hash slots and compact slot ranges.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// An inclusive range of hash slots, `start..=end`. Deserializing refuses a range outside
/// 0-16383 or one that ends before it starts, so no observation the engine is given (a trace,
/// a fuzzer's input) can hold a slot the cluster cannot have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "UncheckedRange")]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

/// A range as read from outside, before [`SlotRange`] accepts it.
#[derive(Deserialize)]
struct UncheckedRange {
    start: u16,
    end: u16,
}

impl TryFrom<UncheckedRange> for SlotRange {
    type Error = String;

    fn try_from(r: UncheckedRange) -> Result<Self, String> {
        if r.end >= SLOT_COUNT {
            Err(format!(
                "slot range {}-{} goes past the last slot (16383)",
                r.start, r.end
            ))
        } else if r.start > r.end {
            Err(format!(
                "slot range {}-{} ends before it starts",
                r.start, r.end
            ))
        } else {
            Ok(SlotRange::new(r.start, r.end))
        }
    }
}

/// `deserialize_with` for a map keyed by slot number: refuses keys of 16384 and above.
pub fn checked_slot_map<'de, D, V>(d: D) -> Result<std::collections::BTreeMap<u16, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    let map = std::collections::BTreeMap::<u16, V>::deserialize(d)?;
    if let Some(slot) = map.keys().find(|s| **s >= SLOT_COUNT) {
        return Err(serde::de::Error::custom(format!(
            "slot {slot} is not a slot (0-16383)"
        )));
    }
    Ok(map)
}

/// `deserialize_with` for a single slot number: refuses 16384 and above.
pub fn checked_slot<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let slot = u16::deserialize(d)?;
    if slot >= SLOT_COUNT {
        return Err(serde::de::Error::custom(format!(
            "slot {slot} is not a slot (0-16383)"
        )));
    }
    Ok(slot)
}

impl SlotRange {
    pub fn new(start: u16, end: u16) -> Self {
        debug_assert!(start <= end);
        Self { start, end }
    }

    pub fn single(slot: u16) -> Self {
        Self {
            start: slot,
            end: slot,
        }
    }

    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + use<> {
        self.start..=self.end
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Collapses a set of slots (any order, duplicates allowed) into sorted, merged ranges.
pub fn to_ranges(slots: impl IntoIterator<Item = u16>) -> Vec<SlotRange> {
    let mut sorted: Vec<u16> = slots.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<SlotRange> = Vec::new();
    for s in sorted {
        match out.last_mut() {
            Some(r) if u32::from(r.end) + 1 == u32::from(s) => r.end = s,
            _ => out.push(SlotRange::single(s)),
        }
    }
    out
}

/// Expands ranges into individual slots.
pub fn expand(ranges: &[SlotRange]) -> impl Iterator<Item = u16> + '_ {
    ranges.iter().flat_map(|r| r.iter())
}

/// Some slot is in both `a` and `b`.
pub fn overlap(a: &[SlotRange], b: &[SlotRange]) -> bool {
    a.iter()
        .any(|x| b.iter().any(|y| x.start.max(y.start) <= x.end.min(y.end)))
}

/// The slots in both `a` and `b`, as sorted, merged ranges.
pub fn common(a: &[SlotRange], b: &[SlotRange]) -> Vec<SlotRange> {
    let pieces = a.iter().flat_map(|x| {
        b.iter().filter_map(move |y| {
            let (start, end) = (x.start.max(y.start), x.end.min(y.end));
            (start <= end).then(|| SlotRange::new(start, end))
        })
    });
    to_ranges(pieces.flat_map(|r| r.iter()))
}

/// Total number of slots covered by `ranges` (ranges are assumed disjoint).
pub fn count(ranges: &[SlotRange]) -> u32 {
    ranges.iter().map(SlotRange::len).sum()
}

/// Formats ranges the way humans and `redis-cli` write them: `0-5460,10923`.
pub fn format_ranges(ranges: &[SlotRange]) -> String {
    ranges
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// CRC16/XMODEM, the hash Redis Cluster uses for key slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`, as Redis Cluster computes it: only the hash tag (the part between the
/// first `{` and the next `}`) counts when it is not empty.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOT_COUNT
}

/// Splits all 16384 slots into `parts` contiguous ranges whose sizes differ by at most one,
/// the larger ones first (the layout `redis-cli --cluster create` produces).
pub fn even_split(parts: u32) -> Vec<SlotRange> {
    if parts == 0 {
        return Vec::new();
    }
    let total = u32::from(SLOT_COUNT);
    let base = total / parts;
    let extra = total % parts;
    let mut start = 0u32;
    (0..parts)
        .map(|i| {
            let len = base + u32::from(i < extra);
            let r = SlotRange::new(start as u16, (start + len - 1) as u16);
            start += len;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_slots_are_the_ones_redis_computes_hash_tags_included() {
        // `CLUSTER KEYSLOT` on Redis 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{foo}:bar"), 12182);
        assert_eq!(key_slot(b"123456789"), 12739);
        // An empty tag is no tag: the whole key counts.
        assert_eq!(key_slot(b"{}foo"), crc16(b"{}foo") % SLOT_COUNT);
        assert_eq!(key_slot(b"foo{"), crc16(b"foo{") % SLOT_COUNT);
    }

    use super::*;

    #[test]
    fn ranges_merge_adjacent_and_drop_duplicates() {
        assert_eq!(
            to_ranges([5, 3, 4, 4, 9]),
            vec![SlotRange::new(3, 5), SlotRange::single(9)]
        );
    }

    #[test]
    fn even_split_covers_every_slot_once() {
        for parts in 1..=20 {
            let ranges = even_split(parts);
            assert_eq!(count(&ranges), 16384);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().map(|r| r.end), Some(16383));
            for w in ranges.windows(2) {
                assert_eq!(w[0].end + 1, w[1].start);
            }
        }
    }

    #[test]
    fn even_split_of_three_gives_the_extra_slot_to_the_first_master() {
        assert_eq!(
            format_ranges(&even_split(3)),
            "0-5461,5462-10922,10923-16383"
        );
    }
}
