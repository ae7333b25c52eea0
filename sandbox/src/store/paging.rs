//! Continue tokens for paged lists: the list's resourceVersion and the last key served.

use serde_json::{Value, json};

use crate::error::ApiError;

pub(super) fn encode_continue(rv: u64, last: &(String, String)) -> String {
    let raw = json!({"rv": rv, "ns": last.0, "name": last.1}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect();
    let value: Value = serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let rv = value["rv"].as_u64().ok_or_else(bad)?;
    let ns = value["ns"].as_str().unwrap_or("").to_string();
    let name = value["name"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}
