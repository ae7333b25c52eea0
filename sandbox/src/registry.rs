//! The resource types the server knows: built-in kinds plus those CRDs add at run time.

use std::collections::BTreeMap;

/// One served resource (`group/version/plural`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// Lower-case plural as it appears in URLs (`pods`).
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Whether a `/status` subresource exists; its writes only touch `.status`, and writes
    /// to the main resource leave `.status` alone.
    pub has_status: bool,
    pub categories: Vec<String>,
    /// A CRD's `additionalPrinterColumns` (empty for built-ins, whose columns are in
    /// `table.rs`).
    pub columns: Vec<PrinterColumn>,
    /// Where a `/scale` subresource finds the replica counts, when there is one.
    pub scale: Option<ScalePaths>,
    /// A CRD version's `openAPIV3Schema`, enforced on writes (None for built-ins).
    pub schema: Option<std::sync::Arc<serde_json::Value>>,
    /// Where list keys for strategic merge and server-side apply come from.
    pub merge_keys: MergeKeys,
}

/// JSON paths (`.spec.replicas`) behind a `/scale` subresource.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One column of `kubectl get` output, as a CRD declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// How lists inside objects of a kind are merged (by which key) when patched or applied.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MergeKeys {
    /// The built-in table in `patch::keys` (Kubernetes' strategic-merge tags).
    #[default]
    Builtin,
    /// From a CRD's schema: `x-kubernetes-list-map-keys` per JSON path (fields joined by
    /// `.`, list items written `[]`); an empty key list marks `x-kubernetes-list-type: set`.
    Schema(BTreeMap<String, Vec<String>>),
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Strategic merge patches only exist for kinds with Kubernetes' merge tags.
    pub fn merge_keys_builtin(&self) -> bool {
        self.merge_keys == MergeKeys::Builtin
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Storage identity: objects are shared across versions of one group/resource, and
    /// `events.k8s.io` Events are stored as core Events (see `crate::events`).
    pub fn group_resource(&self) -> (String, String) {
        if crate::events::is_view(self) {
            return (String::new(), self.plural.clone());
        }
        (self.group.clone(), self.plural.clone())
    }
}

/// All served types, looked up by URL parts or by kind.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        Registry {
            types: crate::builtin::types(),
        }
    }

    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// Adds or replaces the type with the same group/version/plural.
    pub fn upsert(&mut self, rt: ResourceType) {
        self.types
            .retain(|t| !(t.group == rt.group && t.version == rt.version && t.plural == rt.plural));
        self.types.push(rt);
    }

    pub fn remove_group_resource(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|t| !(t.group == group && t.plural == plural));
    }

    /// Groups in the order they were first registered, each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }
}
