#![forbid(unsafe_code)]
//! The `RedisCluster` API (`redis.redis/v1beta1`): types, defaults, validation, manifest
//! parsing and CRD generation. No I/O and no Kubernetes client: everything here is pure.

mod accessors;
pub mod crd;
pub mod defaults;
pub mod manifest;
pub mod memory;
pub mod quantity;
mod serde_helpers;
pub mod types;
pub mod validation;

pub use crd::crd_yaml;
pub use manifest::{ManifestError, parse_manifest};
pub use memory::{MemoryError, parse_max_memory};
pub use quantity::{ParsedQuantity, QuantityError, parse_quantity};
pub use types::{
    NodeStatus, PasswordSecret, Persistence, RedisCluster, RedisClusterSpec, RedisClusterStatus,
    condition_types, roles,
};
pub use validation::{Problem, validate, warnings};
