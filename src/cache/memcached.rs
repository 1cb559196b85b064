//! memcached as the shared decision cache (in progress).
use anyhow::{Result, bail};

use super::{CacheStats, SharedCache};
use crate::store::Store;

pub fn connect(_servers: &str) -> Result<Box<dyn SharedCache>> {
    bail!("--memcached is not available in this build")
}

pub fn stats_from_store(_store: &Store) -> Result<Option<CacheStats>> {
    Ok(None)
}
