//! `pdns-ha collect`: wires the collector to the store (in progress).
use std::path::Path;

pub fn run(_db: &Path) -> anyhow::Result<i32> {
    anyhow::bail!("collect is not available in this build")
}
