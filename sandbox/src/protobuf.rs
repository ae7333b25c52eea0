//! Request bodies in Kubernetes' protobuf encoding, for the few kinds clients send that way
//! (Helm's release storage writes Secrets and ConfigMaps with client-go's protobuf
//! clientset). They are turned into the same JSON the rest of the server stores; answers
//! are always JSON, which those clients also accept.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// `k8s\0`, which starts every protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\x00";

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

fn bad(what: &str) -> ApiError {
    ApiError::BadRequest(format!("cannot decode the protobuf request body: {what}"))
}

/// A protobuf field: its number and either a varint or a length-delimited payload.
enum Field<'a> {
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

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `map<string, V>` entry: key is field 1, value field 2.
fn map_entry(b: &[u8]) -> Result<(String, &[u8]), ApiError> {
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

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    let mut owners = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => _ = meta.insert("name".into(), json!(text(v))),
            (2, Field::Bytes(v)) => _ = meta.insert("generateName".into(), json!(text(v))),
            (3, Field::Bytes(v)) => _ = meta.insert("namespace".into(), json!(text(v))),
            (5, Field::Bytes(v)) => _ = meta.insert("uid".into(), json!(text(v))),
            (6, Field::Bytes(v)) => _ = meta.insert("resourceVersion".into(), json!(text(v))),
            (11, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                labels.insert(k, json!(text(val)));
            }
            (12, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                annotations.insert(k, json!(text(val)));
            }
            (13, Field::Bytes(v)) => owners.push(owner_reference(v)?),
            (14, Field::Bytes(v)) => finalizers.push(json!(text(v))),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !owners.is_empty() {
        meta.insert("ownerReferences".into(), Value::Array(owners));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

fn owner_reference(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => _ = r.insert("kind".into(), json!(text(v))),
            (3, Field::Bytes(v)) => _ = r.insert("name".into(), json!(text(v))),
            (4, Field::Bytes(v)) => _ = r.insert("uid".into(), json!(text(v))),
            (5, Field::Bytes(v)) => _ = r.insert("apiVersion".into(), json!(text(v))),
            (6, Field::Varint(v)) => _ = r.insert("controller".into(), json!(v != 0)),
            (7, Field::Varint(v)) => _ = r.insert("blockOwnerDeletion".into(), json!(v != 0)),
            _ => {}
        }
    }
    Ok(Value::Object(r))
}

/// Decodes a protobuf body of `kind` (or `DeleteOptions`) into JSON; kinds without a
/// decoder are refused with 415 so the client knows to send JSON.
pub fn decode(body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s magic prefix"))?;
    let mut api_version = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (tn, tf) in fields(type_meta)? {
                    if let (1, Field::Bytes(v)) = (tn, tf) {
                        api_version = text(v);
                    }
                }
            }
            (2, Field::Bytes(v)) => raw = v,
            _ => {}
        }
    }
    if kind == "DeleteOptions" {
        return delete_options(raw);
    }
    let mut obj = Map::new();
    obj.insert(
        "apiVersion".into(),
        json!(if api_version.is_empty() {
            "v1".into()
        } else {
            api_version
        }),
    );
    obj.insert("kind".into(), json!(kind));
    let (mut string_maps, mut byte_maps) = (Map::new(), Map::new());
    for (n, f) in fields(raw)? {
        match (kind, n, f) {
            (_, 1, Field::Bytes(v)) => _ = obj.insert("metadata".into(), object_meta(v)?),
            ("Secret", 2, Field::Bytes(v)) | ("ConfigMap", 3, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                byte_maps.insert(k, json!(base64(val)));
            }
            ("Secret", 4, Field::Bytes(v)) | ("ConfigMap", 2, Field::Bytes(v)) => {
                let (k, val) = map_entry(v)?;
                string_maps.insert(k, json!(text(val)));
            }
            ("Secret", 3, Field::Bytes(v)) => _ = obj.insert("type".into(), json!(text(v))),
            ("Secret", 5, Field::Varint(v)) | ("ConfigMap", 4, Field::Varint(v)) => {
                _ = obj.insert("immutable".into(), json!(v != 0))
            }
            ("Secret" | "ConfigMap", _, _) => {}
            _ => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "protobuf bodies are accepted for Secrets and ConfigMaps only, not {kind}; send JSON"
                )));
            }
        }
    }
    let (strings, bytes) = if kind == "Secret" {
        ("stringData", "data")
    } else {
        ("data", "binaryData")
    };
    if !string_maps.is_empty() {
        obj.insert(strings.into(), Value::Object(string_maps));
    }
    if !byte_maps.is_empty() {
        obj.insert(bytes.into(), Value::Object(byte_maps));
    }
    Ok(Value::Object(obj))
}

fn delete_options(b: &[u8]) -> Result<Value, ApiError> {
    let mut opts = Map::new();
    let mut dry_run = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Varint(v)) => _ = opts.insert("gracePeriodSeconds".into(), json!(v)),
            (2, Field::Bytes(p)) => {
                let mut pre = Map::new();
                for (pn, pf) in fields(p)? {
                    match (pn, pf) {
                        (1, Field::Bytes(v)) => _ = pre.insert("uid".into(), json!(text(v))),
                        (2, Field::Bytes(v)) => {
                            _ = pre.insert("resourceVersion".into(), json!(text(v)))
                        }
                        _ => {}
                    }
                }
                opts.insert("preconditions".into(), Value::Object(pre));
            }
            (3, Field::Varint(v)) => _ = opts.insert("orphanDependents".into(), json!(v != 0)),
            (4, Field::Bytes(v)) => _ = opts.insert("propagationPolicy".into(), json!(text(v))),
            (5, Field::Bytes(v)) => dry_run.push(json!(text(v))),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        opts.insert("dryRun".into(), Value::Array(dry_run));
    }
    Ok(Value::Object(opts))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from((n << 3) | 2).unwrap(),
            u8::try_from(payload.len()).unwrap(),
        ];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn base64_pads_like_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_protobuf_secret_decodes_to_the_json_a_client_would_send() {
        let meta = [
            field(1, b"sh.helm.release.v1.rel.v1"),
            field(11, &[field(1, b"owner"), field(2, b"helm")].concat()),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &[field(1, b"release"), field(2, b"foo")].concat()),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let obj = decode(&body, "Secret").unwrap();
        assert_eq!(
            obj,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": "sh.helm.release.v1.rel.v1", "labels": {"owner": "helm"}},
                "data": {"release": "Zm9v"}
            })
        );
    }
}
