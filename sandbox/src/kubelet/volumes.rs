//! Pod volumes as directories: `<root>/pods/<namespace>_<name>_<uid>/volumes/<volume>` for
//! emptyDir, configMap, secret, downwardAPI, projected (service-account token included)
//! and hostPath (a private directory, never the host's), `<root>/pvcs/<namespace>/<claim>`
//! for PVCs so their data outlives the Pod. The service-account token is mounted at
//! `/var/run/secrets/kubernetes.io/serviceaccount` unless the Pod opts out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::KubeletError;
use crate::controllers::Ctl;
use crate::object;

pub const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const SA_VOLUME: &str = "kube-sandbox-service-account";

pub fn pod_dir(root: &Path, pod: &Value) -> PathBuf {
    root.join("pods").join(format!(
        "{}_{}_{}",
        object::namespace(pod),
        object::name(pod),
        object::uid(pod)
    ))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KubeletError + '_ {
    move |source| KubeletError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write_file(dir: &Path, rel: &str, data: &[u8]) -> Result<(), KubeletError> {
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|part| part == "..") {
        return Err(KubeletError::Volume(format!(
            "path {rel} leaves its volume"
        )));
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&path, data).map_err(io(&path))
}

/// Encodes bytes as standard, padded base64 (how Secret `data` is stored).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((acc >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (Secret data), ignoring whitespace.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The files a configMap or secret source puts in a volume: `items` when given, else
/// every key.
fn key_files(data: &HashMap<String, Vec<u8>>, items: &Value) -> Vec<(String, Vec<u8>)> {
    match items.as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|i| {
                let key = i["key"].as_str()?;
                let path = i["path"].as_str().unwrap_or(key);
                data.get(key).map(|d| (path.to_string(), d.clone()))
            })
            .collect(),
        _ => data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

fn object_data(
    ctl: &Ctl,
    plural: &str,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<HashMap<String, Vec<u8>>, KubeletError> {
    let Some(rt) = ctl.rt("", plural) else {
        return Ok(HashMap::new());
    };
    let obj = match ctl.store.get(&rt, ns, name) {
        Ok(o) => o,
        Err(_) if optional => return Ok(HashMap::new()),
        Err(_) => {
            return Err(KubeletError::Volume(format!(
                "{plural} {ns}/{name} not found"
            )));
        }
    };
    let mut data = HashMap::new();
    let secret = plural == "secrets";
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        let text = v.as_str().unwrap_or("");
        let bytes = if secret {
            base64_decode(text).unwrap_or_default()
        } else {
            text.as_bytes().to_vec()
        };
        data.insert(k.clone(), bytes);
    }
    for (k, v) in obj["binaryData"]
        .as_object()
        .into_iter()
        .chain(obj["stringData"].as_object())
        .flatten()
    {
        let text = v.as_str().unwrap_or("");
        data.insert(
            k.clone(),
            base64_decode(text).unwrap_or_else(|| text.as_bytes().to_vec()),
        );
    }
    Ok(data)
}

/// The value of a downward API `fieldRef` path for this pod.
pub fn field_ref(pod: &Value, path: &str) -> String {
    if let Some(label) = path
        .strip_prefix("metadata.labels['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return pod["metadata"]["labels"][label]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    if let Some(a) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return pod["metadata"]["annotations"][a]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    match object::path(pod, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Materializes every volume of `pod` and returns volume name → directory.
pub fn materialize(
    ctl: &Ctl,
    token: &str,
    root: &Path,
    pod: &Value,
) -> Result<HashMap<String, PathBuf>, KubeletError> {
    let ns = object::namespace(pod);
    let base = pod_dir(root, pod).join("volumes");
    let mut dirs = HashMap::new();
    let mut volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if pod["spec"]["automountServiceAccountToken"] != false {
        volumes.push(
            serde_json::json!({"name": SA_VOLUME, "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}]}}),
        );
    }
    for v in &volumes {
        let name = v["name"].as_str().unwrap_or("");
        let dir = if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
            root.join("pvcs").join(ns).join(claim)
        } else {
            base.join(name)
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut sources: Vec<Value> = v["projected"]["sources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for kind in ["configMap", "secret", "downwardAPI"] {
            if v[kind].is_object() {
                sources.push(serde_json::json!({kind: v[kind].clone()}));
            }
        }
        for source in &sources {
            fill(ctl, token, pod, &dir, source)?;
        }
        if name == SA_VOLUME {
            write_file(&dir, "namespace", ns.as_bytes())?;
        }
        dirs.insert(name.to_string(), dir);
    }
    Ok(dirs)
}

fn fill(
    ctl: &Ctl,
    token: &str,
    pod: &Value,
    dir: &Path,
    source: &Value,
) -> Result<(), KubeletError> {
    let ns = object::namespace(pod);
    for (kind, plural) in [("configMap", "configmaps"), ("secret", "secrets")] {
        let s = &source[kind];
        if !s.is_object() {
            continue;
        }
        let name = s["name"]
            .as_str()
            .or_else(|| s["secretName"].as_str())
            .unwrap_or("");
        let data = object_data(ctl, plural, ns, name, s["optional"] == true)?;
        for (path, bytes) in key_files(&data, &s["items"]) {
            write_file(dir, &path, &bytes)?;
        }
    }
    for item in source["downwardAPI"]["items"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(path), Some(field)) = (
            item["path"].as_str(),
            item["fieldRef"]["fieldPath"].as_str(),
        ) {
            write_file(dir, path, field_ref(pod, field).as_bytes())?;
        }
    }
    if let Some(path) = source["serviceAccountToken"]["path"].as_str() {
        write_file(dir, path, token.as_bytes())?;
    }
    Ok(())
}

/// A container's mounts as (path inside the container, directory here), `subPath`
/// included; the service-account volume is added at its usual path.
pub fn mounts(
    pod: &Value,
    container: &Value,
    dirs: &HashMap<String, PathBuf>,
) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let dir = dirs.get(m["name"].as_str()?)?;
            let host = match m["subPath"].as_str().filter(|s| !s.is_empty()) {
                Some(sub) => dir.join(sub.trim_start_matches('/')),
                None => dir.clone(),
            };
            Some((m["mountPath"].as_str()?.to_string(), host))
        })
        .collect();
    if pod["spec"]["automountServiceAccountToken"] != false
        && let Some(dir) = dirs.get(SA_VOLUME)
    {
        out.push((SA_MOUNT.to_string(), dir.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_data_decodes_from_base64() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
    }
}
