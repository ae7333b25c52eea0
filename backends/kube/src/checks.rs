//! What makes a spec invalid on Kubernetes beyond the spec's own rules: host ports another
//! cluster already uses, an exporter port past 65535, and changes a StatefulSet cannot take.
//! Pure: the controller gives it the other clusters it has in its cache.

use crate::build::EXPORTER_PORT_OFFSET;
use spec::RedisClusterSpec;
use std::ops::Range;

/// Another `RedisCluster`, as far as the checks need it.
#[derive(Debug, Clone)]
pub struct Other<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// RFC 3339 creation time: of two overlapping clusters, the later one is refused.
    pub created: &'a str,
    pub spec: &'a RedisClusterSpec,
}

/// The problems of cluster `me` (created at `created`) next to `others`, given the spec it
/// last ran with. Each is one line naming the field.
pub fn problems(
    me: (&str, &str),
    created: &str,
    spec: &RedisClusterSpec,
    applied: Option<&RedisClusterSpec>,
    others: &[Other<'_>],
) -> Vec<String> {
    let mut out = Vec::new();
    let nodes = u32::try_from(spec.total_nodes()).unwrap_or(u32::MAX);
    if spec.host_network() {
        let last_exporter = u64::from(spec.base_port())
            + u64::from(nodes.saturating_sub(1))
            + u64::from(EXPORTER_PORT_OFFSET);
        if last_exporter > u64::from(u16::MAX) {
            out.push(format!(
                "spec.basePort: the exporter of the last node would listen on {last_exporter} (client port + {EXPORTER_PORT_OFFSET}), past 65535; lower basePort"
            ));
        }
        for other in others {
            if (other.namespace, other.name) == me || !other.spec.host_network() {
                continue;
            }
            // The earlier cluster keeps its ports; a tie on time goes by name.
            let earlier = (other.created, other.namespace, other.name) < (created, me.0, me.1);
            if !earlier {
                continue;
            }
            if let Some(port) = overlap(spec, other.spec) {
                out.push(format!(
                    "spec.basePort: host port {port} is already used by RedisCluster {}/{} (both use host networking); choose a basePort whose client, bus (+10000) and exporter (+20000) ports overlap no other cluster's",
                    other.namespace, other.name
                ));
            }
        }
    }
    if let Some(applied) = applied {
        if applied.base_port() != spec.base_port() {
            out.push(format!(
                "spec.basePort: cannot change from {} to {} on a running cluster (every node's address would change); create a new cluster instead",
                applied.base_port(),
                spec.base_port()
            ));
        }
        if applied.persistence != spec.persistence
            && (applied.persistence_enabled() || spec.persistence_enabled())
        {
            out.push(
                "spec.persistence: cannot change on a running cluster (a StatefulSet's volume claims are fixed); create a new cluster instead".to_string(),
            );
        }
        if applied.host_network() != spec.host_network() {
            out.push(
                "spec.hostNetwork: cannot change on a running cluster (every node's address would change); create a new cluster instead".to_string(),
            );
        }
    }
    out
}

/// The host port ranges a cluster takes: clients, buses, exporters.
fn ranges(spec: &RedisClusterSpec) -> [Range<u64>; 3] {
    let base = u64::from(spec.base_port());
    let n = spec.total_nodes();
    [0, 10_000, u64::from(EXPORTER_PORT_OFFSET)].map(|offset| base + offset..base + offset + n)
}

/// The lowest host port both clusters would use, if any.
fn overlap(a: &RedisClusterSpec, b: &RedisClusterSpec) -> Option<u64> {
    let mut lowest = None;
    for x in ranges(a) {
        for y in ranges(b) {
            let start = x.start.max(y.start);
            if start < x.end.min(y.end) {
                lowest = Some(lowest.map_or(start, |l: u64| l.min(start)));
            }
        }
    }
    lowest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> RedisClusterSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    #[test]
    fn the_later_of_two_clusters_on_the_same_host_ports_is_refused_naming_the_other() {
        let a = spec("masters: 3\nbasePort: 10000");
        let b = spec("masters: 3\nbasePort: 10004");
        let others = [Other {
            namespace: "ns",
            name: "a",
            created: "2026-01-01T00:00:00Z",
            spec: &a,
        }];
        let p = problems(("ns", "b"), "2026-01-02T00:00:00Z", &b, None, &others);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("host port 10004") && p[0].contains("ns/a"),
            "{p:?}"
        );
        let earlier = [Other {
            namespace: "ns",
            name: "b",
            created: "2026-01-02T00:00:00Z",
            spec: &b,
        }];
        assert!(problems(("ns", "a"), "2026-01-01T00:00:00Z", &a, None, &earlier).is_empty());
    }

    #[test]
    fn a_client_port_range_may_not_sit_on_another_clusters_bus_ports() {
        let a = spec("masters: 3\nbasePort: 10000");
        let b = spec("masters: 3\nbasePort: 20003");
        let others = [Other {
            namespace: "x",
            name: "a",
            created: "1",
            spec: &a,
        }];
        let p = problems(("y", "b"), "2", &b, None, &others);
        assert!(p[0].contains("host port 20003"), "{p:?}");
    }

    #[test]
    fn clusters_on_pod_networking_never_conflict() {
        let a = spec("masters: 3\nhostNetwork: false");
        let b = spec("masters: 3");
        let others = [Other {
            namespace: "x",
            name: "a",
            created: "1",
            spec: &a,
        }];
        assert!(problems(("y", "b"), "2", &b, None, &others).is_empty());
    }

    #[test]
    fn base_port_and_persistence_are_fixed_once_running() {
        let before = spec("masters: 3");
        let after = spec("masters: 3\nbasePort: 11000\npersistence:\n  enabled: true");
        let p = problems(("n", "c"), "1", &after, Some(&before), &[]);
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn an_exporter_port_past_65535_is_refused() {
        let s = spec("masters: 3\nbasePort: 45531");
        let p = problems(("n", "c"), "1", &s, None, &[]);
        assert!(p[0].contains("65535"), "{p:?}");
    }
}
