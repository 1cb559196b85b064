//! `pdns-ha apply`: makes the stored topology equal to a site file, in one
//! transaction, and says what changed.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Result;
use rusqlite::{TransactionBehavior, params};

use super::Store;
use crate::site::Site;

/// One difference between the stored topology and a site file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Added { kind: String, name: String },
    Changed { kind: String, name: String },
    Removed { kind: String, name: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { kind, name } => write!(f, "added   {kind} {name}"),
            Change::Changed { kind, name } => write!(f, "changed {kind} {name}"),
            Change::Removed { kind, name } => write!(f, "removed {kind} {name}"),
        }
    }
}

/// The rows a site is stored as: (kind, name) -> definition (JSON).
fn rows_of(site: &Site) -> Result<BTreeMap<(String, String), String>> {
    let mut rows = BTreeMap::new();
    let mut put = |kind: &str, name: &str, def: String| {
        rows.insert((kind.to_string(), name.to_string()), def);
    };
    for z in &site.zones {
        put("zone", &z.name, serde_json::to_string(z)?);
    }
    for n in &site.nodes {
        put("node", &n.name, serde_json::to_string(n)?);
    }
    for s in &site.services {
        put("service", &s.name, serde_json::to_string(s)?);
    }
    for p in &site.pools {
        put("pool", &p.name, serde_json::to_string(p)?);
    }
    for r in &site.records {
        put("record", &r.key(), serde_json::to_string(r)?);
    }
    for n in &site.networks {
        put("network", &n.name, serde_json::to_string(n)?);
    }
    put("settings", "policy", serde_json::to_string(&site.policy)?);
    put(
        "settings",
        "collector",
        serde_json::to_string(&site.collector)?,
    );
    Ok(rows)
}

fn stored_rows(store: &Store) -> Result<BTreeMap<(String, String), String>> {
    let mut stmt = store.conn.prepare("SELECT kind, name, def FROM topology")?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn diff_rows(
    old: &BTreeMap<(String, String), String>,
    new: &BTreeMap<(String, String), String>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for ((kind, name), def) in new {
        let (kind, name) = (kind.clone(), name.clone());
        match old.get(&(kind.clone(), name.clone())) {
            None => out.push(Change::Added { kind, name }),
            Some(d) if d != def => out.push(Change::Changed { kind, name }),
            Some(_) => {}
        }
    }
    for (kind, name) in old.keys() {
        if !new.contains_key(&(kind.clone(), name.clone())) {
            out.push(Change::Removed {
                kind: kind.clone(),
                name: name.clone(),
            });
        }
    }
    out
}

/// What `apply` would change, without writing. `store` is None for a
/// database that does not exist yet.
pub fn diff_site(store: Option<&Store>, site: &Site) -> Result<Vec<Change>> {
    let old = match store {
        Some(s) => stored_rows(s)?,
        None => BTreeMap::new(),
    };
    Ok(diff_rows(&old, &rows_of(site)?))
}

/// Makes the stored topology equal to `site` in one transaction. Metrics of
/// removed nodes and networks are deleted with them. Returns the changes
/// (empty: nothing was written).
pub fn apply_site(store: &mut Store, site: &Site) -> Result<Vec<Change>> {
    let new = rows_of(site)?;
    let store_path = store.db_path();
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let old = {
        let mut stmt = tx.prepare("SELECT kind, name, def FROM topology")?;
        let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
        rows.collect::<Result<BTreeMap<(String, String), String>, _>>()?
    };
    let changes = diff_rows(&old, &new);
    let db = store_path.as_deref();
    if changes.is_empty() {
        // Nothing to change; still publish a missing, unreadable or lagging
        // latency snapshot (a database made before snapshots existed gets
        // its first).
        if let Some(db) = db
            && !super::snapshot::current(&tx, db)?
        {
            super::snapshot::publish_in(&tx, db, crate::metrics::now())?;
            tx.commit()?;
        }
        return Ok(changes);
    }
    for c in &changes {
        match c {
            Change::Added { kind, name } | Change::Changed { kind, name } => {
                let def = &new[&(kind.clone(), name.clone())];
                tx.execute(
                    "INSERT INTO topology(kind, name, def) VALUES (?1, ?2, ?3)
                     ON CONFLICT(kind, name) DO UPDATE SET def = excluded.def",
                    params![kind, name, def],
                )?;
            }
            Change::Removed { kind, name } => {
                tx.execute(
                    "DELETE FROM topology WHERE kind = ?1 AND name = ?2",
                    params![kind, name],
                )?;
            }
        }
    }
    // Metrics follow their node or named network.
    tx.execute_batch(
        "DELETE FROM latency WHERE family != 0 AND node_id NOT IN (SELECT id FROM topology WHERE kind = 'node');
         DELETE FROM latency WHERE family = 0 AND (net NOT IN (SELECT id FROM topology WHERE kind = 'network')
                                                 OR node_id NOT IN (SELECT id FROM topology WHERE kind = 'node'));
         DELETE FROM quality WHERE family != 0 AND node_id NOT IN (SELECT id FROM topology WHERE kind = 'node');
         DELETE FROM quality WHERE family = 0 AND (net NOT IN (SELECT id FROM topology WHERE kind = 'network')
                                                 OR node_id NOT IN (SELECT id FROM topology WHERE kind = 'node'));
         DELETE FROM load WHERE node_id NOT IN (SELECT id FROM topology WHERE kind = 'node');
         DELETE FROM health WHERE node_id NOT IN (SELECT id FROM topology WHERE kind = 'node');
         DELETE FROM drain WHERE node_id NOT IN (SELECT id FROM topology WHERE kind = 'node');
         DELETE FROM answer_count WHERE node_id NOT IN (SELECT id FROM topology WHERE kind = 'node');
         UPDATE meta SET value = value + 1 WHERE key = 'generation';",
    )?;
    let summary: Vec<String> = changes
        .iter()
        .map(|c| {
            c.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    super::events::record(
        &tx,
        super::EventKind::Apply,
        None,
        &format!("{} change(s): {}", changes.len(), summary.join(", ")),
        crate::metrics::now(),
    )?;
    // Node and network ids may be reused from now on: the latency snapshot
    // is rebuilt from this transaction's rows and published with it.
    if let Some(db) = db {
        super::snapshot::publish_in(&tx, db, crate::metrics::now())?;
    }
    tx.commit()?;
    Ok(changes)
}
