//! The redis container's command line: one `sh -c` script, so that a node without
//! persistence starts with a new identity after any restart (see [`server_script`]).

use super::{ClusterCtx, NodePorts};
use crate::names::DATA_DIR;

/// The environment variables the script reads (set from the downward API and the Secret).
pub const ENV_POD_IP: &str = "POD_IP";
pub const ENV_PASSWORD: &str = "REDIS_PASSWORD";

/// The script that starts `redis-server` on a node's `ports`.
///
/// Without persistence a node that restarts has lost its data but would still find its
/// `nodes.conf` (an emptyDir outlives a container restart): it would come back as the same
/// node, still owning its slots, and its replicas would copy its empty dataset. So the script
/// removes `nodes.conf` first: the node returns as a new, empty node and the engine treats it
/// as one (the replica takes over; the old id is forgotten). With persistence nothing is
/// removed: the node comes back with its identity and its append-only file.
///
/// The password is read from the environment at start, never written into the pod spec.
pub fn server_script(ctx: &ClusterCtx<'_>, ports: NodePorts) -> String {
    let spec = ctx.spec;
    let persistent = spec.persistence_enabled();
    let mut args: Vec<String> = vec![
        "redis-server".into(),
        format!("--port {}", ports.client),
        format!("--bind \"${ENV_POD_IP}\""),
        "--protected-mode no".into(),
        "--cluster-enabled yes".into(),
        format!("--cluster-config-file {DATA_DIR}/nodes.conf"),
        format!("--cluster-node-timeout {}", spec.cluster_node_timeout_ms()),
        format!("--cluster-announce-ip \"${ENV_POD_IP}\""),
        format!("--cluster-announce-port {}", ports.client),
        format!("--cluster-announce-bus-port {}", ports.bus),
        // A master lists its replicas by the address their connection comes from, which on
        // a multi-address host (or behind NAT) is not the one they announce; the operator
        // matches replicas by it before it moves keys to a master.
        format!("--replica-announce-ip \"${ENV_POD_IP}\""),
        format!("--dir {DATA_DIR}"),
        // A replica proves its stream flows by an offset above 0 (the engine's synced-replica
        // test); a master's pings move it while nothing is written, so every second.
        "--repl-ping-replica-period 1".into(),
    ];
    if persistent {
        args.push("--appendonly yes".into());
    } else {
        args.push("--appendonly no".into());
        args.push("--save ''".into());
    }
    if let Ok(Some(bytes)) = spec.max_memory_bytes() {
        args.push(format!("--maxmemory {bytes}"));
    }
    // Replicas authenticate as the replication user, which the engine creates only when
    // copying this node is safe (`engine::replication_gate`).
    args.push(format!("--masteruser {}", engine::replication_gate::USER));
    if spec.password_secret.is_some() {
        args.push(format!("--requirepass \"${ENV_PASSWORD}\""));
        args.push(format!("--masterauth \"${ENV_PASSWORD}\""));
    } else {
        args.push(format!(
            "--masterauth {}",
            quote(engine::replication_gate::masterauth(None))
        ));
    }
    for (k, v) in &spec.server_settings() {
        args.push(format!("--{} {}", k.trim().to_ascii_lowercase(), quote(v)));
    }
    let exec = format!("exec {}", args.join(" "));
    if persistent {
        exec
    } else {
        format!("rm -f {DATA_DIR}/nodes.conf\n{exec}")
    }
}

/// Single-quotes `s` for `sh`: nothing inside is expanded.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::RedisClusterSpec;

    fn script(yaml: &str) -> String {
        let spec: RedisClusterSpec = serde_yaml::from_str(yaml).expect("spec");
        let ctx = ClusterCtx {
            name: "c",
            namespace: "ns",
            uid: "u",
            spec: &spec,
            spread_required: false,
        };
        let ports = super::super::node_ports(&spec, 1).expect("ports");
        server_script(&ctx, ports)
    }

    #[test]
    fn a_node_without_persistence_forgets_its_identity_before_it_starts() {
        let s = script("masters: 3");
        assert!(
            s.starts_with("rm -f /data/nodes.conf\nexec redis-server --port 10001"),
            "{s}"
        );
        assert!(s.contains("--cluster-announce-bus-port 20001"));
        assert!(s.contains("--save ''"));
    }

    #[test]
    fn a_persistent_node_keeps_its_identity_and_appends_to_a_log() {
        let s = script("masters: 3\npersistence:\n  enabled: true");
        assert!(s.starts_with("exec redis-server"), "{s}");
        assert!(s.contains("--appendonly yes"));
    }

    #[test]
    fn the_password_comes_from_the_environment_and_settings_are_quoted() {
        let s = script(
            "masters: 3\npasswordSecret:\n  name: pw\nredisConfig:\n  slowlog-log-slower-than: \"it's\"",
        );
        assert!(s.contains("--requirepass \"$REDIS_PASSWORD\""));
        assert!(s.contains("--slowlog-log-slower-than 'it'\\''s'"));
    }

    #[test]
    fn replicas_authenticate_as_the_replication_user_with_or_without_a_password() {
        let open = script("masters: 3");
        assert!(
            open.contains("--masteruser rop-replication --masterauth 'no-password'"),
            "{open}"
        );
        let guarded = script("masters: 3\npasswordSecret:\n  name: pw");
        assert!(
            guarded.contains("--masteruser rop-replication --requirepass"),
            "{guarded}"
        );
        assert!(
            guarded.contains("--masterauth \"$REDIS_PASSWORD\""),
            "{guarded}"
        );
    }

    #[test]
    fn a_replica_syncs_at_once_unless_redis_config_says_otherwise() {
        assert!(script("masters: 3").contains("--repl-diskless-sync-delay '0'"));
        let own = script("masters: 3\nredisConfig:\n  Repl-Diskless-Sync-Delay: \"7\"");
        assert!(own.contains("--repl-diskless-sync-delay '7'"), "{own}");
        assert!(!own.contains("--repl-diskless-sync-delay '0'"), "{own}");
    }
}
