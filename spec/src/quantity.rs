//! A strict reader of Kubernetes resource quantities (`500m`, `1Gi`, `1e3`), so that a typo in
//! `resources` is reported by `validate` instead of by the API server at pod creation time.
//!
//! Grammar (as the Kubernetes API documents it):
//! `[+-] digits [. digits] [suffix]` where the number must have at least one digit and the
//! suffix is a binary SI suffix (Ki..Ei), a decimal SI suffix (n, u, m, k, M, G, T, P, E) or a
//! decimal exponent (`e`/`E` followed by an optional sign and digits).

use thiserror::Error;

/// Why a string is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{0:?} is not a valid Kubernetes quantity (expected a number with an optional suffix, e.g. 500m, 128Mi, 2 or 1e3)"
)]
pub struct QuantityError(pub String);

/// A quantity that parsed; only what validation needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedQuantity {
    /// The number carried a minus sign (and is not zero).
    pub negative: bool,
}

const SUFFIXES: &[&str] = &[
    "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
];

/// Checks that `text` is a Kubernetes quantity.
pub fn parse_quantity(text: &str) -> Result<ParsedQuantity, QuantityError> {
    let err = || QuantityError(text.to_owned());
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&sign) = bytes.first()
        && (sign == b'+' || sign == b'-')
    {
        negative = sign == b'-';
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let mut digit_count = i - int_start;
    let mut nonzero = bytes[int_start..i].iter().any(|&b| b != b'0');
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        digit_count += i - frac_start;
        nonzero |= bytes[frac_start..i].iter().any(|&b| b != b'0');
    }
    if digit_count == 0 {
        return Err(err());
    }
    let suffix = &text[i..];
    if !SUFFIXES.contains(&suffix) && !is_exponent(suffix) {
        return Err(err());
    }
    Ok(ParsedQuantity {
        negative: negative && nonzero,
    })
}

/// `e3`, `E-2`, `e+10`: an exponent marker followed by an optional sign and at least one digit.
/// A lone `E` is the exa suffix, handled by the suffix table instead.
fn is_exponent(suffix: &str) -> bool {
    let Some(rest) = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
    else {
        return false;
    };
    let digits = rest
        .strip_prefix('+')
        .or_else(|| rest.strip_prefix('-'))
        .unwrap_or(rest);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_kubernetes_quantities_are_accepted() {
        for good in [
            "1", "0", "200m", "1000Mi", "64Mi", "1.5Gi", ".5", "5.", "1e3", "1E3", "2E", "1e-3",
            "+1", "100n", "3u", "10k", "1Ti", "1Pi", "1Ei", "7T", "7P", "7G", "7M",
        ] {
            assert!(parse_quantity(good).is_ok(), "{good} should be a quantity");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for bad in [
            "", "MB", "1MB", "1mb", "1KiB", "1 Gi", " 1", ".", "1..2", "1e", "1e+", "1ki", "abc",
            "1Gi ", "--1", "1K", "0x10",
        ] {
            assert_eq!(
                parse_quantity(bad),
                Err(QuantityError(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn negative_quantities_are_flagged_but_negative_zero_is_not() {
        assert_eq!(parse_quantity("-1"), Ok(ParsedQuantity { negative: true }));
        assert_eq!(
            parse_quantity("-0.0"),
            Ok(ParsedQuantity { negative: false })
        );
    }
}
