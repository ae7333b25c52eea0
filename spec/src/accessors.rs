//! Read-side helpers with defaults applied, so the operator never re-implements a default.

use crate::defaults;
use crate::memory::{MemoryError, parse_max_memory};
use crate::types::{PasswordSecret, Persistence, RedisClusterSpec};

impl RedisClusterSpec {
    /// Redis image, default applied.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(defaults::IMAGE)
    }

    /// Exporter sidecar image, default applied.
    pub fn exporter_image(&self) -> &str {
        self.exporter_image
            .as_deref()
            .unwrap_or(defaults::EXPORTER_IMAGE)
    }

    /// Replicas per master, default applied.
    pub fn replicas(&self) -> u32 {
        self.replicas.unwrap_or(defaults::REPLICAS)
    }

    /// First client port, default applied.
    pub fn base_port(&self) -> u32 {
        self.base_port.unwrap_or(defaults::BASE_PORT)
    }

    /// Total Redis nodes: every master plus its replicas. `u64` because both factors are
    /// user-controlled `u32`s and the product must not wrap before validation rejects it.
    pub fn total_nodes(&self) -> u64 {
        u64::from(self.masters) * (1 + u64::from(self.replicas()))
    }

    /// Client port of node `ordinal` (0-based), or `None` past 65535.
    pub fn client_port(&self, ordinal: u32) -> Option<u16> {
        u16::try_from(u64::from(self.base_port()) + u64::from(ordinal)).ok()
    }

    /// Cluster bus port of node `ordinal` (client port + 10000), or `None` past 65535.
    pub fn bus_port(&self, ordinal: u32) -> Option<u16> {
        u16::try_from(
            u64::from(self.base_port()) + u64::from(ordinal) + u64::from(defaults::BUS_PORT_OFFSET),
        )
        .ok()
    }

    /// `maxMemory` in bytes; `Ok(None)` when unset (Redis then has no limit).
    pub fn max_memory_bytes(&self) -> Result<Option<u64>, MemoryError> {
        self.max_memory.as_deref().map(parse_max_memory).transpose()
    }

    /// Whether each node gets a PersistentVolumeClaim.
    pub fn persistence_enabled(&self) -> bool {
        self.persistence
            .as_ref()
            .and_then(|p| p.enabled)
            .unwrap_or(false)
    }

    /// Size of each node's volume, default applied.
    pub fn persistence_size(&self) -> &str {
        self.persistence
            .as_ref()
            .and_then(|p| p.size.as_deref())
            .unwrap_or(defaults::PERSISTENCE_SIZE)
    }

    /// `cluster-node-timeout` in milliseconds, default applied.
    /// The extra server settings of every node: `redisConfig`, over the operator's
    /// [`defaults::SERVER_SETTINGS`] (a key in `redisConfig` wins, whatever its case).
    pub fn server_settings(&self) -> std::collections::BTreeMap<String, String> {
        let mut settings: std::collections::BTreeMap<String, String> =
            self.redis_config.clone().unwrap_or_default();
        for (key, value) in defaults::SERVER_SETTINGS {
            if !settings.keys().any(|k| k.trim().eq_ignore_ascii_case(key)) {
                settings.insert((*key).to_string(), (*value).to_string());
            }
        }
        settings
    }

    pub fn cluster_node_timeout_ms(&self) -> u64 {
        self.cluster_node_timeout_ms
            .unwrap_or(defaults::CLUSTER_NODE_TIMEOUT_MS)
    }

    /// Whether pods use the host network, default applied.
    pub fn host_network(&self) -> bool {
        self.host_network.unwrap_or(defaults::HOST_NETWORK)
    }

    /// Rebalance threshold in percent, default applied.
    pub fn rebalance_threshold_percent(&self) -> u32 {
        self.rebalance_threshold_percent
            .unwrap_or(defaults::REBALANCE_THRESHOLD_PERCENT)
    }

    /// Keys per MIGRATE batch, default applied.
    pub fn migration_batch_keys(&self) -> u32 {
        self.migration_batch_keys
            .unwrap_or(defaults::MIGRATION_BATCH_KEYS)
    }
}

impl PasswordSecret {
    /// Key inside the Secret, default applied.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(defaults::PASSWORD_KEY)
    }
}

impl Persistence {
    /// Whether a volume is requested, default applied.
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(false)
    }

    /// Volume size, default applied.
    pub fn size(&self) -> &str {
        self.size.as_deref().unwrap_or(defaults::PERSISTENCE_SIZE)
    }
}
