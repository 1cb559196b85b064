//! Metrics in the store: writing samples (ingest, collector), reading them
//! back for answers (node states, latency entries), and the client networks
//! the coprocesses have seen.

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
    pub seen_networks: i64,
}

/// Answers per node, added to by every coprocess (`record_seen`); created
/// with `IF NOT EXISTS` by `apply` and by the first coprocess that writes
/// (no schema version).
pub(crate) const ANSWER_COUNT_TABLE: &str = "CREATE TABLE IF NOT EXISTS answer_count(node_id INTEGER PRIMARY KEY, answers INTEGER NOT NULL);";

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
        let mut latency_written = false;
        let stale_before = now - policy.latency_max_age_s;
        let alpha = policy.latency_alpha;
        {
            let mut lat = tx.prepare_cached(
                "INSERT INTO latency(family, net, plen, node_id, avg_ms, dev_ms, samples, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, 1, ?6)
                 ON CONFLICT(family, net, plen, node_id) DO UPDATE SET
                   avg_ms = CASE WHEN updated < ?7 THEN excluded.avg_ms
                                 ELSE avg_ms + ?8 * (excluded.avg_ms - avg_ms) END,
                   dev_ms = CASE WHEN updated < ?7 THEN 0
                                 ELSE dev_ms + ?8 * (abs(excluded.avg_ms - avg_ms) - dev_ms) END,
                   samples = CASE WHEN updated < ?7 THEN 1 ELSE samples + 1 END,
                   updated = max(updated, excluded.updated)",
            )?;
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
                        latency_written = true;
                        for p in client.levels() {
                            lat.execute(params![
                                p.family().code(),
                                p.net_key(),
                                p.len,
                                node_id,
                                rtt_ms,
                                ts,
                                stale_before,
                                alpha
                            ])?;
                        }
                        for (net_id, prefixes) in &networks {
                            if prefixes.iter().any(|np| np.contains(client)) {
                                lat.execute(params![
                                    0,
                                    net_id,
                                    0,
                                    node_id,
                                    rtt_ms,
                                    ts,
                                    stale_before,
                                    alpha
                                ])?;
                            }
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
        if latency_written {
            // The published latency snapshot is now behind (store::snapshot).
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

    /// Latency coverage per node, and the number of seen networks.
    pub fn status_counts(&self, fresh_after: i64) -> Result<StatusCounts> {
        let mut out = StatusCounts::default();
        let mut stmt = self.conn.prepare(
            "SELECT node_id, sum(updated >= ?1 AND plen IN (24, 48)), count(*) FROM latency WHERE family != 0 GROUP BY node_id",
        )?;
        let rows = stmt.query_map([fresh_after], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        for r in rows {
            let (id, c) = r?;
            out.latency_entries.insert(id, c);
        }
        out.seen_networks = self
            .conn
            .query_row("SELECT count(*) FROM seen_network", [], |r| r.get(0))?;
        Ok(out)
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
}
