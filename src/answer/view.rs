//! The coprocess's view of the store: the database connection (opened when
//! the file appears, reopened when it is replaced, dropped when it breaks),
//! the topology (rebuilt when `apply` or a drain bumps the generation) and
//! the node states (reloaded when another process committed). Checked
//! through `PRAGMA data_version` at most every [`CHECK_EVERY`]; the last good
//! topology keeps answering while the database is missing or unreadable.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::snapshot::Mapped;
use crate::store::{Access, NodeStateRows, Store, snapshot};
use crate::topology::Topology;

/// How often the coprocess asks SQLite whether another process committed.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How often a missing or broken database is tried again, and how often an
/// open one is checked for having been replaced.
pub const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// SQLite page cache of a coprocess, KiB: the topology, node states and
/// meta are a few pages; latency entries come from the snapshot (SQLite
/// only reads them while there is none).
const PAGE_CACHE_KIB: i64 = 128;

/// What a refresh changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// The node states were reloaded (another process committed).
    pub states: bool,
    /// The generation or the health epoch moved: decisions made before are
    /// stale.
    pub decisions: bool,
}

pub struct StoreView {
    db_path: PathBuf,
    store: Option<Store>,
    /// How `store` is open: anything but read-write is retried.
    access: Access,
    file_id: Option<(u64, u64)>,
    pub topo: Rc<Topology>,
    pub states: NodeStateRows,
    /// The published latency snapshot, mapped (None: read through SQLite).
    snapshot: Option<Mapped>,
    snapshot_token: u64,
    data_version: i64,
    generation: i64,
    health_epoch: i64,
    last_check: Option<Instant>,
    last_open_try: Option<Instant>,
    last_file_check: Instant,
    last_error_log: Option<Instant>,
}

impl StoreView {
    /// A view of the database at `path`, which may not exist yet.
    pub fn new(path: &Path) -> StoreView {
        StoreView {
            db_path: path.to_path_buf(),
            store: None,
            access: Access::ReadWrite,
            file_id: None,
            topo: Rc::new(Topology::default()),
            states: NodeStateRows::default(),
            snapshot: None,
            snapshot_token: 0,
            data_version: -1,
            generation: -1,
            health_epoch: -1,
            last_check: None,
            last_open_try: None,
            last_file_check: Instant::now(),
            last_error_log: None,
        }
    }

    /// The store, if open.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    pub fn store_mut(&mut self) -> Option<&mut Store> {
        self.store.as_mut()
    }

    /// The mapped snapshot, if the database names one that is valid.
    pub fn snapshot(&self) -> Option<&Mapped> {
        self.snapshot.as_ref()
    }

    /// Where latency and call quality entries are read from: the snapshot,
    /// else SQLite (None: no store open).
    pub fn source(&self) -> Option<super::latency::Source<'_>> {
        match (self.snapshot(), self.store()) {
            (Some(m), _) => Some(super::latency::Source::Snapshot(m)),
            (None, Some(s)) => Some(super::latency::Source::Store(s)),
            (None, None) => None,
        }
    }

    /// The topology generation and health epoch the view is at.
    pub fn version(&self) -> (i64, i64) {
        (self.generation, self.health_epoch)
    }

    /// Brings the view up to date, cheaply: called before every question;
    /// does real work at most every [`CHECK_EVERY`].
    pub fn refresh(&mut self) -> Changed {
        let now = Instant::now();
        // Without a database every answer is empty, and PowerDNS caches that
        // (REFUSED, up to negquery-cache-ttl): while none is open, a database
        // file that appeared or changed is tried at once (one stat() per
        // question), not after the intervals below.
        let missing_changed = self.store.is_none() && file_id(&self.db_path) != self.file_id;
        if !missing_changed
            && self
                .last_check
                .is_some_and(|t| now.duration_since(t) < CHECK_EVERY)
        {
            return Changed::default();
        }
        self.last_check = Some(now);
        if self.store.is_some() && now.duration_since(self.last_file_check) >= REOPEN_EVERY {
            self.last_file_check = now;
            if file_id(&self.db_path) != self.file_id {
                log::warn!(
                    "the database {} was replaced or removed; reopening",
                    self.db_path.display()
                );
                self.store = None;
            } else if self.access != Access::ReadWrite {
                // Writable again? An immutable view sees no change at all.
                match Store::open_existing(&self.db_path, Duration::from_millis(5)) {
                    Ok(s) if s.limit_cache(PAGE_CACHE_KIB).is_ok() => {
                        log::info!("database {} writable again", self.db_path.display());
                        self.opened(s, Access::ReadWrite);
                    }
                    _ => {}
                }
            }
        }
        if self.store.is_none() {
            if !missing_changed
                && self
                    .last_open_try
                    .is_some_and(|t| now.duration_since(t) < REOPEN_EVERY)
            {
                return Changed::default();
            }
            self.last_open_try = Some(now);
            self.file_id = file_id(&self.db_path);
            match Store::open_reader(&self.db_path, Duration::from_millis(5))
                .and_then(|(s, a)| s.limit_cache(PAGE_CACHE_KIB).map(|_| (s, a)))
            {
                Ok((s, access)) => {
                    match access {
                        Access::ReadWrite => {
                            log::info!("database {} open", self.db_path.display())
                        }
                        Access::ReadOnly => log::warn!(
                            "database {} open read-only (its directory or files cannot be written): \
                             answering from it; client networks are not counted",
                            self.db_path.display()
                        ),
                        Access::Immutable => log::warn!(
                            "database {} open as a frozen copy (its directory cannot be written and \
                             no other process has it open): answering from it, changes are seen \
                             once it is writable again",
                            self.db_path.display()
                        ),
                    }
                    self.opened(s, access);
                }
                Err(e) => {
                    self.log_error("no database yet; answering with no data", &e);
                    return Changed::default();
                }
            }
        }
        match self.reload() {
            Ok(changed) => changed,
            Err(e) => {
                self.log_error("cannot read the database; keeping the last topology", &e);
                if !crate::store::is_busy(&e) {
                    self.store = None;
                }
                Changed::default()
            }
        }
    }

    /// Starts over with a newly opened connection: everything is read again.
    fn opened(&mut self, s: Store, access: Access) {
        self.file_id = file_id(&self.db_path);
        self.store = Some(s);
        self.access = access;
        self.data_version = -1;
        self.generation = -1;
        self.snapshot = None;
        self.snapshot_token = 0;
    }

    fn reload(&mut self) -> anyhow::Result<Changed> {
        let store = self.store.as_ref().expect("store open");
        let dv = store.data_version()?;
        if dv == self.data_version {
            return Ok(Changed::default());
        }
        // One read: the topology and the snapshot it goes with.
        let c = store.counters()?;
        let (generation, health_epoch) = (c.generation, c.health_epoch);
        if c.snapshot_token != self.snapshot_token {
            self.snapshot_token = c.snapshot_token;
            self.snapshot = None;
            if c.snapshot_token != 0 {
                let path = snapshot::path_of(&self.db_path);
                match Mapped::open(&path, c.snapshot_token) {
                    Ok(m) => {
                        log::info!(
                            "latency snapshot {}: {} entries for {} aggregates",
                            path.display(),
                            m.header().entries,
                            m.header().keys
                        );
                        self.snapshot = Some(m);
                    }
                    // Once per token: the next publish is tried anew.
                    Err(e) => log::warn!("latency read through SQLite: {e:#}"),
                }
            }
        }
        if generation != self.generation {
            let (site, ids) = store.load_site()?;
            self.topo = Rc::new(Topology::build(site, &ids, generation));
            log::info!(
                "topology generation {generation}: {} zones, {} nodes, {} services, {} pools",
                self.topo.zones.len(),
                self.topo.nodes.len(),
                self.topo.services.len(),
                self.topo.pools.len()
            );
        }
        self.states = store.node_states()?;
        let changed = Changed {
            states: true,
            decisions: generation != self.generation || health_epoch != self.health_epoch,
        };
        self.generation = generation;
        self.health_epoch = health_epoch;
        self.data_version = dv;
        Ok(changed)
    }

    fn log_error(&mut self, what: &str, e: &anyhow::Error) {
        if super::due(&mut self.last_error_log) {
            log::error!("{what}: {e:#}");
        }
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{ONE_NODE as SITE, TempDb};

    fn apply(db: &Path, text: &str) {
        TempDb::apply_at(db, text);
    }

    /// Refreshes once the check interval has passed.
    fn refresh_later(v: &mut StoreView) -> Changed {
        v.last_check = None;
        v.last_open_try = None;
        v.last_file_check = Instant::now() - REOPEN_EVERY;
        v.refresh()
    }

    #[test]
    fn opens_the_database_when_it_appears_and_loads_the_topology() {
        let d = TempDb::new("appears");
        let db = d.path.clone();
        let mut v = StoreView::new(&db);
        assert_eq!(v.refresh(), Changed::default());
        assert!(v.store().is_none());
        assert!(v.topo.zones.is_empty());
        apply(&db, SITE);
        // At once, not after the reopen interval: the file changed.
        let c = v.refresh();
        assert!(c.states && c.decisions, "{c:?}");
        assert_eq!(v.topo.nodes.len(), 1);
        assert_eq!(v.version().0, 1);
        // Nothing changed since: nothing to reload.
        assert_eq!(refresh_later(&mut v), Changed::default());
    }

    #[test]
    fn a_new_generation_rebuilds_the_topology_and_a_health_change_only_the_states() {
        let d = TempDb::new("generation");
        let db = d.path.clone();
        apply(&db, SITE);
        let mut v = StoreView::new(&db);
        v.refresh();
        let before = Rc::clone(&v.topo);
        apply(
            &db,
            &format!("{SITE}[node.b]\nhost = \"b.voip.test\"\nipv4 = [\"192.0.2.2\"]\n"),
        );
        let c = refresh_later(&mut v);
        assert!(c.decisions, "{c:?}");
        assert_eq!(v.topo.nodes.len(), 2);
        assert!(!Rc::ptr_eq(&before, &v.topo));
        let topo = Rc::clone(&v.topo);
        // A health change: new states and a new epoch, same topology.
        let mut s = Store::open_existing(&db, Duration::from_secs(1)).unwrap();
        let m = crate::metrics::parse_line("health a down", crate::metrics::now())
            .unwrap()
            .unwrap();
        s.write_metrics(&[m], "test", None, crate::metrics::now())
            .unwrap();
        let c = refresh_later(&mut v);
        assert!(c.states && c.decisions, "{c:?}");
        assert!(Rc::ptr_eq(&topo, &v.topo), "the topology is kept");
        assert_eq!(v.states.health.len(), 1);
        // A load sample: new states, decisions still valid.
        let m = crate::metrics::parse_line("load a 1 10", crate::metrics::now())
            .unwrap()
            .unwrap();
        s.write_metrics(&[m], "test", None, crate::metrics::now())
            .unwrap();
        let c = refresh_later(&mut v);
        assert_eq!(
            c,
            Changed {
                states: true,
                decisions: false
            }
        );
    }

    #[test]
    fn a_replaced_database_is_reopened_and_a_broken_one_keeps_the_last_topology() {
        let d = TempDb::new("replaced");
        let db = d.path.clone();
        apply(&db, SITE);
        let mut v = StoreView::new(&db);
        v.refresh();
        assert_eq!(v.topo.nodes.len(), 1);
        // Replaced by another file (a restore): reopened, its topology read.
        let other = d.dir.join("other.sqlite");
        apply(
            &other,
            &format!("{SITE}[node.b]\nhost = \"b.voip.test\"\nipv4 = [\"192.0.2.2\"]\n"),
        );
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
        }
        std::fs::rename(&other, &db).unwrap();
        refresh_later(&mut v);
        refresh_later(&mut v);
        assert_eq!(v.topo.nodes.len(), 2);
        // Garbage instead of a database: the last topology keeps answering.
        std::fs::remove_file(&db).unwrap();
        std::fs::write(&db, b"not a database at all, not even close").unwrap();
        refresh_later(&mut v);
        refresh_later(&mut v);
        assert_eq!(v.topo.nodes.len(), 2);
    }
}
