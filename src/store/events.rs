//! The log of state changes: every stored health change (with its reason),
//! drain and undrain, `apply` (with what changed), collector start and stop.
//!
//! It is written in the same transaction as the change it records, so the
//! log and the state never disagree. It keeps the newest [`KEEP`] rows;
//! totals per kind live in `meta` (`events.KIND`) so that a counter never
//! goes back when old rows are deleted. The table is created with
//! `IF NOT EXISTS` by the first writer (no schema version); a reader of an
//! older database sees an empty log.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::Store;

/// How many rows the log keeps (about 2 MB at most): weeks of a flapping
/// node, years of a calm site.
pub const KEEP: i64 = 10_000;

/// The longest detail kept, in bytes (a longer one is cut at a character
/// boundary): an `apply` of a large site lists what changed, not all of it.
pub const MAX_DETAIL: usize = 1024;

const EVENTS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS event(
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    node TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_node ON event(node, id);";

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A node's stored health changed (up, down, overloaded).
    Health,
    Drain,
    Undrain,
    /// `pdns-ha apply` changed the site.
    Apply,
    CollectorStart,
    CollectorStop,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Health,
        EventKind::Drain,
        EventKind::Undrain,
        EventKind::Apply,
        EventKind::CollectorStart,
        EventKind::CollectorStop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Health => "health",
            EventKind::Drain => "drain",
            EventKind::Undrain => "undrain",
            EventKind::Apply => "apply",
            EventKind::CollectorStart => "collector_start",
            EventKind::CollectorStop => "collector_stop",
        }
    }

    fn counter_key(self) -> String {
        format!("events.{}", self.as_str())
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<EventKind, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// One row of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub kind: EventKind,
    pub node: Option<String>,
    pub detail: String,
}

/// Appends an event inside the caller's transaction, trims the log to
/// [`KEEP`] rows and counts it in `meta`.
pub(crate) fn record(
    conn: &Connection,
    kind: EventKind,
    node: Option<&str>,
    detail: &str,
    at: i64,
) -> Result<()> {
    conn.execute_batch(EVENTS_TABLE)?;
    conn.prepare_cached("INSERT INTO event(at, kind, node, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![at, kind.as_str(), node, cut(detail, MAX_DETAIL)])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("DELETE FROM event WHERE id <= ?1")?
        .execute([id - KEEP])?;
    conn.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, 1) ON CONFLICT(key) DO UPDATE SET value = value + 1",
    )?
    .execute([kind.counter_key()])?;
    Ok(())
}

/// `s` cut to at most `max` bytes at a character boundary, marked with `…`.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Store {
    /// Records one event in its own transaction.
    pub fn log_event(
        &mut self,
        kind: EventKind,
        node: Option<&str>,
        detail: &str,
        now: i64,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        record(&tx, kind, node, detail, now)?;
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` events at or after `since` (Unix seconds), of
    /// `node` if given, oldest first.
    pub fn events(
        &self,
        since: Option<i64>,
        node: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        if !self.has_events_table()? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, kind, node, detail FROM event
             WHERE at >= ?1 AND (?2 IS NULL OR node = ?2)
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![
                since.unwrap_or(i64::MIN),
                node,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (id, at, kind, node, detail) = row?;
            // A kind written by a newer version is skipped, not an error.
            if let Ok(kind) = kind.parse() {
                out.push(Event {
                    id,
                    at,
                    kind,
                    node,
                    detail,
                });
            }
        }
        out.reverse();
        Ok(out)
    }

    /// How many events of each kind were ever recorded in this database
    /// (every kind, zeros included).
    pub fn event_counts(&self) -> Result<Vec<(EventKind, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
        EventKind::ALL
            .into_iter()
            .map(|k| {
                let n: Option<i64> = stmt.query_row([k.counter_key()], |r| r.get(0)).optional()?;
                Ok((k, n.unwrap_or(0).max(0) as u64))
            })
            .collect()
    }

    fn has_events_table(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event'")?
            .exists([])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{ONE_NODE as SITE, TempDb};

    #[test]
    fn an_older_database_has_an_empty_log_and_zero_counts() {
        let db = TempDb::new("events-empty");
        let store = db.apply(SITE);
        store
            .conn
            .execute("DROP TABLE IF EXISTS event", [])
            .unwrap();
        assert_eq!(store.events(None, None, 10).unwrap(), vec![]);
        let counts = store.event_counts().unwrap();
        assert_eq!(counts.len(), EventKind::ALL.len());
    }

    #[test]
    fn events_are_listed_oldest_first_filtered_and_counted() {
        let db = TempDb::new("events-list");
        let mut store = db.apply(SITE);
        // The apply just logged is now, after the times below.
        assert_eq!(
            store.events(None, None, 10).unwrap()[0].kind,
            EventKind::Apply
        );
        store.conn.execute("DELETE FROM event", []).unwrap();
        let before = store.event_counts().unwrap();
        store
            .log_event(EventKind::CollectorStart, None, "started", 100)
            .unwrap();
        store
            .log_event(EventKind::Drain, Some("a"), "drained", 200)
            .unwrap();
        store
            .log_event(EventKind::Undrain, Some("a"), "undrained", 300)
            .unwrap();
        let all = store.events(None, None, 100).unwrap();
        let tail: Vec<_> = all.iter().map(|e| e.kind).collect();
        assert_eq!(
            tail,
            [
                EventKind::CollectorStart,
                EventKind::Drain,
                EventKind::Undrain
            ]
        );
        let a = store.events(None, Some("a"), 100).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|e| e.node.as_deref() == Some("a")));
        let since = store.events(Some(250), None, 100).unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].detail, "undrained");
        // The newest `limit`, still oldest first.
        let last = store.events(None, None, 2).unwrap();
        assert_eq!(last.iter().map(|e| e.at).collect::<Vec<_>>(), [200, 300]);
        let after = store.event_counts().unwrap();
        let count = |c: &[(EventKind, u64)], k| c.iter().find(|(x, _)| *x == k).unwrap().1;
        assert_eq!(
            count(&after, EventKind::Drain),
            count(&before, EventKind::Drain) + 1
        );
        assert_eq!(
            count(&after, EventKind::CollectorStart),
            count(&before, EventKind::CollectorStart) + 1
        );
    }

    #[test]
    fn the_log_keeps_the_newest_rows_and_the_counts_keep_counting() {
        let db = TempDb::new("events-bound");
        let mut store = db.apply(SITE);
        let tx = store.conn.transaction().unwrap();
        for i in 0..KEEP + 50 {
            record(&tx, EventKind::Health, Some("a"), &format!("change {i}"), i).unwrap();
        }
        tx.commit().unwrap();
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM event", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, KEEP);
        let newest = store.events(None, None, 1).unwrap();
        assert_eq!(newest[0].detail, format!("change {}", KEEP + 49));
        let oldest: String = store
            .conn
            .query_row("SELECT detail FROM event ORDER BY id LIMIT 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(oldest, "change 50");
        let health = store.event_counts().unwrap()[0];
        assert_eq!(health, (EventKind::Health, KEEP as u64 + 50));
    }

    #[test]
    fn a_long_detail_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_DETAIL);
        let c = cut(&long, MAX_DETAIL);
        assert!(c.len() <= MAX_DETAIL && c.ends_with('…'));
        assert_eq!(cut("short", MAX_DETAIL), "short");
    }

    #[test]
    fn kinds_parse_back() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
        }
        assert!("nope".parse::<EventKind>().is_err());
    }
}
