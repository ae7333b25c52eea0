//! The protobuf wire format, as far as decoding Kubernetes request bodies needs it.

use crate::error::ApiError;

pub(super) fn bad(what: &str) -> ApiError {
    ApiError::BadRequest(format!("cannot decode the protobuf request body: {what}"))
}

/// A protobuf field: its number and either a varint or a length-delimited payload.
pub(super) enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.buf = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
                if len > self.buf.len() {
                    return Err(bad("truncated field"));
                }
                let (payload, rest) = self.buf.split_at(len);
                self.buf = rest;
                Field::Bytes(payload)
            }
            1 => {
                self.skip(8)?;
                Field::Varint(0)
            }
            5 => {
                self.skip(4)?;
                Field::Varint(0)
            }
            _ => return Err(bad("unsupported wire type")),
        };
        Ok(Some((tag >> 3, field)))
    }

    fn skip(&mut self, n: usize) -> Result<(), ApiError> {
        if n > self.buf.len() {
            return Err(bad("truncated fixed field"));
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

pub(super) fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

pub(super) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `map<string, V>` entry: key is field 1, value field 2.
pub(super) fn map_entry(b: &[u8]) -> Result<(String, &[u8]), ApiError> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = text(k),
            (2, Field::Bytes(v)) => value = v,
            _ => {}
        }
    }
    Ok((key, value))
}

/// Standard base64 with padding, as JSON carries `[]byte`.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
