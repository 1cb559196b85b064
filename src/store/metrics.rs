//! Metrics in the store: writing samples (ingest, collector), reading them
//! back for answers (node states, latency and call quality entries), and the
//! client networks the coprocesses have seen. Latency and call quality are
//! folded the same way ([`MovingAverage`]) into every aggregate that holds
//! the client ([`aggregates_of`]).

use std::collections::HashMap;

use anyhow::{Result, bail};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::Store;
use crate::metrics::{Health, Metric};
use crate::net::{Family, Prefix};
use crate::site::PolicyConfig;

/// What a batch write did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteOutcome {
    pub stored: usize,
    /// Samples older than their `[policy]` max age: not stored, since they
    /// would not count (see `PolicyConfig::too_old`).
    pub too_old: usize,
    /// Health state changes: (node, new state).
    pub health_changes: Vec<(String, Health)>,
}

/// A call quality entry as stored: moving averages of the calls' receive
/// MOS (with its deviation), loss and jitter (NULL until a call reported
/// them), and the calls counted since the entry was last fresh. The
/// snapshot keeps the same fields, so a row is its entry.
pub type QualityRow = crate::snapshot::QualityEntry;

/// The columns of a [`QualityRow`] in the `quality` table, in the order
/// [`quality_row`] reads them (a macro, for `concat!`: the queries stay
/// `&'static str`, with no formatting on the query path).
macro_rules! quality_columns {
    () => {
        "node_id, mos, mos_dev, loss_pct, jitter_ms, calls, updated"
    };
}
pub(super) use quality_columns;

/// A [`QualityRow`] from `quality_columns!()` selected from column `at` on.
pub(super) fn quality_row(r: &rusqlite::Row, at: usize) -> rusqlite::Result<QualityRow> {
    Ok(QualityRow {
        node_id: r.get(at)?,
        mos: r.get(at + 1)?,
        mos_dev: r.get(at + 2)?,
        loss_pct: r.get(at + 3)?,
        jitter_ms: r.get(at + 4)?,
        calls: r.get(at + 5)?,
        updated: r.get(at + 6)?,
    })
}

/// A latency entry as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow {
    pub node_id: i64,
    pub avg_ms: f64,
    pub dev_ms: f64,
    pub samples: i64,
    pub updated: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoadRow {
    pub sessions: u32,
    pub max_sessions: u32,
    pub idle_cpu: Option<f64>,
    pub updated: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HealthRow {
    pub state: Health,
    pub since: i64,
    pub updated: i64,
    pub source: String,
    pub probe_rtt_ms: Option<f64>,
}

/// Everything the store knows about the nodes, by node id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeStateRows {
    pub health: HashMap<i64, HealthRow>,
    pub load: HashMap<i64, LoadRow>,
    pub drained: HashMap<i64, i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeenRow {
    pub prefix: Prefix,
    pub queries: i64,
    pub last_seen: i64,
}

/// Counts for `status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusCounts {
    /// node id -> (fresh fine-level entries, all entries)
    pub latency_entries: HashMap<i64, (i64, i64)>,
    /// node id -> (fresh fine-level entries, all entries) of call quality
    pub quality_entries: HashMap<i64, (i64, i64)>,
    pub seen_networks: i64,
}

/// Answers per node, added to by every coprocess (`record_seen`); created
/// with `IF NOT EXISTS` by `apply` and by the first coprocess that writes
/// (no schema version).
pub(crate) const ANSWER_COUNT_TABLE: &str = "CREATE TABLE IF NOT EXISTS answer_count(node_id INTEGER PRIMARY KEY, answers INTEGER NOT NULL);";

/// Call quality per aggregate and node (see [`QualityRow`]); created with
/// `IF NOT EXISTS` by `apply` and by the first writer of a quality sample
/// (no schema version: an older database gains it without a migration).
pub(crate) const QUALITY_TABLE: &str = "CREATE TABLE IF NOT EXISTS quality(
    family INTEGER NOT NULL,   -- 4, 6, or 0 for a named network (net = its id)
    net INTEGER NOT NULL,
    plen INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    mos REAL NOT NULL,
    mos_dev REAL NOT NULL,
    loss_pct REAL,
    jitter_ms REAL,
    calls INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY(family, net, plen, node_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS quality_node ON quality(node_id);";

/// Every aggregate a sample from `client` is folded into, as stored
/// (family, net, plen): each prefix level of the client (/24, /16, /8; /48,
/// /32), and (0, id, 0) for each named network with a prefix that holds it.
fn aggregates_of<'a>(
    client: &'a Prefix,
    networks: &'a [(i64, Vec<Prefix>)],
) -> impl Iterator<Item = (i64, i64, u8)> + 'a {
    client
        .levels()
        .map(|p| (p.family().code(), p.net_key(), p.len))
        .chain(
            networks
                .iter()
                .filter(|(_, prefixes)| prefixes.iter().any(|np| np.contains(client)))
                .map(|(id, _)| (0, *id, 0)),
        )
}

/// A table of moving averages keyed by (family, net, plen, node_id): one
/// main value with its mean absolute deviation and a count, and optional
/// values (NULL while unknown, kept when a sample lacks them). A sample
/// into an entry last updated before the freshness limit restarts it.
struct MovingAverage {
    table: &'static str,
    value: &'static str,
    dev: &'static str,
    count: &'static str,
    optional: &'static [&'static str],
}

impl MovingAverage {
    const LATENCY: MovingAverage = MovingAverage {
        table: "latency",
        value: "avg_ms",
        dev: "dev_ms",
        count: "samples",
        optional: &[],
    };
    const QUALITY: MovingAverage = MovingAverage {
        table: "quality",
        value: "mos",
        dev: "mos_dev",
        count: "calls",
        optional: &["loss_pct", "jitter_ms"],
    };

    /// The upsert. Parameters: ?1 family, ?2 net, ?3 plen, ?4 node id,
    /// ?5 updated, ?6 freshness limit, ?7 weight of the sample, ?8 the
    /// value, then the optional values.
    fn upsert(&self) -> String {
        let MovingAverage {
            table,
            value: v,
            dev,
            count,
            optional,
        } = self;
        let mut cols = format!("family, net, plen, node_id, updated, {v}, {dev}, {count}");
        let mut vals = "?1, ?2, ?3, ?4, ?5, ?8, 0, 1".to_string();
        let mut set = format!(
            "{v} = CASE WHEN updated < ?6 THEN excluded.{v} ELSE {v} + ?7 * (excluded.{v} - {v}) END,
             {dev} = CASE WHEN updated < ?6 THEN 0 ELSE {dev} + ?7 * (abs(excluded.{v} - {v}) - {dev}) END,
             {count} = CASE WHEN updated < ?6 THEN 1 ELSE {count} + 1 END,
             updated = max(updated, excluded.updated)"
        );
        for (i, o) in optional.iter().enumerate() {
            cols.push_str(&format!(", {o}"));
            vals.push_str(&format!(", ?{}", 9 + i));
            set.push_str(&format!(
                ",
             {o} = CASE WHEN updated < ?6 OR {o} IS NULL THEN excluded.{o}
                        WHEN excluded.{o} IS NULL THEN {o}
                        ELSE {o} + ?7 * (excluded.{o} - {o}) END"
            ));
        }
        format!(
            "INSERT INTO {table}({cols}) VALUES ({vals})
             ON CONFLICT(family, net, plen, node_id) DO UPDATE SET {set}"
        )
    }
}

impl Store {
    /// Stores a batch of samples in one transaction. `source` names the
    /// writer (`ingest`, `probe`, ...). Unknown nodes are an error for the
    /// whole batch: check them first with [`Store::node_ids`]. A heartbeat
    /// timestamp, when given, is recorded as the collector's. A sample older
    /// than its `[policy]` max age is skipped and counted in `too_old`.
    pub fn write_metrics(
        &mut self,
        batch: &[Metric],
        source: &str,
        heartbeat: Option<i64>,
        now: i64,
    ) -> Result<WriteOutcome> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (nodes, networks, policy) = {
            let mut nodes = HashMap::new();
            let mut networks: Vec<(i64, Vec<Prefix>)> = Vec::new();
            let mut policy = PolicyConfig::default();
            let mut stmt = tx.prepare_cached("SELECT id, kind, name, def FROM topology WHERE kind IN ('node', 'network', 'settings')")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let (id, kind, name): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                match kind.as_str() {
                    "node" => {
                        nodes.insert(name, id);
                    }
                    "network" => {
                        let n: crate::site::Network =
                            serde_json::from_str(&r.get::<_, String>(3)?)?;
                        networks.push((id, n.prefixes));
                    }
                    _ if name == "policy" => {
                        policy = serde_json::from_str(&r.get::<_, String>(3)?)?
                    }
                    _ => {}
                }
            }
            (nodes, networks, policy)
        };
        let mut out = WriteOutcome::default();
        // Latency or call quality written: the snapshot is then behind.
        let mut snapshot_data_written = false;
        let lat_fresh = now - policy.latency_max_age_s;
        let q_fresh = now - policy.quality_max_age_s;
        if batch.iter().any(|m| matches!(m, Metric::Quality { .. })) {
            tx.execute_batch(QUALITY_TABLE)?;
        }
        {
            let lat_sql = MovingAverage::LATENCY.upsert();
            let mut lat = tx.prepare_cached(&lat_sql)?;
            let q_sql = MovingAverage::QUALITY.upsert();
            let mut quality = None;
            let mut load = tx.prepare_cached(
                "INSERT INTO load(node_id, sessions, max_sessions, idle_cpu, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(node_id) DO UPDATE SET sessions = excluded.sessions,
                   max_sessions = excluded.max_sessions, idle_cpu = excluded.idle_cpu, updated = excluded.updated
                 WHERE excluded.updated >= load.updated",
            )?;
            let mut health_old =
                tx.prepare_cached("SELECT state, updated FROM health WHERE node_id = ?1")?;
            let mut health = tx.prepare_cached(
                "INSERT INTO health(node_id, state, since, updated, source, probe_rtt_ms) VALUES (?1, ?2, ?3, ?3, ?4, ?5)
                 ON CONFLICT(node_id) DO UPDATE SET
                   since = CASE WHEN state = excluded.state THEN since ELSE excluded.since END,
                   state = excluded.state, updated = excluded.updated, source = excluded.source,
                   probe_rtt_ms = coalesce(excluded.probe_rtt_ms, probe_rtt_ms)
                 WHERE excluded.updated >= health.updated",
            )?;
            for m in batch {
                let Some(&node_id) = nodes.get(m.node()) else {
                    bail!(
                        "unknown node \"{}\": it is not in the site (pdns-ha apply)",
                        m.node()
                    );
                };
                if policy.too_old(m, now).is_some() {
                    // Folded into an average it would count as fresh.
                    out.too_old += 1;
                    continue;
                }
                match m {
                    Metric::Latency {
                        client, rtt_ms, ts, ..
                    } => {
                        snapshot_data_written = true;
                        for (family, net, plen) in aggregates_of(client, &networks) {
                            lat.execute(params![
                                family,
                                net,
                                plen,
                                node_id,
                                ts,
                                lat_fresh,
                                policy.latency_alpha,
                                rtt_ms
                            ])?;
                        }
                    }
                    Metric::Quality {
                        client,
                        mos,
                        loss_pct,
                        jitter_ms,
                        ts,
                        ..
                    } => {
                        snapshot_data_written = true;
                        let q = match &mut quality {
                            Some(q) => q,
                            None => quality.insert(tx.prepare_cached(&q_sql)?),
                        };
                        for (family, net, plen) in aggregates_of(client, &networks) {
                            q.execute(params![
                                family,
                                net,
                                plen,
                                node_id,
                                ts,
                                q_fresh,
                                policy.quality_alpha,
                                mos,
                                loss_pct,
                                jitter_ms
                            ])?;
                        }
                    }
                    Metric::Load {
                        sessions,
                        max_sessions,
                        idle_cpu,
                        ts,
                        ..
                    } => {
                        load.execute(params![node_id, sessions, max_sessions, idle_cpu, ts])?;
                    }
                    Metric::Health {
                        node,
                        state,
                        ts,
                        probe_rtt_ms,
                        reason,
                        cert_not_after,
                    } => {
                        let old: Option<(String, i64)> = health_old
                            .query_row([node_id], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()?;
                        let newer = old.as_ref().is_none_or(|(_, u)| ts >= u);
                        let changed = old.as_ref().is_none_or(|(s, _)| s != state.as_str());
                        if newer && changed {
                            let from = old.as_ref().map_or("unknown", |(s, _)| s.as_str());
                            let why = match reason {
                                Some(r) => r.clone(),
                                None => format!("reported by {source}"),
                            };
                            super::events::record(
                                &tx,
                                super::EventKind::Health,
                                Some(node),
                                &format!("{from} -> {state}: {why}"),
                                *ts,
                            )?;
                        }
                        health.execute(params![
                            node_id,
                            state.as_str(),
                            ts,
                            source,
                            probe_rtt_ms
                        ])?;
                        if newer && changed {
                            out.health_changes.push((node.clone(), *state));
                        }
                        // The collector's samples say what the probe found.
                        if let Some(r) = reason {
                            super::probes::record(&tx, node_id, r, *cert_not_after, *ts)?;
                        }
                    }
                }
                out.stored += 1;
            }
        }
        if snapshot_data_written {
            // The published snapshot is now behind (store::snapshot).
            super::snapshot::bump_latency_version(&tx)?;
        }
        if !out.health_changes.is_empty() {
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'health_epoch'",
                [],
            )?;
        }
        if let Some(hb) = heartbeat {
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'collector_heartbeat'",
                [hb],
            )?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// The `[policy]` settings as applied (the defaults if none were).
    pub fn policy(&self) -> Result<PolicyConfig> {
        let def: Option<String> = self
            .conn
            .query_row(
                "SELECT def FROM topology WHERE kind = 'settings' AND name = 'policy'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match def {
            Some(d) => serde_json::from_str(&d)?,
            None => PolicyConfig::default(),
        })
    }

    /// node name -> id.
    pub fn node_ids(&self) -> Result<HashMap<String, i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, id FROM topology WHERE kind = 'node'")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Health, load and drains of every node.
    pub fn node_states(&self) -> Result<NodeStateRows> {
        let mut out = NodeStateRows::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT node_id, state, since, updated, source, probe_rtt_ms FROM health",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let state: String = r.get(1)?;
            let Ok(state) = state.parse::<Health>() else {
                continue;
            };
            out.health.insert(
                r.get(0)?,
                HealthRow {
                    state,
                    since: r.get(2)?,
                    updated: r.get(3)?,
                    source: r.get(4)?,
                    probe_rtt_ms: r.get(5)?,
                },
            );
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT node_id, sessions, max_sessions, idle_cpu, updated FROM load",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            out.load.insert(
                r.get(0)?,
                LoadRow {
                    sessions: r.get(1)?,
                    max_sessions: r.get(2)?,
                    idle_cpu: r.get(3)?,
                    updated: r.get(4)?,
                },
            );
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT node_id, since FROM drain")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for r in rows {
            let (id, since) = r?;
            out.drained.insert(id, since);
        }
        Ok(out)
    }

    /// The fresh latency entries of one aggregate (`family` 4/6 with a
    /// prefix, or 0 with a named network id in `net` and `plen` 0), calling
    /// `f` for each.
    pub fn latency_at(
        &self,
        family: i64,
        net: i64,
        plen: u8,
        fresh_after: i64,
        mut f: impl FnMut(LatencyRow),
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT node_id, avg_ms, dev_ms, samples, updated FROM latency
             WHERE family = ?1 AND net = ?2 AND plen = ?3 AND updated >= ?4",
        )?;
        let mut rows = stmt.query(params![family, net, plen, fresh_after])?;
        while let Some(r) = rows.next()? {
            f(LatencyRow {
                node_id: r.get(0)?,
                avg_ms: r.get(1)?,
                dev_ms: r.get(2)?,
                samples: r.get(3)?,
                updated: r.get(4)?,
            });
        }
        Ok(())
    }

    /// The fresh call quality entries of one aggregate (as in
    /// [`Store::latency_at`]) with at least `min_calls` calls, calling `f`
    /// for each. A database without the quality table has none.
    pub fn quality_at(
        &self,
        family: i64,
        net: i64,
        plen: u8,
        fresh_after: i64,
        min_calls: u32,
        mut f: impl FnMut(QualityRow),
    ) -> Result<()> {
        let mut stmt = match self.conn.prepare_cached(concat!(
            "SELECT ",
            quality_columns!(),
            " FROM quality
             WHERE family = ?1 AND net = ?2 AND plen = ?3 AND updated >= ?4 AND calls >= ?5"
        )) {
            Ok(s) => s,
            Err(e) if e.to_string().contains("no such table") => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut rows = stmt.query(params![family, net, plen, fresh_after, min_calls])?;
        while let Some(r) = rows.next()? {
            f(quality_row(r, 0)?);
        }
        Ok(())
    }

    /// Adds query counts for client networks, in one transaction.
    pub fn record_seen(
        &mut self,
        seen: &[(Prefix, u32)],
        first: &[(i64, u32)],
        now: i64,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !first.is_empty() {
            tx.execute_batch(ANSWER_COUNT_TABLE)?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO answer_count(node_id, answers) VALUES (?1, ?2)
                 ON CONFLICT(node_id) DO UPDATE SET answers = answers + excluded.answers",
            )?;
            for (node, n) in first {
                stmt.execute(params![node, n])?;
            }
        }
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO seen_network(family, net, plen, queries, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(family, net, plen) DO UPDATE SET queries = queries + excluded.queries,
                   last_seen = excluded.last_seen",
            )?;
            for (p, n) in seen {
                stmt.execute(params![p.family().code(), p.net_key(), p.len, n, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Answers that put each node first, by node id, summed over every
    /// coprocess since the node was added.
    pub fn answer_counts(&self) -> Result<HashMap<i64, u64>> {
        let exists = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'answer_count'",
            )?
            .exists([])?;
        if !exists {
            return Ok(HashMap::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT node_id, answers FROM answer_count")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, n) = row?;
            out.insert(id, n.max(0) as u64);
        }
        Ok(out)
    }

    /// The most queried client networks.
    pub fn top_seen(&self, limit: usize) -> Result<Vec<SeenRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT family, net, plen, queries, last_seen FROM seen_network ORDER BY queries DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            let fam: i64 = r.get(0)?;
            let family = if fam == 6 { Family::V6 } else { Family::V4 };
            Ok(SeenRow {
                prefix: Prefix::from_key(family, r.get(1)?, r.get(2)?),
                queries: r.get(3)?,
                last_seen: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Latency and call quality coverage per node (entries updated at or
    /// after `latency_fresh` and `quality_fresh`), and the number of seen
    /// networks.
    pub fn status_counts(&self, latency_fresh: i64, quality_fresh: i64) -> Result<StatusCounts> {
        let mut out = StatusCounts::default();
        self.entry_counts("latency", latency_fresh, &mut out.latency_entries)?;
        out.quality_entries = self.quality_counts(quality_fresh)?;
        out.seen_networks = self
            .conn
            .query_row("SELECT count(*) FROM seen_network", [], |r| r.get(0))?;
        Ok(out)
    }

    /// Per node id: the client networks with call quality updated since
    /// `fresh` at the fine level (/24, /48), and all its quality entries
    /// (none before the first quality sample made the table).
    pub fn quality_counts(&self, fresh: i64) -> Result<HashMap<i64, (i64, i64)>> {
        let mut out = HashMap::new();
        let has_quality = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quality'",
            )?
            .exists([])?;
        if has_quality {
            self.entry_counts("quality", fresh, &mut out)?;
        }
        Ok(out)
    }

    /// Fresh fine-level entries and all entries of `table`, per node id.
    fn entry_counts(
        &self,
        table: &str,
        fresh: i64,
        into: &mut HashMap<i64, (i64, i64)>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT node_id, sum(updated >= ?1 AND plen IN (24, 48)), count(*) FROM {table} WHERE family != 0 GROUP BY node_id"
        ))?;
        let rows = stmt.query_map([fresh], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        for r in rows {
            let (id, c) = r?;
            into.insert(id, c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{ONE_NODE, TempDb};

    #[test]
    fn samples_older_than_their_max_age_are_skipped_and_counted() {
        let db = TempDb::new("too-old");
        let mut s = db.apply(ONE_NODE);
        let now = 1_800_000_000;
        let lat = |ts| Metric::Latency {
            node: "a".into(),
            client: "198.51.100.7".parse().unwrap(),
            rtt_ms: 10.0,
            ts,
        };
        let health = |ts| Metric::Health {
            node: "a".into(),
            state: Health::Down,
            ts,
            probe_rtt_ms: None,
            reason: None,
            cert_not_after: None,
        };
        let o = s
            .write_metrics(
                &[lat(1000), health(now - 61), lat(now - 900)],
                "test",
                None,
                now,
            )
            .unwrap();
        assert_eq!((o.stored, o.too_old), (1, 2));
        assert!(o.health_changes.is_empty());
        let rows: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM latency WHERE updated = ?1",
                [now - 900],
                |r| r.get(0),
            )
            .unwrap();
        assert!(rows > 0, "the sample inside its max age is stored");
        let old: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM latency WHERE updated < ?1",
                [now - 900],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0);
        assert!(s.node_states().unwrap().health.is_empty());
    }

    #[test]
    fn call_quality_is_averaged_per_aggregate_with_its_calls_counted() {
        let db = TempDb::new("quality");
        let mut s = db
            .apply(&(ONE_NODE.to_string() + "[network.city]\nprefixes = [\"198.51.100.0/25\"]\n"));
        let now = 1_800_000_000;
        let q = |ip: &str, mos, loss, ts| Metric::Quality {
            node: "a".into(),
            client: ip.parse().unwrap(),
            mos,
            loss_pct: loss,
            jitter_ms: None,
            ts,
        };
        let batch = [
            // Too old to count: starts nothing.
            q("198.51.100.7", 1.0, None, now - 4000),
            q("198.51.100.7", 4.0, None, now - 10),
            q("198.51.100.9", 3.0, Some(10.0), now - 5),
            q("198.51.200.1", 2.0, Some(20.0), now - 5),
        ];
        let o = s.write_metrics(&batch, "test", None, now).unwrap();
        assert_eq!((o.stored, o.too_old), (3, 1));
        let rows = |family, net, plen, min_calls| {
            let mut v = Vec::new();
            s.quality_at(family, net, plen, now - 3600, min_calls, |r| v.push(r))
                .unwrap();
            v
        };
        let p24: Prefix = "198.51.100.0/24".parse().unwrap();
        let r = rows(4, p24.net_key(), 24, 1);
        assert_eq!(r.len(), 1);
        // 4.0, then 3.0 with a weight of 0.1 (quality_alpha).
        assert!((r[0].mos - 3.9).abs() < 1e-9, "{r:?}");
        assert!((r[0].mos_dev - 0.1).abs() < 1e-9, "{r:?}");
        assert_eq!(r[0].calls, 2);
        // Loss: unknown for the first call, so the second one's.
        assert_eq!(r[0].loss_pct, Some(10.0));
        assert_eq!(r[0].jitter_ms, None);
        assert_eq!(r[0].updated, now - 5);
        // The /16 holds all three calls; the named network the first two.
        let p16: Prefix = "198.51.0.0/16".parse().unwrap();
        assert_eq!(rows(4, p16.net_key(), 16, 1)[0].calls, 3);
        let (site, ids) = s.load_site().unwrap();
        assert_eq!(site.networks.len(), 1);
        assert_eq!(rows(0, ids.networks[0], 0, 1)[0].calls, 2);
        // Fewer calls than asked for: no entry.
        assert!(rows(4, p24.net_key(), 24, 3).is_empty());
        assert_eq!(rows(4, p16.net_key(), 16, 3).len(), 1);
        // A stale entry restarts from the next call.
        let o = s
            .write_metrics(
                &[q("198.51.100.7", 1.5, None, now + 4000)],
                "test",
                None,
                now + 4000,
            )
            .unwrap();
        assert_eq!(o.stored, 1);
        let mut v = Vec::new();
        s.quality_at(4, p24.net_key(), 24, now, 1, |r| v.push(r))
            .unwrap();
        assert_eq!((v[0].mos, v[0].calls, v[0].loss_pct), (1.5, 1, None));
        // Counted for status, and removed with its node.
        let c = s.status_counts(now, now).unwrap();
        assert_eq!(c.quality_entries.values().next(), Some(&(1, 4)));
        let mut s = db.apply(
            "[zone.\"voip.test\"]\nns = [\"ns1.voip.test\"]\nhostmaster = \"h.voip.test\"\n",
        );
        let n: i64 = s
            .conn
            .query_row("SELECT count(*) FROM quality", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        assert!(s.write_metrics(&[], "test", None, now).is_ok());
    }
}
