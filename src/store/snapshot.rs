//! Publishing the snapshot (`crate::snapshot`) of a database: the writers
//! (`ingest`, `collect`, `apply`) build it from the `latency` and `quality`
//! tables and publish it; the coprocesses read it through a shared memory
//! map instead of asking SQLite on every uncached question.
//!
//! Publishing: the file is built from one read transaction into
//! `DB-latency.tmp.PID`, then, in a write transaction, renamed over
//! `DB-latency` and its random token recorded in `meta`
//! (`latency_snapshot`), with the `latency_version` it reflects. A reader
//! uses a file only if its token is the one `meta` names, so a file from an
//! aborted publish, another database or a restored backup is never read.
//! The publish is dropped if `apply` changed the topology since the build
//! (node and network ids can be reused) or a newer snapshot was published.
//!
//! A build that dies leaves its temporary file; the next build removes the
//! files of processes that are gone.
//!
//! Every latency or call quality write bumps `latency_version`; the
//! snapshot may lag behind it by the [`Publisher`] interval (a moving
//! average seconds old orders nodes as well; health, load and drains are
//! never in the snapshot). No schema change: a database without a snapshot
//! is read through SQLite until the first writer publishes one. `meta`
//! also records the format of the published file
//! (`latency_snapshot_format`): a file of another format (published by an
//! older build, which records none) counts as behind, so the next writer
//! of this build publishes again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, TransactionBehavior, params};

use super::Store;
use super::metrics::{quality_columns, quality_row};
use crate::snapshot::{Builder, Header};

/// Where the snapshot of the database at `db` lives.
pub fn path_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-latency");
    PathBuf::from(s)
}

/// The counters of `meta`, read in one statement (one consistent view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub generation: i64,
    pub health_epoch: i64,
    /// Bumped by every write of latency or call quality entries.
    pub latency_version: i64,
    /// The token of the published snapshot (0: none).
    pub snapshot_token: u64,
    /// The `latency_version` the published snapshot reflects.
    pub snapshot_version: i64,
    /// When it was published (unix seconds) and how long it took to build.
    pub snapshot_at: i64,
    pub snapshot_ms: i64,
    /// The format of the published file (0: not recorded, an older build).
    pub snapshot_format: i64,
}

impl Counters {
    /// True when latency or call quality entries were written since the
    /// snapshot was built, or there is none of this build's format.
    pub fn snapshot_behind(&self) -> bool {
        self.snapshot_token == 0
            || self.snapshot_version < self.latency_version
            || self.snapshot_format != i64::from(crate::snapshot::FORMAT)
    }
}

/// A snapshot just published.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    pub header: Header,
    pub took: Duration,
}

/// `meta`'s counters as `conn` sees them.
pub(super) fn counters_of(conn: &Connection) -> Result<Counters> {
    let mut c = Counters::default();
    let mut stmt = conn.prepare_cached("SELECT key, value FROM meta")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let v: i64 = r.get(1)?;
        match r.get_ref(0)?.as_str()? {
            "generation" => c.generation = v,
            "health_epoch" => c.health_epoch = v,
            "latency_version" => c.latency_version = v,
            "latency_snapshot" => c.snapshot_token = v as u64,
            "latency_snapshot_version" => c.snapshot_version = v,
            "latency_snapshot_at" => c.snapshot_at = v,
            "latency_snapshot_ms" => c.snapshot_ms = v,
            "latency_snapshot_format" => c.snapshot_format = v,
            _ => {}
        }
    }
    Ok(c)
}

fn set_meta(conn: &Connection, key: &str, value: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// True if the snapshot `meta` names is there, readable, and not behind.
pub(super) fn current(conn: &Connection, db: &Path) -> Result<bool> {
    let c = counters_of(conn)?;
    Ok(!c.snapshot_behind()
        && crate::snapshot::Mapped::open(&path_of(db), c.snapshot_token).is_ok())
}

/// Adds one to `latency_version` (inside the writer's transaction): after
/// latency or call quality entries were written.
pub(super) fn bump_latency_version(conn: &Connection) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta(key, value) VALUES ('latency_version', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1",
    )?
    .execute([])?;
    Ok(())
}

/// A token no other snapshot had: random (std's hasher keys are seeded by
/// the OS), never 0.
fn new_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// The family and prefix length of a row selected as `family, net, plen,
/// ...`; None for values no snapshot key can hold (a damaged row: skipped).
fn key_of(r: &rusqlite::Row) -> rusqlite::Result<Option<(u8, u8)>> {
    let (family, plen): (i64, i64) = (r.get(0)?, r.get(2)?);
    Ok(u8::try_from(family).ok().zip(u8::try_from(plen).ok()))
}

/// Builds the snapshot of what `conn` sees into `tmp`.
fn build(conn: &Connection, tmp: &Path, latency_version: i64, now: i64) -> Result<Header> {
    let file =
        std::fs::File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut b = Builder::new(std::io::BufWriter::with_capacity(1 << 16, file))?;
    let mut stmt = conn.prepare_cached(
        "SELECT family, net, plen, node_id, avg_ms, updated FROM latency
         ORDER BY family, net, plen, node_id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let Some((family, plen)) = key_of(r)? else {
            continue;
        };
        b.push(family, r.get(1)?, plen, r.get(3)?, r.get(4)?, r.get(5)?)?;
    }
    drop(rows);
    // The quality table exists once a quality sample was written or the
    // site applied by this build.
    let has_quality: bool = conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quality')",
        )?
        .query_row([], |r| r.get(0))?;
    if has_quality {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT family, net, plen, ",
            quality_columns!(),
            " FROM quality ORDER BY family, net, plen, node_id"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Some((family, plen)) = key_of(r)? else {
                continue;
            };
            b.push_quality(family, r.get(1)?, plen, &quality_row(r, 3)?)?;
        }
    }
    let (out, header) = b.finish(new_token(), now, latency_version)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    // No fsync: after a crash the token in `meta` and the file are checked
    // against each other, and a writer publishes again.
    drop(file);
    Ok(header)
}

fn record(conn: &Connection, h: &Header, took: Duration) -> Result<()> {
    set_meta(conn, "latency_snapshot", h.token as i64)?;
    set_meta(conn, "latency_snapshot_version", h.latency_version)?;
    set_meta(conn, "latency_snapshot_at", h.built_at)?;
    set_meta(
        conn,
        "latency_snapshot_ms",
        took.as_millis().min(i64::MAX as u128) as i64,
    )?;
    set_meta(
        conn,
        "latency_snapshot_format",
        i64::from(crate::snapshot::FORMAT),
    )?;
    Ok(())
}

/// Removes the temporary files of builds whose process is gone (a writer
/// killed while building leaves one, as large as a snapshot).
fn sweep_stale(db: &Path) {
    let Some(dir) = db.parent() else { return };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Some(prefix) = tmp_of_prefix(db) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(e.path()) {
                Ok(()) => log::info!(
                    "removed {}, left by a build that did not finish",
                    e.path().display()
                ),
                Err(err) => log::debug!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}

/// `DB-latency.tmp.`: the start of every temporary file's name.
fn tmp_of_prefix(db: &Path) -> Option<String> {
    let name = path_of(db).file_name()?.to_str()?.to_string();
    Some(format!("{name}.tmp."))
}

/// A file name no other build uses: the process id and a counter.
fn tmp_of(db: &Path) -> PathBuf {
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = path_of(db).into_os_string();
    s.push(format!(".tmp.{}.{n}", std::process::id()));
    PathBuf::from(s)
}

/// Builds and publishes inside a write transaction the caller holds
/// (`apply`): the snapshot sees the transaction's own changes.
pub(super) fn publish_in(conn: &Connection, db: &Path, now: i64) -> Result<Published> {
    let start = Instant::now();
    sweep_stale(db);
    let c = counters_of(conn)?;
    let tmp = tmp_of(db);
    let header = build(conn, &tmp, c.latency_version, now).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    std::fs::rename(&tmp, path_of(db)).with_context(|| {
        format!(
            "cannot rename {} over {}",
            tmp.display(),
            path_of(db).display()
        )
    })?;
    let took = start.elapsed();
    record(conn, &header, took)?;
    Ok(Published { header, took })
}

impl Store {
    /// The file this database is at (none for an in-memory one).
    pub fn db_path(&self) -> Option<PathBuf> {
        self.conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    /// `meta`'s counters, in one read.
    pub fn counters(&self) -> Result<Counters> {
        counters_of(&self.conn)
    }

    /// Builds the snapshot from one read transaction and publishes it.
    /// `None`: not published, because `apply` changed the topology or a newer
    /// snapshot was published meanwhile (the file built is removed).
    pub fn publish_snapshot(&mut self, now: i64) -> Result<Option<Published>> {
        let built = self.build_snapshot(now)?;
        self.commit_snapshot(built)
    }

    /// The first half of [`Store::publish_snapshot`]: the file, built from
    /// one read transaction, not yet published.
    pub fn build_snapshot(&mut self, now: i64) -> Result<Built> {
        let db = self
            .db_path()
            .context("an in-memory database has no snapshot")?;
        let start = Instant::now();
        sweep_stale(&db);
        let tmp = tmp_of(&db);
        let tx = self.conn.transaction()?;
        let counters = counters_of(&tx)?;
        let header = build(&tx, &tmp, counters.latency_version, now);
        tx.finish()?;
        let header = header.inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(Built {
            db,
            tmp,
            counters,
            header,
            start,
        })
    }

    /// The second half: renames the file over the published one and records
    /// its token, unless the topology changed or a newer snapshot was
    /// published since it was built.
    pub fn commit_snapshot(&mut self, b: Built) -> Result<Option<Published>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let c = counters_of(&tx)?;
        if c.generation != b.counters.generation
            || (c.snapshot_token != 0 && c.snapshot_version > b.counters.latency_version)
        {
            let _ = std::fs::remove_file(&b.tmp);
            return Ok(None);
        }
        let path = path_of(&b.db);
        std::fs::rename(&b.tmp, &path).with_context(|| {
            format!("cannot rename {} over {}", b.tmp.display(), path.display())
        })?;
        let took = b.start.elapsed();
        record(&tx, &b.header, took)?;
        tx.commit()?;
        Ok(Some(Published {
            header: b.header,
            took,
        }))
    }
}

/// A snapshot built, not yet published ([`Store::build_snapshot`]).
#[derive(Debug)]
pub struct Built {
    db: PathBuf,
    tmp: PathBuf,
    counters: Counters,
    header: Header,
    start: Instant,
}

/// When a writer publishes: after it wrote latency entries, at most every
/// [`Publisher::interval`] (at least [`MIN_INTERVAL`], and ten times what the
/// last build took, so building costs a writer at most a tenth of a core).
#[derive(Debug, Default)]
pub struct Publisher {
    last: Option<Instant>,
    took: Duration,
}

/// The shortest interval between two publishes by one writer.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Publisher {
    pub fn new() -> Publisher {
        Publisher::default()
    }

    pub fn interval(&self) -> Duration {
        (self.took * 10).max(MIN_INTERVAL)
    }

    /// True if a publish now would respect the interval.
    pub fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval())
    }

    /// Publishes if the snapshot is behind the latency entries and the
    /// interval has passed (`force`: whatever the interval, as a writer
    /// does before it exits). Errors are logged, never fatal: readers fall
    /// back to SQLite.
    pub fn maybe_publish(&mut self, store: &mut Store, force: bool) -> Option<Published> {
        let now = Instant::now();
        if !force && !self.due(now) {
            return None;
        }
        let behind = match store.counters() {
            Ok(c) => c.snapshot_behind(),
            Err(e) => {
                log::debug!("latency snapshot: cannot read the counters: {e:#}");
                return None;
            }
        };
        if !behind {
            return None;
        }
        self.last = Some(now);
        match store.publish_snapshot(crate::metrics::now()) {
            Ok(p) => {
                if let Some(p) = &p {
                    self.took = p.took;
                    log::debug!(
                        "latency snapshot published: {} entries, {} bytes, {} ms",
                        p.header.entries,
                        p.header.file_len,
                        p.took.as_millis()
                    );
                }
                p
            }
            Err(e) => {
                log::warn!("latency snapshot not published: {e:#}");
                None
            }
        }
    }

    #[cfg(test)]
    fn done_at(&mut self, at: Instant, took: Duration) {
        self.last = Some(at);
        self.took = took;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Mapped;
    use crate::store::testing::{ONE_NODE, TempDb};

    fn write(s: &mut Store, lines: &str) {
        let now = crate::metrics::now();
        let batch: Vec<_> = lines
            .lines()
            .filter_map(|l| crate::metrics::parse_line(l, now).unwrap())
            .collect();
        s.write_metrics(&batch, "test", None, now).unwrap();
    }

    fn entries(db: &Path, token: u64, net: i64) -> Vec<(i64, f64)> {
        let m = Mapped::open(&path_of(db), token).unwrap();
        let mut out = Vec::new();
        m.entries(4, net, 24, |e| out.push((e.node_id, e.avg_ms)));
        out
    }

    #[test]
    fn latency_writes_put_the_snapshot_behind_and_a_publish_catches_up() {
        let d = TempDb::new("snap-publish");
        let mut s = d.apply(ONE_NODE);
        // apply published an empty one.
        let c = s.counters().unwrap();
        assert!(!c.snapshot_behind(), "{c:?}");
        assert!(path_of(&d.path).exists());
        write(&mut s, "latency a 10.0.1.1 12\n");
        let c = s.counters().unwrap();
        assert!(c.snapshot_behind());
        assert_eq!(c.latency_version, 1);
        // A load or health sample does not touch latency.
        write(&mut s, "load a 1 10\nhealth a up\n");
        assert_eq!(s.counters().unwrap().latency_version, 1);
        let p = s.publish_snapshot(100).unwrap().unwrap();
        let c = s.counters().unwrap();
        assert!(!c.snapshot_behind());
        assert_eq!(c.snapshot_token, p.header.token);
        assert_eq!((c.snapshot_version, c.snapshot_at), (1, 100));
        let id = s.load_site().unwrap().1.nodes[0];
        assert_eq!(entries(&d.path, p.header.token, 0x0a00_0100), [(id, 12.0)]);
        // No temporary file is left.
        let left: Vec<_> = std::fs::read_dir(&d.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn quality_writes_put_the_snapshot_behind_and_an_older_format_counts_as_behind() {
        let d = TempDb::new("snap-quality");
        let mut s = d.apply(ONE_NODE);
        assert!(!s.counters().unwrap().snapshot_behind());
        write(&mut s, "quality a 10.0.1.1 4.2 1.5\n");
        assert!(s.counters().unwrap().snapshot_behind());
        let p = s.publish_snapshot(100).unwrap().unwrap();
        assert_eq!(
            (p.header.entries, p.header.quality_entries),
            (0, 3),
            "/24, /16, /8"
        );
        let m = Mapped::open(&path_of(&d.path), p.header.token).unwrap();
        let mut got = Vec::new();
        m.quality(4, 0x0a00_0100, 24, |e| {
            got.push((e.mos, e.loss_pct, e.jitter_ms, e.calls))
        });
        assert_eq!(got, [(4.2, Some(1.5), None, 1)]);
        let c = s.counters().unwrap();
        assert!(!c.snapshot_behind());
        assert_eq!(c.snapshot_format, i64::from(crate::snapshot::FORMAT));
        // A snapshot published by an older build (no format recorded) is
        // behind: the next writer replaces it.
        s.conn
            .execute("DELETE FROM meta WHERE key = 'latency_snapshot_format'", [])
            .unwrap();
        assert!(s.counters().unwrap().snapshot_behind());
        assert!(Publisher::new().maybe_publish(&mut s, false).is_some());
        assert!(!s.counters().unwrap().snapshot_behind());
    }

    #[test]
    fn a_snapshot_built_before_an_apply_or_a_newer_publish_is_dropped() {
        let d = TempDb::new("snap-race");
        let mut s = d.apply(ONE_NODE);
        write(&mut s, "latency a 10.0.1.1 12\n");
        let token = s.counters().unwrap().snapshot_token;
        // An apply between the build and the publish: node ids may have
        // been reused, the file built before must not be published.
        let built = s.build_snapshot(5).unwrap();
        let mut other = TempDb::apply_at(
            &d.path,
            &format!("{ONE_NODE}[node.b]\nhost = \"b.voip.test\"\nipv4 = [\"192.0.2.2\"]\n"),
        );
        let token_after_apply = other.counters().unwrap().snapshot_token;
        assert_ne!(token_after_apply, token, "apply publishes its own");
        assert!(s.commit_snapshot(built).unwrap().is_none());
        assert_eq!(s.counters().unwrap().snapshot_token, token_after_apply);
        assert!(Mapped::open(&path_of(&d.path), token_after_apply).is_ok());
        // Two writers: the one built first publishes last, and is dropped.
        write(&mut s, "latency a 10.0.1.1 20\n");
        let old = s.build_snapshot(6).unwrap();
        write(&mut other, "latency a 10.0.1.1 30\n");
        let newer = other.publish_snapshot(7).unwrap().unwrap();
        assert!(s.commit_snapshot(old).unwrap().is_none());
        let c = s.counters().unwrap();
        assert_eq!(c.snapshot_token, newer.header.token);
        assert!(!c.snapshot_behind());
        let left: Vec<_> = std::fs::read_dir(&d.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn files_left_by_builds_of_dead_processes_are_removed() {
        let d = TempDb::new("snap-sweep");
        let mut s = d.apply(ONE_NODE);
        let name = |pid: u32| d.dir.join(format!("db.sqlite-latency.tmp.{pid}.0"));
        // No process has a pid above the kernel's limit (4194304).
        let dead = name(4_194_400);
        let alive = name(std::process::id());
        let other = d.dir.join("unrelated.tmp.4194400.0");
        for f in [&dead, &alive, &other] {
            std::fs::write(f, b"half a snapshot").unwrap();
        }
        write(&mut s, "latency a 10.0.1.1 12\n");
        assert!(s.publish_snapshot(1).unwrap().is_some());
        assert!(!dead.exists(), "a dead build's file is removed");
        assert!(alive.exists(), "a live process may still be building");
        assert!(other.exists(), "other files are not touched");
    }

    #[test]
    fn the_publisher_waits_ten_times_the_last_build_and_at_least_a_second() {
        let mut p = Publisher::new();
        let t0 = Instant::now();
        assert!(p.due(t0));
        p.done_at(t0, Duration::from_millis(20));
        assert_eq!(p.interval(), MIN_INTERVAL);
        assert!(!p.due(t0 + Duration::from_millis(999)));
        assert!(p.due(t0 + MIN_INTERVAL));
        p.done_at(t0, Duration::from_millis(1500));
        assert_eq!(p.interval(), Duration::from_secs(15));
        assert!(!p.due(t0 + Duration::from_secs(14)));
        assert!(p.due(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn maybe_publish_publishes_only_when_behind() {
        let d = TempDb::new("snap-maybe");
        let mut s = d.apply(ONE_NODE);
        let mut p = Publisher::new();
        assert!(p.maybe_publish(&mut s, false).is_none(), "not behind");
        write(&mut s, "latency a 10.0.1.1 12\n");
        assert!(p.maybe_publish(&mut s, false).is_some());
        write(&mut s, "latency a 10.0.1.1 14\n");
        assert!(p.maybe_publish(&mut s, false).is_none(), "interval");
        assert!(p.maybe_publish(&mut s, true).is_some(), "forced");
        assert!(!s.counters().unwrap().snapshot_behind());
    }
}
