//! The spec a soak's cluster runs with, as the soak changes it: one manifest for a local
//! cluster and for a `RedisCluster` on Kubernetes.

use super::cluster::NODE_TIMEOUT_MS;

/// What the manifest says; the soak edits it and `local scale` overrides the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub masters: u32,
    pub replicas: u32,
    /// `maxMemory`, a setting Redis applies live.
    pub max_memory_mb: u32,
    /// `hash-max-listpack-entries`, a setting that needs a restart: a rolling replacement.
    pub listpack_entries: u32,
    /// The servers' `loglevel` when not the default (`verbose` shows epoch collisions and
    /// every slot a node gives up: what a lost slot's story needs).
    pub server_loglevel: Option<String>,
}

impl Settings {
    /// The soak's start: 3 masters x 1 replica.
    pub(super) fn initial() -> Self {
        Self {
            masters: 3,
            replicas: 1,
            max_memory_mb: 256,
            listpack_entries: 128,
            server_loglevel: None,
        }
    }

    /// The `RedisCluster` manifest (YAML) with these settings, in `namespace` when given.
    pub(super) fn manifest(&self, name: &str, namespace: Option<&str>, base_port: u16) -> String {
        let namespace = namespace
            .map(|ns| format!("  namespace: {ns}\n"))
            .unwrap_or_default();
        let loglevel = self
            .server_loglevel
            .as_ref()
            .map(|l| format!("    loglevel: \"{l}\"\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n\
             {namespace}spec:\n  masters: {}\n  replicas: {}\n  basePort: {base_port}\n  \
             maxMemory: {}mb\n  clusterNodeTimeoutMs: {NODE_TIMEOUT_MS}\n  redisConfig:\n    \
             hash-max-listpack-entries: \"{}\"\n{loglevel}",
            self.masters, self.replicas, self.max_memory_mb, self.listpack_entries
        )
    }

    /// The next value of the setting that needs a rolling replacement (it toggles).
    pub(super) fn next_listpack_entries(&self) -> u32 {
        if self.listpack_entries == 128 {
            256
        } else {
            128
        }
    }

    /// The next value of the setting Redis applies live (it toggles).
    pub(super) fn next_max_memory_mb(&self) -> u32 {
        if self.max_memory_mb == 256 { 200 } else { 256 }
    }

    /// Another shape than the current one, masters 3-6 and replicas 0-2, drawn from `rng`.
    pub(super) fn other_shape(&self, rng: &mut sim::rng::Rng) -> (u32, u32) {
        let now = (self.masters, self.replicas);
        let mut next = now;
        for _ in 0..20 {
            next = (rng.range(3, 6) as u32, rng.range(0, 2) as u32);
            if next != now {
                break;
            }
        }
        next
    }

    /// Whether a scale to `masters` x `replicas` also loses the source of a move mid-move:
    /// a third of the scales that move slots between masters with replicas before and after
    /// (a master without one would take its keys along: the DataLost case, tested apart).
    pub(super) fn scale_loses_source(
        &self,
        masters: u32,
        replicas: u32,
        rng: &mut sim::rng::Rng,
    ) -> bool {
        self.replicas > 0 && replicas > 0 && masters != self.masters && rng.below(3) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_a_valid_cluster_with_the_settings_and_the_namespace() {
        let s = Settings {
            masters: 5,
            replicas: 2,
            max_memory_mb: 200,
            listpack_entries: 256,
            server_loglevel: Some("verbose".into()),
        };
        let text = s.manifest("soak", Some("chaos"), 16700);
        let rc: spec::RedisCluster = serde_yaml::from_str(&text).expect("parses");
        assert_eq!(rc.metadata.namespace.as_deref(), Some("chaos"));
        assert_eq!(rc.spec.masters, 5);
        assert_eq!(rc.spec.replicas, Some(2));
        assert!(
            text.contains("hash-max-listpack-entries: \"256\""),
            "{text}"
        );
        assert!(text.contains("loglevel: \"verbose\""), "{text}");
        let local = s.manifest("soak", None, 20000);
        assert!(!local.contains("namespace"), "{local}");
    }

    #[test]
    fn another_shape_differs_from_the_current_one_and_stays_in_range() {
        let s = Settings::initial();
        let mut rng = sim::rng::Rng::new(3);
        for _ in 0..100 {
            let (m, r) = s.other_shape(&mut rng);
            assert!((3..=6).contains(&m) && r <= 2);
            assert_ne!((m, r), (3, 1));
        }
    }
}
