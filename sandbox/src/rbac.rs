//! Authorization as Kubernetes' RBAC authorizer decides it, from the stored Roles,
//! ClusterRoles, RoleBindings and ClusterRoleBindings.

use serde_json::Value;

use crate::auth::Identity;
use crate::http::route::Target;
use crate::store::Store;

/// What a request does, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// The attributes of a resource request; None for non-resource paths (discovery, version).
pub fn attributes(target: &Target, method: &hyper::Method, watch: bool) -> Option<Attributes> {
    use hyper::Method;
    let (api, namespace, name, subresource, collection) = match target {
        Target::Collection { api, namespace } => {
            (api, namespace.clone(), String::new(), String::new(), true)
        }
        Target::Object {
            api,
            namespace,
            name,
            subresource,
        } => (
            api,
            namespace.clone(),
            name.clone(),
            subresource.clone().unwrap_or_default(),
            false,
        ),
        _ => return None,
    };
    let verb = match (method, collection) {
        (&Method::GET, true) if watch => "watch",
        (&Method::GET, true) => "list",
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "deletecollection",
        (&Method::DELETE, false) => "delete",
        _ => "unknown",
    };
    // `/api/v1/namespaces/NS` addresses the Namespace NS, which RBAC scopes to NS.
    let namespace = match (api.resource.as_str(), namespace) {
        ("namespaces", None) if !name.is_empty() => name.clone(),
        (_, ns) => ns.unwrap_or_default(),
    };
    Some(Attributes {
        verb: verb.into(),
        group: api.group.clone(),
        resource: api.resource.clone(),
        subresource,
        namespace,
        name,
    })
}

/// Whether `who` may do `what`. `system:masters` may do anything; any authenticated user
/// may ask who they are and review their own access; everything else needs a matching
/// rule.
pub fn allowed(store: &Store, who: &Identity, what: &Attributes) -> bool {
    if who.in_group("system:masters") {
        return true;
    }
    let about_self = match what.group.as_str() {
        "authorization.k8s.io" => matches!(
            what.resource.as_str(),
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        ),
        "authentication.k8s.io" => what.resource == "selfsubjectreviews",
        _ => false,
    };
    if about_self && what.verb == "create" && who.in_group("system:authenticated") {
        return true;
    }
    let objects = store.rbac_objects();
    let role_rules = |kind: &str, name: &str, namespace: &str| -> Vec<Value> {
        objects
            .iter()
            .find(|(k, o)| {
                k == kind
                    && o["metadata"]["name"].as_str() == Some(name)
                    && (kind == "ClusterRole"
                        || o["metadata"]["namespace"].as_str() == Some(namespace))
            })
            .and_then(|(_, o)| o["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    for (kind, binding) in &objects {
        let namespaced = match kind.as_str() {
            "ClusterRoleBinding" => false,
            "RoleBinding" => true,
            _ => continue,
        };
        let binding_ns = binding["metadata"]["namespace"].as_str().unwrap_or("");
        if namespaced && binding_ns != what.namespace {
            continue;
        }
        if !binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| subject_matches(s, who, binding_ns))
        {
            continue;
        }
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or("");
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or("");
        if role_rules(role_kind, role_name, binding_ns)
            .iter()
            .any(|r| rule_matches(r, what))
        {
            return true;
        }
    }
    false
}

fn subject_matches(subject: &Value, who: &Identity, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" => who.user == name,
        "Group" => who.in_group(name),
        "ServiceAccount" => {
            // A subject without a namespace means the binding's own.
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            who.service_account_parts() == Some((ns, name))
        }
        _ => false,
    }
}

fn contains(list: &Value, want: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|x| x == "*" || x == want)
}

fn rule_matches(rule: &Value, what: &Attributes) -> bool {
    if !contains(&rule["verbs"], &what.verb) || !contains(&rule["apiGroups"], &what.group) {
        return false;
    }
    let resource_ok = rule["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            if what.subresource.is_empty() {
                r == "*" || r == what.resource
            } else {
                r == "*"
                    || r == format!("{}/{}", what.resource, what.subresource)
                    || r == format!("{}/*", what.resource)
                    || r == format!("*/{}", what.subresource)
            }
        });
    if !resource_ok {
        return false;
    }
    match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => {
            !what.name.is_empty()
                && names
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|n| n == what.name)
        }
        _ => true,
    }
}

/// The 403 message a real API server gives.
pub fn forbidden_message(who: &Identity, what: &Attributes) -> String {
    let resource = if what.subresource.is_empty() {
        what.resource.clone()
    } else {
        format!("{}/{}", what.resource, what.subresource)
    };
    let named = if what.name.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", what.name)
    };
    let scope = if what.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", what.namespace)
    };
    format!(
        "{resource}{named} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        who.user, what.verb, what.group
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: "".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let rule = json!({"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "list"]});
        assert!(rule_matches(&rule, &attrs("get", "pods", "", "p")));
        assert!(rule_matches(&rule, &attrs("get", "pods", "status", "p")));
        assert!(!rule_matches(&rule, &attrs("get", "pods", "log", "p")));
        assert!(!rule_matches(&rule, &attrs("delete", "pods", "", "p")));
        assert!(!rule_matches(&rule, &attrs("get", "secrets", "", "s")));
        let named = json!({"apiGroups": ["*"], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["one"]});
        assert!(rule_matches(
            &named,
            &attrs("update", "configmaps", "", "one")
        ));
        assert!(!rule_matches(
            &named,
            &attrs("update", "configmaps", "", "two")
        ));
        assert!(!rule_matches(&named, &attrs("list", "configmaps", "", "")));
    }
}
