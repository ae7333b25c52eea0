//! Splits a request path and query into what it addresses.

use std::collections::HashMap;

/// What a request path names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Version,
    Health,
    OpenApiIndex,
    Faults,
    OpenApi(String),
    CoreVersions,
    Groups,
    Group(String),
    Resources {
        group: String,
        version: String,
    },
    Collection {
        api: Api,
        namespace: Option<String>,
    },
    Object {
        api: Api,
        namespace: Option<String>,
        name: String,
        subresource: Option<String>,
    },
    NotFound,
}

/// group/version/resource of a resource request.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub group: String,
    pub version: String,
    pub resource: String,
}

pub fn parse(path: &str) -> Target {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Target::Version,
        ["healthz" | "readyz" | "livez", ..] => Target::Health,
        ["api"] => Target::CoreVersions,
        ["sandbox", "faults"] => Target::Faults,
        ["openapi", "v3"] => Target::OpenApiIndex,
        ["openapi", "v3", rest @ ..] => Target::OpenApi(rest.join("/")),
        ["api", "v1"] => Target::Resources {
            group: String::new(),
            version: "v1".into(),
        },
        ["api", "v1", rest @ ..] => resource_target("", "v1", rest),
        ["apis"] => Target::Groups,
        ["apis", group] => Target::Group(group.to_string()),
        ["apis", group, version] => Target::Resources {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["apis", group, version, rest @ ..] => resource_target(group, version, rest),
        _ => Target::NotFound,
    }
}

fn resource_target(group: &str, version: &str, rest: &[&str]) -> Target {
    let api = |resource: &str| Api {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
    };
    // `namespaces/NS/status` and `namespaces/NS/finalize` are subresources of a
    // Namespace; any other third segment is a resource inside the namespace.
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    match rest {
        [resource] => Target::Collection {
            api: api(resource),
            namespace,
        },
        [resource, name] => Target::Object {
            api: api(resource),
            namespace,
            name: name.to_string(),
            subresource: None,
        },
        [resource, name, sub] => Target::Object {
            api: api(resource),
            namespace,
            name: name.to_string(),
            subresource: Some(sub.to_string()),
        },
        _ => Target::NotFound,
    }
}

/// Query parameters, percent-decoded; the last value of a repeated key wins.
pub fn query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_objects_and_subresources() {
        assert_eq!(
            parse("/api/v1/namespaces/ns/pods"),
            Target::Collection {
                api: Api {
                    group: "".into(),
                    version: "v1".into(),
                    resource: "pods".into()
                },
                namespace: Some("ns".into())
            }
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns"),
            Target::Object {
                api: Api {
                    group: "".into(),
                    version: "v1".into(),
                    resource: "namespaces".into()
                },
                namespace: None,
                name: "ns".into(),
                subresource: None
            }
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns/status"),
            Target::Object {
                api: Api {
                    group: "".into(),
                    version: "v1".into(),
                    resource: "namespaces".into()
                },
                namespace: None,
                name: "ns".into(),
                subresource: Some("status".into())
            }
        );
        assert_eq!(
            parse("/apis/apps/v1/namespaces/ns/statefulsets/s/status"),
            Target::Object {
                api: Api {
                    group: "apps".into(),
                    version: "v1".into(),
                    resource: "statefulsets".into()
                },
                namespace: Some("ns".into()),
                name: "s".into(),
                subresource: Some("status".into())
            }
        );
        assert_eq!(
            parse("/apis/apps/v1"),
            Target::Resources {
                group: "apps".into(),
                version: "v1".into()
            }
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = query(Some("labelSelector=app%3Dredis%2Ctier+in+%28a%29&watch=1"));
        assert_eq!(q["labelSelector"], "app=redis,tier in (a)");
        assert_eq!(q["watch"], "1");
    }
}
