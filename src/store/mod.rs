//! The SQLite store: schema and migrations, the topology (`apply`), and the
//! metrics (latency, call quality, load, health, drains, seen client
//! networks).
//!
//! Every process opens its own connection; the database is in WAL mode so
//! the coprocesses read while the collector or `ingest` writes. The schema
//! version is `PRAGMA user_version`; only `pdns-ha apply` creates or migrates.

mod apply;
mod cache_stats;
pub mod events;
mod metrics;
mod probes;
pub mod snapshot;
#[cfg(test)]
pub(crate) mod testing;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::site::{self, Site};

pub use apply::{Change, apply_site, diff_site};
pub use cache_stats::CacheStats;
pub use events::{Event, EventKind};
pub use metrics::{
    HealthRow, LatencyRow, LoadRow, NodeStateRows, QualityRow, SeenRow, StatusCounts, WriteOutcome,
};
pub use probes::ProbeRow;
pub use snapshot::{Counters, Publisher};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('generation', 0), ('health_epoch', 0), ('collector_heartbeat', 0);
CREATE TABLE topology(
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    def TEXT NOT NULL,
    UNIQUE(kind, name)
);
CREATE TABLE latency(
    family INTEGER NOT NULL,   -- 4, 6, or 0 for a named network (net = its id)
    net INTEGER NOT NULL,
    plen INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    avg_ms REAL NOT NULL,
    dev_ms REAL NOT NULL,
    samples INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY(family, net, plen, node_id)
) WITHOUT ROWID;
CREATE INDEX latency_node ON latency(node_id);
CREATE TABLE load(
    node_id INTEGER PRIMARY KEY,
    sessions INTEGER NOT NULL,
    max_sessions INTEGER NOT NULL,
    idle_cpu REAL,
    updated INTEGER NOT NULL
);
CREATE TABLE health(
    node_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    since INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    source TEXT NOT NULL,
    probe_rtt_ms REAL
);
CREATE TABLE drain(node_id INTEGER PRIMARY KEY, since INTEGER NOT NULL);
CREATE TABLE seen_network(
    family INTEGER NOT NULL,
    net INTEGER NOT NULL,
    plen INTEGER NOT NULL,
    queries INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY(family, net, plen)
) WITHOUT ROWID;
";

/// How a connection was opened ([`Store::open_reader`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// The files are read-only: writes fail; changes by others are seen.
    ReadOnly,
    /// Neither the files nor the directory could be written and no other
    /// process had the database open: a frozen view, reopen it later.
    Immutable,
}

/// A connection to the pdns-ha database.
pub struct Store {
    pub(crate) conn: Connection,
}

impl Store {
    /// Opens the database for `apply`: creates it if missing and migrates
    /// the schema to [`SCHEMA_VERSION`].
    ///
    /// A new database file is created here, with mode 0666 less the umask
    /// (as any program creates a file), before SQLite opens it: SQLite
    /// would create it 0644 less the umask, and its `-wal` and `-shm` files
    /// take the database's mode, so a group sharing the directory (the
    /// collector's user and `pdns`) could never write them. With `umask
    /// 007` the database is 0660.
    pub fn open_or_create(path: &Path) -> Result<Store> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot create the database {}: check that its directory exists and is writable by this user",
                        path.display()
                    )
                });
            }
        }
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open or create the database {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let store = Store { conn };
        store.pragmas()?;
        store
            .migrate()
            .with_context(|| format!("cannot migrate {}", path.display()))?;
        Ok(store)
    }

    /// Opens an existing database whose schema is current. `busy` is how long
    /// a statement waits for another writer's lock.
    pub fn open_existing(path: &Path, busy: Duration) -> Result<Store> {
        Store::open_as(path, busy, Access::ReadWrite)
    }

    /// Opens an existing database for a reader that writes only what it may
    /// lose (the coprocess): read-write if it can; else, when the directory
    /// or the files are read-only, read-only (SQLite reads a WAL database
    /// whose `-wal` and `-shm` files exist); else, when those do not exist
    /// and no file can be created in the directory (so no process can
    /// write), as an immutable file, if no `-wal` file holds data: what it
    /// reads then is complete, but it sees no later change (reopen it, see
    /// [`Access`]). A locked database is an error, never read around.
    pub fn open_reader(path: &Path, busy: Duration) -> Result<(Store, Access)> {
        let rw = match Store::open_as(path, busy, Access::ReadWrite) {
            Ok(s) => return Ok((s, Access::ReadWrite)),
            Err(e) => e,
        };
        // A locked database is waited for, never read around.
        if is_busy(&rw) || !path.exists() {
            return Err(rw);
        }
        if let Ok(s) = Store::open_as(path, busy, Access::ReadOnly) {
            return Ok((s, Access::ReadOnly));
        }
        // Immutable reads skip locking: safe only where no process can
        // write, that is where no journal or WAL file can be created.
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if std::fs::metadata(&wal).ok().is_none_or(|m| m.len() == 0)
            && !dir_writable(dir.unwrap_or(Path::new(".")))
            && let Ok(s) = Store::open_as(path, busy, Access::Immutable)
        {
            return Ok((s, Access::Immutable));
        }
        Err(rw)
    }

    fn open_as(path: &Path, busy: Duration, access: Access) -> Result<Store> {
        if !path.exists() {
            bail!(
                "the database {} does not exist: create it with `pdns-ha apply SITE.toml --db {}`",
                path.display(),
                path.display()
            );
        }
        let conn = match access {
            Access::ReadWrite => Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ),
            Access::ReadOnly => Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ),
            Access::Immutable => {
                let mut uri = String::from("file:");
                for &b in path.as_os_str().as_encoded_bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-') {
                        uri.push(char::from(b));
                    } else {
                        uri.push_str(&format!("%{b:02X}"));
                    }
                }
                uri.push_str("?immutable=1");
                Connection::open_with_flags(
                    uri,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_URI
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
            }
        }
        .with_context(|| format!("cannot open the database {}", path.display()))?;
        conn.busy_timeout(busy)?;
        let store = Store { conn };
        // SQLite opens the file at the first statement: its errors say
        // which file and what to check.
        let v = store
            .pragmas()
            .and_then(|_| store.schema_version())
            .map_err(|e| {
                let cannot_write = e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<rusqlite::Error>(),
                        Some(rusqlite::Error::SqliteFailure(f, _))
                            if matches!(f.code, rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
                    )
                });
                if cannot_write && access == Access::ReadWrite {
                    e.context(format!(
                        "cannot open the database {} for writing: this user must be able to write it and \
                         its directory (SQLite keeps {}-wal and -shm beside it); a read-only file system?",
                        path.display(),
                        path.display()
                    ))
                } else {
                    e.context(format!("cannot read the database {}", path.display()))
                }
            })?;
        if v != SCHEMA_VERSION {
            bail!(
                "the database {} has schema version {v}, this pdns-ha uses {SCHEMA_VERSION}: run `pdns-ha apply SITE.toml --db {}`",
                path.display(),
                path.display()
            );
        }
        Ok(store)
    }

    fn pragmas(&self) -> Result<()> {
        // WAL needs a write the first time; a read-only or busy database keeps
        // its mode, which is fine for readers.
        let _ = self.conn.pragma_update(None, "journal_mode", "WAL");
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }

    /// Bounds this connection's page cache (the coprocess keeps it small so
    /// its memory does not grow with the data).
    pub fn limit_cache(&self, kib: i64) -> Result<()> {
        self.conn.pragma_update(None, "cache_size", -kib)?;
        self.conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn migrate(&self) -> Result<()> {
        let v = self.schema_version()?;
        if v > SCHEMA_VERSION {
            bail!(
                "the database has schema version {v}, newer than this pdns-ha ({SCHEMA_VERSION}): upgrade pdns-ha"
            );
        }
        if v == 0 {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(SCHEMA_V1)?;
            tx.pragma_update(None, "user_version", 1)?;
            tx.commit()?;
        }
        // Added without a schema version: older version-1 databases get it here.
        self.conn.execute_batch(cache_stats::CACHE_STATS_TABLE)?;
        self.conn.execute_batch(metrics::ANSWER_COUNT_TABLE)?;
        self.conn.execute_batch(probes::PROBES_TABLE)?;
        self.conn.execute_batch(metrics::QUALITY_TABLE)?;
        Ok(())
    }

    /// Changes whenever another connection commits (cheap: no disk access).
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// A counter from the `meta` table (`generation`, `health_epoch`, ...).
    pub fn meta(&self, key: &str) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// The topology as stored, with the database id of every object.
    pub fn load_site(&self) -> Result<(Site, Ids)> {
        let mut site = Site::default();
        let mut ids = Ids::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, kind, name, def FROM topology ORDER BY kind, name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (id, kind, name, def) = row?;
            let bad = |e: serde_json::Error| {
                anyhow::anyhow!(
                    "stored {kind} \"{name}\" is unreadable ({e}): run `pdns-ha apply` again"
                )
            };
            match kind.as_str() {
                "zone" => {
                    ids.zones.push(id);
                    site.zones.push(serde_json::from_str(&def).map_err(bad)?)
                }
                "node" => {
                    ids.nodes.push(id);
                    site.nodes.push(serde_json::from_str(&def).map_err(bad)?)
                }
                "service" => site.services.push(serde_json::from_str(&def).map_err(bad)?),
                "pool" => site.pools.push(serde_json::from_str(&def).map_err(bad)?),
                "record" => site.records.push(serde_json::from_str(&def).map_err(bad)?),
                "network" => {
                    ids.networks.push(id);
                    site.networks.push(serde_json::from_str(&def).map_err(bad)?)
                }
                "settings" if name == "policy" => {
                    site.policy = serde_json::from_str(&def).map_err(bad)?
                }
                "settings" if name == "collector" => {
                    site.collector = serde_json::from_str(&def).map_err(bad)?
                }
                _ => log::warn!("ignoring unknown stored object {kind} \"{name}\""),
            }
        }
        // Stored objects went through the same validation once; check the
        // parts that reach the DNS again, so a hand-edited database cannot
        // put bad content on the pipe.
        site::revalidate(&site).map_err(|e| {
            anyhow::anyhow!("stored topology is invalid: {e}: run `pdns-ha apply` again")
        })?;
        Ok((site, ids))
    }

    /// Sets or clears the operator's drain on a node. Returns false if the
    /// node does not exist.
    pub fn set_drain(&mut self, node: &str, drained: bool, now: i64) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM topology WHERE kind = 'node' AND name = ?1",
                [node],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else { return Ok(false) };
        let changed = if drained {
            tx.execute(
                "INSERT OR IGNORE INTO drain(node_id, since) VALUES (?1, ?2)",
                params![id, now],
            )?
        } else {
            tx.execute("DELETE FROM drain WHERE node_id = ?1", [id])?
        };
        if changed > 0 {
            let (kind, detail) = if drained {
                (EventKind::Drain, "drained by the operator: no new calls")
            } else {
                (EventKind::Undrain, "undrained by the operator")
            };
            events::record(&tx, kind, Some(node), detail, now)?;
        }
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
            [],
        )?;
        tx.commit()?;
        Ok(true)
    }
}

/// Database ids of the objects of a loaded [`Site`], index for index.
#[derive(Clone, Debug, Default)]
pub struct Ids {
    pub zones: Vec<i64>,
    pub nodes: Vec<i64>,
    pub networks: Vec<i64>,
}

/// True if the error is SQLite's "database is locked/busy".
/// True if a file can be created in `dir` (tried, then removed).
fn dir_writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".pdns-ha-write-test.{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
    }
}

pub fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy || f.code == rusqlite::ErrorCode::DatabaseLocked
        )
    })
}
