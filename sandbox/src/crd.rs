//! CustomResourceDefinitions: the resource types a CRD adds, and the status conditions
//! clients wait for (`Established`, `NamesAccepted`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::object;
use crate::registry::{MergeKeys, PrinterColumn, ResourceType};

/// Refuses CRDs a real API server would refuse for their names.
pub fn validate(crd: &Value) -> Result<(), ApiError> {
    let name = object::name(crd);
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    let invalid = |msg: &str| Err(ApiError::invalid("CustomResourceDefinition", name, msg));
    if group.is_empty() {
        return invalid("spec.group: Required value");
    }
    if plural.is_empty() || kind.is_empty() {
        return invalid("spec.names.plural and spec.names.kind: Required value");
    }
    if name != format!("{plural}.{group}") {
        return invalid(&format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let versions = spec["versions"].as_array().map(Vec::len).unwrap_or(0);
    if versions == 0 {
        return invalid(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        );
    }
    Ok(())
}

/// One served type per served version of the CRD.
pub fn resource_types(crd: &Value) -> Result<Vec<ResourceType>, ApiError> {
    validate(crd)?;
    let spec = &crd["spec"];
    let names = &spec["names"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = text(&names["kind"]);
    let singular = match text(&names["singular"]) {
        s if s.is_empty() => kind.to_lowercase(),
        s => s,
    };
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let mut keys = BTreeMap::new();
        collect_list_keys(&v["schema"]["openAPIV3Schema"], String::new(), &mut keys);
        out.push(ResourceType {
            group: text(&spec["group"]),
            version: text(&v["name"]),
            plural: text(&names["plural"]),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strings(&names["shortNames"]),
            has_status: v["subresources"]["status"].is_object(),
            scale: v["subresources"]["scale"]
                .as_object()
                .map(|s| crate::registry::ScalePaths {
                    spec_replicas: s
                        .get("specReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas: s
                        .get("statusReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector: s
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                }),
            categories: strings(&names["categories"]),
            columns: printer_columns(v),
            merge_keys: MergeKeys::Schema(keys),
            schema: Some(v["schema"]["openAPIV3Schema"].clone())
                .filter(|s| s.is_object())
                .map(std::sync::Arc::new),
        });
    }
    Ok(out)
}

fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    version["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or("").to_string();
            PrinterColumn {
                name: text("name"),
                type_: text("type"),
                format: text("format"),
                description: text("description"),
                priority: c["priority"].as_i64().unwrap_or(0),
                json_path: text("jsonPath"),
            }
        })
        .collect()
}

/// Finds `x-kubernetes-list-type: map` lists and their keys, by path (`spec.members[]`).
fn collect_list_keys(schema: &Value, path: String, out: &mut BTreeMap<String, Vec<String>>) {
    if schema["x-kubernetes-list-type"].as_str() == Some("set") {
        out.insert(path.clone(), Vec::new());
    }
    if schema["x-kubernetes-list-type"].as_str() == Some("map")
        && let Some(keys) = schema["x-kubernetes-list-map-keys"].as_array()
    {
        out.insert(
            path.clone(),
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        );
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            let p = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            collect_list_keys(sub, p, out);
        }
    }
    if schema["items"].is_object() {
        collect_list_keys(&schema["items"], format!("{path}[]"), out);
    }
}

/// Marks the CRD accepted and established, as the API server's controllers do.
pub fn set_status(crd: &mut Value) {
    let now = object::now_rfc3339();
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    let names = crd["spec"]["names"].clone();
    let keep_time = |ty: &str| -> Value {
        crd["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == "True"))
            .map(|c| c["lastTransitionTime"].clone())
            .unwrap_or_else(|| json!(now))
    };
    let conditions = json!([
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
    ]);
    crd["status"] =
        json!({"conditions": conditions, "acceptedNames": names, "storedVersions": storage});
}
