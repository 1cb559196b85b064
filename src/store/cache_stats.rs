//! Counters of the shared cache (memcached), one row per coprocess, so that
//! `pdns-ha status` can show what every coprocess of this server did.
//!
//! The table is created with `IF NOT EXISTS` (by `apply`, and by the first
//! coprocess that writes to an older database): it needs no schema version.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::Store;

/// Counters of a shared cache (memcached) as one coprocess keeps them, and
/// as `status` sums them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    /// Rejected values (unparsable, foreign, unknown nodes, other version).
    pub rejected: u64,
    pub backing_off: bool,
    /// Unix time until which a server is not asked (0: none); lets `status`
    /// tell a back-off that is over from one that is not.
    pub backoff_until: i64,
}

pub(crate) const CACHE_STATS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS cache_stats(
    pid INTEGER PRIMARY KEY,
    hits INTEGER NOT NULL,
    misses INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    backoff_until INTEGER NOT NULL,
    updated INTEGER NOT NULL
);";

/// Rows not updated for this long are deleted (their process is gone).
const FORGET_AFTER_S: i64 = 3600;

impl Store {
    /// Writes the counters of process `pid` (cumulative since it started).
    /// Fails at once when the database is busy: the caller drops them.
    pub fn write_cache_stats(&mut self, pid: u32, s: &CacheStats, now: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(CACHE_STATS_TABLE)?;
        tx.execute(
            "INSERT OR REPLACE INTO cache_stats(pid, hits, misses, errors, rejected, backoff_until, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                pid,
                s.hits as i64,
                s.misses as i64,
                s.errors as i64,
                s.rejected as i64,
                s.backoff_until,
                now
            ],
        )?;
        tx.execute(
            "DELETE FROM cache_stats WHERE updated < ?1",
            [now - FORGET_AFTER_S],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The counters of the processes that wrote them at or after `since`,
    /// summed; None if there are none (or no table yet). Backing off: one
    /// of them is backing off at `now`.
    pub fn cache_stats_since(&self, since: i64, now: i64) -> Result<Option<CacheStats>> {
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cache_stats'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let (n, hits, misses, errors, rejected, until): (i64, i64, i64, i64, i64, i64) =
            self.conn.query_row(
                "SELECT count(*), total(hits), total(misses), total(errors), total(rejected),
                        coalesce(max(backoff_until), 0)
                 FROM cache_stats WHERE updated >= ?1",
                [since],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, f64>(1)? as i64,
                        r.get::<_, f64>(2)? as i64,
                        r.get::<_, f64>(3)? as i64,
                        r.get::<_, f64>(4)? as i64,
                        r.get(5)?,
                    ))
                },
            )?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(CacheStats {
            hits: hits as u64,
            misses: misses as u64,
            errors: errors as u64,
            rejected: rejected as u64,
            backing_off: until > now,
            backoff_until: if until > now { until } else { 0 },
        }))
    }
}
