//! A container's environment (plain values, `$(VAR)` references, downward API fieldRefs,
//! configMap and secret keys, `envFrom`) and the [`Launch`] built from it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::process::{self, Launch, NotRunnable};
use super::volumes::{base64_decode, field_ref};
use crate::controllers::Ctl;
use crate::object;

pub struct Context<'a> {
    pub ctl: &'a Ctl,
    /// The Pod with `status.podIP` and `status.hostIP` already set.
    pub pod: &'a Value,
    pub pod_dir: &'a Path,
    pub mounts: &'a [(String, PathBuf)],
    pub api_url: &'a str,
    pub kubeconfig: &'a Path,
}

fn key_of(ctl: &Ctl, plural: &str, ns: &str, name: &str, key: &str) -> Option<String> {
    let rt = ctl.rt("", plural)?;
    let obj = ctl.store.get(&rt, ns, name).ok()?;
    let raw = obj["data"][key].as_str()?;
    if plural == "secrets" {
        base64_decode(raw).map(|b| String::from_utf8_lossy(&b).into_owned())
    } else {
        Some(raw.to_string())
    }
}

fn all_keys(ctl: &Ctl, plural: &str, ns: &str, name: &str) -> Vec<(String, String)> {
    let Some(rt) = ctl.rt("", plural) else {
        return Vec::new();
    };
    let Ok(obj) = ctl.store.get(&rt, ns, name) else {
        return Vec::new();
    };
    obj["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let raw = v.as_str()?;
            let value = if plural == "secrets" {
                String::from_utf8_lossy(&base64_decode(raw)?).into_owned()
            } else {
                raw.to_string()
            };
            Some((k.clone(), value))
        })
        .collect()
}

/// The environment a container's process gets.
pub fn environment(ctx: &Context<'_>, spec: &Value) -> Vec<(String, String)> {
    let pod = ctx.pod;
    let ns = object::namespace(pod);
    let (host, port) = ctx
        .api_url
        .rsplit_once("://")
        .map(|(_, rest)| rest)
        .and_then(|hp| hp.rsplit_once(':'))
        .unwrap_or(("127.0.0.1", "443"));
    let mut path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    if let Some(shim) = process::server_shim(spec["image"].as_str().unwrap_or(""), ctx.pod_dir) {
        path = format!("{}:{path}", shim.display());
    }
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), path),
        ("HOSTNAME".into(), object::name(pod).to_string()),
        ("HOME".into(), ctx.pod_dir.display().to_string()),
        ("KUBERNETES_SERVICE_HOST".into(), host.to_string()),
        ("KUBERNETES_SERVICE_PORT".into(), port.to_string()),
        ("KUBECONFIG".into(), ctx.kubeconfig.display().to_string()),
    ];
    for from in spec["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        for (kind, plural) in [("configMapRef", "configmaps"), ("secretRef", "secrets")] {
            if let Some(name) = from[kind]["name"].as_str() {
                for (k, v) in all_keys(ctx.ctl, plural, ns, name) {
                    env.push((format!("{prefix}{k}"), v));
                }
            }
        }
    }
    for e in spec["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let from = &e["valueFrom"];
        let value = if let Some(v) = e["value"].as_str() {
            process::expand(v, &env)
        } else if let Some(field) = from["fieldRef"]["fieldPath"].as_str() {
            field_ref(pod, field)
        } else if let Some(r) = from["configMapKeyRef"].as_object() {
            let (n, k) = (
                r.get("name").and_then(Value::as_str),
                r.get("key").and_then(Value::as_str),
            );
            n.zip(k)
                .and_then(|(n, k)| key_of(ctx.ctl, "configmaps", ns, n, k))
                .unwrap_or_default()
        } else if let Some(r) = from["secretKeyRef"].as_object() {
            let (n, k) = (
                r.get("name").and_then(Value::as_str),
                r.get("key").and_then(Value::as_str),
            );
            n.zip(k)
                .and_then(|(n, k)| key_of(ctx.ctl, "secrets", ns, n, k))
                .unwrap_or_default()
        } else {
            String::new()
        };
        env.push((name.to_string(), value));
    }
    env
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// What to run for `spec`: the image table's program with command and args expanded and
/// their mount paths remapped; Redis servers bound to the pod address.
pub fn launch(ctx: &Context<'_>, spec: &Value) -> Result<Launch, NotRunnable> {
    let env = environment(ctx, spec);
    let fix = |words: Vec<String>| -> Vec<String> {
        words
            .iter()
            .map(|w| process::remap(&process::expand(w, &env), ctx.mounts))
            .collect()
    };
    let image = spec["image"].as_str().unwrap_or("");
    let (program, mut args, is_server) = process::program(
        image,
        &fix(strings(&spec["command"])),
        &fix(strings(&spec["args"])),
    )?;
    let pod_ip = ctx.pod["status"]["podIP"].as_str().unwrap_or("");
    if is_server {
        process::add_bind(&mut args, pod_ip);
    }
    let data_mount = ctx
        .mounts
        .iter()
        .find(|(m, _)| m.trim_end_matches('/') == "/data")
        .map(|(_, d)| d.clone());
    let cwd = match spec["workingDir"].as_str().filter(|w| !w.is_empty()) {
        Some(w) if process::remap(w, ctx.mounts) != w => {
            PathBuf::from(process::remap(w, ctx.mounts))
        }
        _ => data_mount.unwrap_or_else(|| {
            ctx.pod_dir
                .join("containers")
                .join(spec["name"].as_str().unwrap_or("c"))
        }),
    };
    if let Err(e) = std::fs::create_dir_all(&cwd) {
        return Err(NotRunnable {
            reason: "CreateContainerError",
            message: format!("{}: {e}", cwd.display()),
        });
    }
    Ok(Launch {
        program,
        args,
        env,
        cwd,
    })
}
