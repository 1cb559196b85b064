//! The last SIP probe of each node, as the collector wrote it with the
//! node's health sample: what it found, in words (`tls:…: TLS handshake
//! failed: certificate expired (…)`), and for a `tls:` probe when the
//! server's certificate expires. `status` shows them.
//!
//! One row per node, replaced by every newer collector health sample (one
//! that carries a reason); a sample from `ingest` leaves it alone. The table
//! is created with `IF NOT EXISTS` by `apply` and by the first writer (no
//! schema version); a reader of an older database sees no rows.

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::{Connection, params};

use super::Store;
use super::events::cut;

pub(crate) const PROBES_TABLE: &str = "CREATE TABLE IF NOT EXISTS probe(
    node_id INTEGER PRIMARY KEY,
    detail TEXT NOT NULL,
    cert_not_after INTEGER,
    updated INTEGER NOT NULL
);";

/// A node's last probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRow {
    pub detail: String,
    /// Unix seconds; `None` when the probe learnt no certificate.
    pub cert_not_after: Option<i64>,
    pub updated: i64,
}

/// Replaces the node's row inside the caller's transaction, unless a newer
/// one is stored.
pub(crate) fn record(
    conn: &Connection,
    node_id: i64,
    detail: &str,
    cert_not_after: Option<i64>,
    ts: i64,
) -> Result<()> {
    conn.execute_batch(PROBES_TABLE)?;
    conn.prepare_cached(
        "INSERT INTO probe(node_id, detail, cert_not_after, updated) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(node_id) DO UPDATE SET detail = excluded.detail,
           cert_not_after = excluded.cert_not_after, updated = excluded.updated
         WHERE excluded.updated >= probe.updated",
    )?
    .execute(params![
        node_id,
        cut(detail, super::events::MAX_DETAIL),
        cert_not_after,
        ts
    ])?;
    Ok(())
}

impl Store {
    /// The last probe of every node that has one, by node id.
    pub fn probes(&self) -> Result<HashMap<i64, ProbeRow>> {
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'probe'")?
            .exists([])?;
        if !exists {
            return Ok(HashMap::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT node_id, detail, cert_not_after, updated FROM probe")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                ProbeRow {
                    detail: r.get(1)?,
                    cert_not_after: r.get(2)?,
                    updated: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Health, Metric};
    use crate::store::testing::{ONE_NODE as SITE, TempDb};

    fn health(ts: i64, reason: Option<&str>, cert: Option<i64>) -> Metric {
        Metric::Health {
            node: "a".into(),
            state: Health::Up,
            ts,
            probe_rtt_ms: Some(1.0),
            reason: reason.map(Into::into),
            cert_not_after: cert,
        }
    }

    #[test]
    fn the_last_collector_probe_is_kept_per_node() {
        let db = TempDb::new("probes");
        let mut s = db.apply(SITE);
        let now = crate::metrics::now();
        assert_eq!(s.probes().unwrap(), HashMap::new());
        s.write_metrics(
            &[health(now - 5, Some("first"), Some(2_000_000_000))],
            "collector",
            None,
            now,
        )
        .unwrap();
        s.write_metrics(
            &[health(now, Some("tls: answered"), Some(2_100_000_000))],
            "collector",
            None,
            now,
        )
        .unwrap();
        let id = s.node_ids().unwrap()["a"];
        let want = ProbeRow {
            detail: "tls: answered".into(),
            cert_not_after: Some(2_100_000_000),
            updated: now,
        };
        assert_eq!(s.probes().unwrap()[&id], want);
        // An older sample, and a sample without a reason (ingest), change nothing.
        s.write_metrics(
            &[health(now - 1, Some("older"), None)],
            "collector",
            None,
            now,
        )
        .unwrap();
        s.write_metrics(&[health(now, None, None)], "ingest", None, now)
            .unwrap();
        assert_eq!(s.probes().unwrap()[&id], want);
        // A probe that learnt no certificate clears it.
        s.write_metrics(
            &[health(now + 1, Some("udp"), None)],
            "collector",
            None,
            now,
        )
        .unwrap();
        assert_eq!(s.probes().unwrap()[&id].cert_not_after, None);
        // A long detail is cut; an older database has no table and no rows.
        let long = "é".repeat(4000);
        s.write_metrics(
            &[health(now + 2, Some(&long), None)],
            "collector",
            None,
            now,
        )
        .unwrap();
        assert!(s.probes().unwrap()[&id].detail.len() <= crate::store::events::MAX_DETAIL);
        s.conn.execute("DROP TABLE probe", []).unwrap();
        assert_eq!(s.probes().unwrap(), HashMap::new());
    }
}
