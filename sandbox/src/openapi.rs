//! Just enough OpenAPI v3 for kubectl: one document per group-version whose PATCH
//! operations carry `x-kubernetes-group-version-kind` and the `fieldValidation` parameter.
//! kubectl reads that to learn the server validates fields itself, so it skips
//! client-side schema validation (which would need full schemas this server does not have).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each group-version's document is. The hash changes when the
/// group-version's resources change, so clients that cache by URL refetch.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let mut h = DefaultHasher::new();
            for t in registry
                .all()
                .iter()
                .filter(|t| t.group == group && t.version == version)
            {
                (&t.plural, &t.kind, t.namespaced, t.has_status).hash(&mut h);
            }
            let path = gv_path(&group, &version);
            let url = format!("/openapi/v3/{path}?hash={:016X}", h.finish());
            paths.insert(path, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`.
pub fn group_version(registry: &Registry, path: &str) -> Option<Value> {
    let (group, version) = match path
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return None,
    };
    let types: Vec<&ResourceType> = registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for t in types {
        let prefix = format!("/{}", gv_path(&t.group, &t.version));
        let object_path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        paths.insert(object_path.clone(), path_item(t, ""));
        if t.has_status {
            paths.insert(format!("{object_path}/status"), path_item(t, "Status"));
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "components": { "schemas": {} }
    }))
}

fn path_item(t: &ResourceType, suffix: &str) -> Value {
    let scope = if t.namespaced { "Namespaced" } else { "" };
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    json!({
        "patch": {
            "operationId": format!("patch{scope}{}{suffix}", t.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
            "responses": {"200": {"description": "OK"}}
        }
    })
}
