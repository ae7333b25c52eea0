//! Seeded input mutation for the stable harness: what libFuzzer does with coverage, done
//! blindly but reproducibly (same seed, same inputs), so CI needs no nightly toolchain.
//!
//! Byte-level edits find parser crashes; for inputs that are JSON, edits of the parsed value
//! (numbers at their limits, elements dropped or doubled, strings swapped) keep most inputs
//! parseable, so they reach `decide` and the trace reader instead of stopping at the parser.

use serde_json::Value;

/// SplitMix64: tiny, seedable, good enough to choose mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Tokens worth inserting into any target's input: separators and values at the edges of what
/// the parsers accept.
const TOKENS: &[&[u8]] = &[
    b" ",
    b"\n",
    b"\r\n",
    b":",
    b"@",
    b",",
    b"-",
    b"[",
    b"]",
    b"->-",
    b"-<-",
    b"0",
    b"-1",
    b"16383",
    b"16384",
    b"65535",
    b"65536",
    b"18446744073709551615",
    b"18446744073709551616",
    b"myself,master",
    b"slave",
    b"fail?",
    b"noaddr",
    b"%",
    b"%zz",
    b"%ff",
    b"?",
    b"&",
    b"=",
    b"clusterName=",
    b"namespace=",
    b"\xff",
    b"\xc3\x28",
    b"\0",
    b"\"",
    b"{}",
    b"[]",
    b"null",
    b"~",
    b"*",
    b"&a",
    b"!!binary",
];

/// One to four stacked mutations of `seed`; `others` are spliced from.
pub fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    if rng.chance(2)
        && let Ok(mut value) = serde_json::from_slice::<Value>(seed)
    {
        for _ in 0..=rng.below(4) {
            mutate_value(rng, &mut value);
        }
        out = serde_json::to_vec(&value).unwrap_or(out);
        if !rng.chance(4) {
            return out;
        }
    }
    for _ in 0..=rng.below(4) {
        mutate_bytes(rng, &mut out, others);
    }
    out
}

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = data.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        2 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(i..i, bytes);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            data.drain(i..i + n);
        }
        4 if len > 0 => {
            // Repeat a piece, sometimes many times: long lines and huge queries.
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            let piece = data[i..i + n].to_vec();
            let times = if rng.chance(8) {
                1000
            } else {
                1 + rng.below(4)
            };
            let at = rng.below(len + 1);
            data.splice(at..at, piece.repeat(times));
        }
        5 if !others.is_empty() => {
            let other = &others[rng.below(others.len())];
            if !other.is_empty() {
                let i = rng.below(other.len());
                let n = 1 + rng.below((other.len() - i).min(256));
                let at = rng.below(len + 1);
                data.splice(at..at, other[i..i + n].iter().copied());
            }
        }
        6 if len > 0 => data.truncate(rng.below(len)),
        _ => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let at = rng.below(len + 1);
            data.splice(at..at, token.iter().copied());
        }
    }
}

/// Edits one randomly chosen place in a JSON value.
fn mutate_value(rng: &mut Rng, value: &mut Value) {
    let depth = rng.below(12);
    edit_at(rng, value, depth);
}

/// Descends `depth` levels through random elements (fewer when it reaches a leaf), then edits.
fn edit_at(rng: &mut Rng, here: &mut Value, depth: usize) {
    if depth > 0 {
        match here {
            Value::Array(items) if !items.is_empty() => {
                let i = rng.below(items.len());
                return edit_at(rng, &mut items[i], depth - 1);
            }
            Value::Object(map) if !map.is_empty() => {
                let i = rng.below(map.len());
                if let Some(v) = map.values_mut().nth(i) {
                    return edit_at(rng, v, depth - 1);
                }
            }
            _ => {}
        }
    }
    match here {
        Value::Array(items) if !items.is_empty() && rng.chance(2) => {
            let i = rng.below(items.len());
            if rng.chance(2) {
                items.remove(i);
            } else {
                let copy = items[i].clone();
                items.insert(rng.below(items.len() + 1), copy);
            }
        }
        Value::Object(map) if !map.is_empty() && rng.chance(3) => {
            let key = map.keys().nth(rng.below(map.len())).cloned();
            if let Some(key) = key {
                map.remove(&key);
            }
        }
        Value::Bool(b) => *b = !*b,
        Value::String(s) => {
            *s = match rng.below(4) {
                0 => String::new(),
                1 => s.chars().rev().collect(),
                2 => format!("{s}{s}"),
                _ => "07c37dfeb235213a872192d90877d0cd55635b91".to_string(),
            };
        }
        other => *other = edge_number(rng),
    }
}

fn edge_number(rng: &mut Rng) -> Value {
    const EDGES: &[u64] = &[
        0,
        1,
        2,
        3,
        5,
        6,
        16383,
        16384,
        65535,
        65536,
        1 << 31,
        u32::MAX as u64,
        u64::MAX,
    ];
    match rng.below(4) {
        0 => Value::from(rng.next_u64() % 20),
        1 => Value::from(-1),
        2 => Value::Null,
        _ => Value::from(EDGES[rng.below(EDGES.len())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let seed = br#"{"a":[1,2,{"b":"x"}],"c":true}"#;
        let run = |s| {
            let mut rng = Rng::new(s);
            (0..50)
                .map(|_| mutate(&mut rng, seed, &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn most_mutations_of_json_still_parse_as_json() {
        let seed = br#"{"a":[1,2,{"b":"x"}],"c":true,"d":{"e":[3,4]}}"#;
        let mut rng = Rng::new(1);
        let parsed = (0..1000)
            .filter(|_| serde_json::from_slice::<Value>(&mutate(&mut rng, seed, &[])).is_ok())
            .count();
        assert!(parsed > 300, "only {parsed} of 1000 mutations parse");
    }
}
