//! Placeholder until the collector lands.
use serde::{Deserialize, Serialize};
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    pub probe_interval_ms: u64,
}
impl CollectorConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
