//! For unit tests: a database in its own temporary directory (removed on
//! drop), made by `apply` from a site text.

use std::path::PathBuf;

use super::Store;

/// A small site with one zone (`voip.test`) and one node (`a`).
pub const ONE_NODE: &str = r#"
[zone."voip.test"]
ns = ["ns1.voip.test"]
hostmaster = "hostmaster.voip.test"
[node.a]
host = "a.voip.test"
ipv4 = ["192.0.2.1"]
"#;

pub struct TempDb {
    pub dir: PathBuf,
    /// The database file.
    pub path: PathBuf,
}

impl TempDb {
    /// An empty directory for the test `tag`; no database yet.
    pub fn new(tag: &str) -> TempDb {
        let dir = std::env::temp_dir().join(format!("pdns-ha-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDb {
            path: dir.join("db.sqlite"),
            dir,
        }
    }

    /// Applies `site` to the database at `path` (created if needed).
    pub fn apply_at(path: &std::path::Path, site: &str) -> Store {
        let mut s = Store::open_or_create(path).expect("create the database");
        let site = crate::site::parse("site.toml", site).expect("a valid site");
        super::apply_site(&mut s, &site).expect("apply");
        s
    }

    /// Applies `site` to this database.
    pub fn apply(&self, site: &str) -> Store {
        TempDb::apply_at(&self.path, site)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
