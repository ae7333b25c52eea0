//! `maxMemory` as Redis reads it: a plain byte count, or an integer followed by one of the
//! units Redis's config parser knows. Anything else would make `redis-server` refuse to start,
//! so it is rejected up front.

use thiserror::Error;

/// Why a `maxMemory` value is not something Redis accepts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MemoryError {
    #[error("must not be empty")]
    Empty,
    #[error(
        "{0:?} is not a memory size Redis accepts (use a whole number of bytes or a whole number with a unit among b, k, kb, m, mb, g, gb, e.g. 512mb)"
    )]
    Malformed(String),
    #[error("{0:?} is too large (more than 2^64-1 bytes)")]
    Overflow(String),
}

/// Unit multipliers. Redis treats `k`/`m`/`g` as powers of 1000 and `kb`/`mb`/`gb` as powers
/// of 1024; a different reading would silently give each node a different memory limit.
const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("k", 1000),
    ("kb", 1024),
    ("m", 1000 * 1000),
    ("mb", 1024 * 1024),
    ("g", 1000 * 1000 * 1000),
    ("gb", 1024 * 1024 * 1024),
];

/// Parses a `maxMemory` value into bytes.
pub fn parse_max_memory(text: &str) -> Result<u64, MemoryError> {
    if text.is_empty() {
        return Err(MemoryError::Empty);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(MemoryError::Malformed(text.to_owned()));
    }
    let multiplier = if unit.is_empty() {
        1
    } else {
        let lower = unit.to_ascii_lowercase();
        UNITS
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, m)| *m)
            .ok_or_else(|| MemoryError::Malformed(text.to_owned()))?
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| MemoryError::Overflow(text.to_owned()))?;
    count
        .checked_mul(multiplier)
        .ok_or_else(|| MemoryError::Overflow(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_redis_powers_of_1000_and_1024() {
        assert_eq!(parse_max_memory("100000"), Ok(100_000));
        assert_eq!(parse_max_memory("512mb"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_max_memory("1gb"), Ok(1024 * 1024 * 1024));
        assert_eq!(parse_max_memory("1GB"), Ok(1024 * 1024 * 1024));
        assert_eq!(parse_max_memory("2g"), Ok(2_000_000_000));
        assert_eq!(parse_max_memory("3k"), Ok(3000));
        assert_eq!(parse_max_memory("3Kb"), Ok(3072));
        assert_eq!(parse_max_memory("7b"), Ok(7));
        assert_eq!(parse_max_memory("0"), Ok(0));
    }

    #[test]
    fn fractions_kubernetes_units_and_signs_are_rejected() {
        for bad in [
            "1.5gb", "1Mi", "1Gi", "-1", "+1", "mb", " 1mb", "1mb ", "1 mb", "1tb", "1e3",
        ] {
            assert!(
                matches!(parse_max_memory(bad), Err(MemoryError::Malformed(_))),
                "{bad} should be malformed"
            );
        }
        assert_eq!(parse_max_memory(""), Err(MemoryError::Empty));
    }

    #[test]
    fn sizes_beyond_u64_are_reported_as_overflow() {
        assert!(matches!(
            parse_max_memory("99999999999999999999"),
            Err(MemoryError::Overflow(_))
        ));
        assert!(matches!(
            parse_max_memory("18446744073709551615gb"),
            Err(MemoryError::Overflow(_))
        ));
    }
}
