//! Query-string decoding (`application/x-www-form-urlencoded` rules: `+` is a space, `%XX` a
//! byte). Malformed escapes are kept literally rather than rejected, as browsers do.

/// The decoded value of the first `key` parameter; `Err` when it is not valid UTF-8.
pub fn param(query: Option<&str>, key: &str) -> Result<Option<String>, String> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(k).as_deref() == Ok(key) {
            return decode(v)
                .map(Some)
                .map_err(|_| format!("query parameter `{key}` is not valid UTF-8"));
        }
    }
    Ok(None)
}

fn decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_and_plus_decoded() {
        let q = Some("a=1&clusterName=my%2Dcluster+x%C3%A9&clusterName=second");
        assert_eq!(
            param(q, "clusterName"),
            Ok(Some("my-cluster xé".to_owned()))
        );
    }

    #[test]
    fn keys_are_decoded_too_and_missing_values_are_empty() {
        assert_eq!(
            param(Some("cluster%4Eame"), "clusterName"),
            Ok(Some(String::new()))
        );
        assert_eq!(param(Some("x=1"), "clusterName"), Ok(None));
        assert_eq!(param(None, "clusterName"), Ok(None));
    }

    #[test]
    fn malformed_escapes_are_kept_and_invalid_utf8_is_an_error() {
        assert_eq!(param(Some("k=%zz%4"), "k"), Ok(Some("%zz%4".to_owned())));
        assert!(param(Some("k=%FF"), "k").is_err());
    }
}
