//! Request bodies in Kubernetes' protobuf encoding. client-go's typed clientsets send
//! built-in kinds this way (Helm's release Secrets, `kubectl create role`, `kubectl auth
//! can-i`...). Each supported kind is described by a table of field numbers from
//! Kubernetes' `generated.proto`, and decoded into the JSON the rest of the server
//! stores. Answers are always JSON, which those clients also accept. Kinds without a
//! table are refused with 415.

mod wire;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
pub use wire::base64;
use wire::{Field, bad, fields, map_entry, text};

/// `k8s\0`, which starts every protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\x00";

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// How one field is turned into JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    Msg(&'static [F]),
    MapStr,
    MapBytes,
}

/// One field of a message: number, JSON name, type, and whether it repeats.
struct F(u64, &'static str, Ty, bool);

const fn one(n: u64, name: &'static str, ty: Ty) -> F {
    F(n, name, ty, false)
}

const fn many(n: u64, name: &'static str, ty: Ty) -> F {
    F(n, name, ty, true)
}

use Ty::{Bool, Int, MapBytes, MapStr, Msg, Str};

// Timestamps are server-set, so ObjectMeta leaves them out.
const OBJECT_META: &[F] = &[
    one(1, "name", Str),
    one(2, "generateName", Str),
    one(3, "namespace", Str),
    one(5, "uid", Str),
    one(6, "resourceVersion", Str),
    one(7, "generation", Int),
    one(11, "labels", MapStr),
    one(12, "annotations", MapStr),
    many(13, "ownerReferences", Msg(OWNER_REFERENCE)),
    many(14, "finalizers", Str),
];
const OWNER_REFERENCE: &[F] = &[
    one(1, "kind", Str),
    one(3, "name", Str),
    one(4, "uid", Str),
    one(5, "apiVersion", Str),
    one(6, "controller", Bool),
    one(7, "blockOwnerDeletion", Bool),
];
const SECRET: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "data", MapBytes),
    one(3, "type", Str),
    one(4, "stringData", MapStr),
    one(5, "immutable", Bool),
];
const CONFIG_MAP: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "data", MapStr),
    one(3, "binaryData", MapBytes),
    one(4, "immutable", Bool),
];
const PRECONDITIONS: &[F] = &[one(1, "uid", Str), one(2, "resourceVersion", Str)];
const DELETE_OPTIONS: &[F] = &[
    one(1, "gracePeriodSeconds", Int),
    one(2, "preconditions", Msg(PRECONDITIONS)),
    one(3, "orphanDependents", Bool),
    one(4, "propagationPolicy", Str),
    many(5, "dryRun", Str),
];
const RESOURCE_ATTRIBUTES: &[F] = &[
    one(1, "namespace", Str),
    one(2, "verb", Str),
    one(3, "group", Str),
    one(4, "version", Str),
    one(5, "resource", Str),
    one(6, "subresource", Str),
    one(7, "name", Str),
];
const NON_RESOURCE_ATTRIBUTES: &[F] = &[one(1, "path", Str), one(2, "verb", Str)];
const ACCESS_REVIEW_SPEC: &[F] = &[
    one(1, "resourceAttributes", Msg(RESOURCE_ATTRIBUTES)),
    one(2, "nonResourceAttributes", Msg(NON_RESOURCE_ATTRIBUTES)),
];
const SELF_SUBJECT_ACCESS_REVIEW: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "spec", Msg(ACCESS_REVIEW_SPEC)),
];
const SELF_SUBJECT_REVIEW: &[F] = &[one(1, "metadata", Msg(OBJECT_META))];
const POLICY_RULE: &[F] = &[
    many(1, "verbs", Str),
    many(2, "apiGroups", Str),
    many(3, "resources", Str),
    many(4, "resourceNames", Str),
    many(5, "nonResourceURLs", Str),
];
const ROLE: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    many(2, "rules", Msg(POLICY_RULE)),
];
const SELECTOR_REQUIREMENT: &[F] = &[
    one(1, "key", Str),
    one(2, "operator", Str),
    many(3, "values", Str),
];
const LABEL_SELECTOR: &[F] = &[
    one(1, "matchLabels", MapStr),
    many(2, "matchExpressions", Msg(SELECTOR_REQUIREMENT)),
];
const AGGREGATION_RULE: &[F] = &[many(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR))];
const CLUSTER_ROLE: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    many(2, "rules", Msg(POLICY_RULE)),
    one(3, "aggregationRule", Msg(AGGREGATION_RULE)),
];
const SUBJECT: &[F] = &[
    one(1, "kind", Str),
    one(2, "apiGroup", Str),
    one(3, "name", Str),
    one(4, "namespace", Str),
];
const ROLE_REF: &[F] = &[
    one(1, "apiGroup", Str),
    one(2, "kind", Str),
    one(3, "name", Str),
];
const ROLE_BINDING: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    many(2, "subjects", Msg(SUBJECT)),
    one(3, "roleRef", Msg(ROLE_REF)),
];
const NAMESPACE_SPEC: &[F] = &[many(1, "finalizers", Str)];
const NAMESPACE: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    one(2, "spec", Msg(NAMESPACE_SPEC)),
];
const OBJECT_REFERENCE: &[F] = &[
    one(1, "kind", Str),
    one(2, "namespace", Str),
    one(3, "name", Str),
    one(4, "uid", Str),
    one(5, "apiVersion", Str),
    one(6, "resourceVersion", Str),
    one(7, "fieldPath", Str),
];
const LOCAL_OBJECT_REFERENCE: &[F] = &[one(1, "name", Str)];
const SERVICE_ACCOUNT: &[F] = &[
    one(1, "metadata", Msg(OBJECT_META)),
    many(2, "secrets", Msg(OBJECT_REFERENCE)),
    many(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    one(4, "automountServiceAccountToken", Bool),
];

fn schema(kind: &str) -> Option<&'static [F]> {
    Some(match kind {
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "DeleteOptions" => DELETE_OPTIONS,
        "SelfSubjectAccessReview" => SELF_SUBJECT_ACCESS_REVIEW,
        "SelfSubjectReview" => SELF_SUBJECT_REVIEW,
        "Role" => ROLE,
        "ClusterRole" => CLUSTER_ROLE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        "Namespace" => NAMESPACE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        _ => return None,
    })
}

fn message(b: &[u8], schema: &[F]) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    for (n, field) in fields(b)? {
        // Fields without a table entry (timestamps, status) are left to the server.
        let Some(F(_, name, ty, repeated)) = schema.iter().find(|f| f.0 == n) else {
            continue;
        };
        let value = match (*ty, field) {
            (Str, Field::Bytes(x)) => json!(text(x)),
            (Bool, Field::Varint(x)) => json!(x != 0),
            // int64 travels as two's complement in a varint.
            (Int, Field::Varint(x)) => json!(x as i64),
            (Msg(sub), Field::Bytes(x)) => Value::Object(message(x, sub)?),
            (MapStr | MapBytes, Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                let v = if matches!(ty, MapStr) {
                    json!(text(v))
                } else {
                    json!(base64(v))
                };
                let map = out.entry(*name).or_insert_with(|| json!({}));
                if let Some(m) = map.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            _ => return Err(bad(&format!("field {name} has an unexpected wire type"))),
        };
        if *repeated {
            let list = out.entry(*name).or_insert_with(|| json!([]));
            if let Some(items) = list.as_array_mut() {
                items.push(value);
            }
        } else {
            out.insert((*name).to_string(), value);
        }
    }
    Ok(out)
}

/// Decodes a protobuf body holding `kind` (or `DeleteOptions`) into JSON.
pub fn decode(body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let Some(table) = schema(kind) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "protobuf bodies are not accepted for {kind}; send JSON (kubectl apply does)"
        )));
    };
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s magic prefix"))?;
    // The envelope (runtime.Unknown): 1 typeMeta {1 apiVersion, 2 kind}, 2 raw.
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
    let mut obj = message(raw, table)?;
    if kind != "DeleteOptions" {
        let api_version = if api_version.is_empty() {
            "v1".to_string()
        } else {
            api_version
        };
        obj.insert("apiVersion".into(), json!(api_version));
        obj.insert("kind".into(), json!(kind));
    }
    Ok(Value::Object(obj))
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
    fn a_protobuf_role_binding_keeps_its_subjects_and_role_ref() {
        let meta = field(1, b"rb");
        let subject = [
            field(1, b"ServiceAccount"),
            field(3, b"app"),
            field(4, b"ns"),
        ]
        .concat();
        let role_ref = [
            field(1, b"rbac.authorization.k8s.io"),
            field(2, b"Role"),
            field(3, b"r"),
        ]
        .concat();
        let binding = [field(1, &meta), field(2, &subject), field(3, &role_ref)].concat();
        let type_meta = [
            field(1, b"rbac.authorization.k8s.io/v1"),
            field(2, b"RoleBinding"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &binding)].concat();
        assert_eq!(
            decode(&body, "RoleBinding").unwrap(),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "rb"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "ns"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}
            })
        );
        assert_eq!(decode(&body, "Deployment").unwrap_err().code(), 415);
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
