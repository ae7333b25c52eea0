//! Serde and schema glue for fields that accept more than one YAML shape.

use std::fmt;

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::Deserializer;
use serde::de::{self, Visitor};

/// Accepts `maxMemory: 512mb` as well as `maxMemory: 100000`: YAML turns a bare number into
/// an integer, and Redis itself accepts a plain byte count, so both must parse.
pub fn string_or_integer<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct StringOrInteger;

    impl<'de> Visitor<'de> for StringOrInteger {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string such as 512mb or an integer byte count")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            // Kept as text so validation can say "must not be negative" with the value.
            Ok(Some(v.to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // Kept as text so validation reports `1.5` as an unsupported maxMemory.
            Ok(Some(v.to_string()))
        }
    }

    deserializer.deserialize_option(StringOrInteger)
}

/// Schema for a field that is either an integer or a string, as Kubernetes spells it.
pub fn int_or_string_schema(_generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Redis maxmemory per node: a byte count or a number with a unit among b, k, kb, m, mb, g, gb (case-insensitive), e.g. 512mb. Unset: no limit.",
        "x-kubernetes-int-or-string": true,
    })
}
