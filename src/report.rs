//! Reports for people and monitoring: `status` (text, JSON, Prometheus text
//! exposition) and `explain` (the answer for one client, node by node).
//! Shared by the CLI and the pipe's `CMD` verb.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::answer::{self, Engine};
use crate::cache::CacheStats;
use crate::collector::tls::cert_expiring;
use crate::metrics;
use crate::net::Prefix;
use crate::policy;
use crate::proto;
use crate::store::{Event, EventKind, Store};
use crate::topology::Target;
use crate::topology::{Entry, Topology};

#[derive(Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub host: String,
    /// up, down, overloaded, or unknown (none, or older than health_max_age_s).
    pub health: String,
    pub health_source: Option<String>,
    pub health_since: Option<i64>,
    pub health_age_s: Option<i64>,
    pub probe_rtt_ms: Option<f64>,
    /// What the collector's last SIP probe of the node found, in words
    /// (why it failed: `TLS handshake failed: unknown CA …`).
    pub probe_detail: Option<String>,
    /// A `tls:` probe: when the server's certificate expires (Unix seconds),
    /// and in how many whole days (negative once expired).
    pub probe_cert_not_after: Option<i64>,
    pub probe_cert_days_left: Option<i64>,
    /// The certificate expires within `CERT_WARN_DAYS` (14) days, or has.
    pub probe_cert_expiring: bool,
    pub drained: bool,
    pub sessions: Option<u32>,
    pub max_sessions: Option<u32>,
    pub idle_cpu: Option<f64>,
    pub load_age_s: Option<i64>,
    pub free_capacity: Option<f64>,
    /// Fresh latency entries at the fine level (/24, /48).
    pub latency_networks_fresh: i64,
    pub latency_entries: i64,
    /// Client networks with fresh call quality at the fine level (/24, /48).
    pub quality_networks_fresh: i64,
    pub quality_entries: i64,
    /// Answers of services and pools that put this node first, summed over
    /// every coprocess (written every 5 s).
    pub answers_first: u64,
}

#[derive(Serialize)]
pub struct SeenNetwork {
    pub prefix: String,
    pub queries: i64,
    pub last_seen_age_s: i64,
}

#[derive(Serialize)]
pub struct Status {
    pub generation: i64,
    pub now: i64,
    pub collector_heartbeat_age_s: Option<i64>,
    pub nodes: Vec<NodeStatus>,
    pub seen_networks: i64,
    pub top_seen_networks: Vec<SeenNetwork>,
    pub memcached: Option<CacheStatsReport>,
    pub latency_snapshot: SnapshotReport,
    /// The last few state changes (`pdns-ha log` has them all), oldest first.
    pub recent_events: Vec<Event>,
    /// State changes ever recorded, by kind.
    pub events_total: Vec<EventCount>,
}

#[derive(Serialize)]
pub struct EventCount {
    pub kind: EventKind,
    pub count: u64,
}

/// How many state changes `status` shows.
pub const RECENT_EVENTS: usize = 5;

/// The published snapshot (latency and call quality), as the coprocesses
/// find it.
#[derive(Serialize)]
pub struct SnapshotReport {
    /// False: none, or unreadable; coprocesses read latency and call
    /// quality through SQLite.
    pub usable: bool,
    pub age_s: Option<i64>,
    /// Latency and call quality writes not in it yet (published at most
    /// every few seconds).
    pub writes_behind: i64,
    pub build_ms: i64,
    /// Latency entries.
    pub entries: u64,
    pub quality_entries: u64,
    pub aggregates: u64,
    pub bytes: u64,
    /// Why it is not usable.
    pub problem: Option<String>,
}

#[derive(Serialize)]
pub struct CacheStatsReport {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub rejected: u64,
    pub backing_off: bool,
}

impl From<CacheStats> for CacheStatsReport {
    fn from(s: CacheStats) -> Self {
        CacheStatsReport {
            hits: s.hits,
            misses: s.misses,
            errors: s.errors,
            rejected: s.rejected,
            backing_off: s.backing_off,
        }
    }
}

/// The status as `pdns-ha status` and the collector's `/status.json` and
/// `/metrics` give it: the engine's view of the database (topology, node
/// states) and the memcached counters every coprocess wrote.
pub fn status_of(store: &Store, engine: &mut Engine) -> Result<Status> {
    engine.refresh();
    let shared = crate::cache::memcached::stats_from_store(store)?;
    status(store, engine.topo(), shared)
}

/// Gathers the status of every node.
pub fn status(store: &Store, topo: &Topology, shared: Option<CacheStats>) -> Result<Status> {
    let now = metrics::now();
    let states = store.node_states()?;
    let views = answer::node_views(topo, &states, now);
    let counts = store.status_counts(
        now - topo.policy.latency_max_age_s,
        now - topo.policy.quality_max_age_s,
    )?;
    let hb = store.meta("collector_heartbeat")?;
    let answers = store.answer_counts()?;
    let probes = store.probes()?;
    let latency_snapshot = snapshot_report(store, now)?;
    let mut nodes = Vec::new();
    for (i, n) in topo.nodes.iter().enumerate() {
        let h = states.health.get(&n.id);
        let l = states.load.get(&n.id);
        let v = &views[i];
        let (fresh, all) = counts.latency_entries.get(&n.id).copied().unwrap_or((0, 0));
        // As old as a health that still counts: a probe removed from the
        // site, or a stopped collector, leaves no warning behind.
        let p = probes
            .get(&n.id)
            .filter(|p| now - p.updated <= topo.policy.health_max_age_s);
        let cert = p.and_then(|p| p.cert_not_after);
        let days_left = cert.map(|at| (at - now).div_euclid(86_400));
        let (q_fresh, q_all) = counts.quality_entries.get(&n.id).copied().unwrap_or((0, 0));
        nodes.push(NodeStatus {
            name: n.def.name.clone(),
            host: n.def.host.clone(),
            health: v.health.map_or("unknown".into(), |h| h.to_string()),
            health_source: h.map(|h| h.source.clone()),
            health_since: h.map(|h| h.since),
            health_age_s: h.map(|h| now - h.updated),
            probe_rtt_ms: h.and_then(|h| h.probe_rtt_ms),
            // The probe's reason explains the health only when the collector
            // set it (a state reported by `ingest` has its own source).
            probe_detail: p
                .filter(|_| h.is_some_and(|h| h.source == "collector"))
                .map(|p| p.detail.clone()),
            probe_cert_not_after: cert,
            probe_cert_days_left: days_left,
            probe_cert_expiring: cert.is_some_and(|at| cert_expiring(at, now)),
            drained: v.drained,
            sessions: l.map(|l| l.sessions),
            max_sessions: n.def.max_sessions.or(l.map(|l| l.max_sessions)),
            idle_cpu: l.and_then(|l| l.idle_cpu),
            load_age_s: l.map(|l| now - l.updated),
            free_capacity: policy::free_capacity(v),
            latency_networks_fresh: fresh,
            latency_entries: all,
            quality_networks_fresh: q_fresh,
            quality_entries: q_all,
            answers_first: answers.get(&n.id).copied().unwrap_or(0),
        });
    }
    let top = store
        .top_seen(10)?
        .into_iter()
        .map(|s| SeenNetwork {
            prefix: s.prefix.to_string(),
            queries: s.queries,
            last_seen_age_s: now - s.last_seen,
        })
        .collect();
    Ok(Status {
        generation: topo.generation,
        now,
        collector_heartbeat_age_s: (hb > 0).then(|| now - hb),
        nodes,
        seen_networks: counts.seen_networks,
        top_seen_networks: top,
        memcached: shared.map(Into::into),
        latency_snapshot,
        recent_events: store.events(None, None, RECENT_EVENTS)?,
        events_total: store
            .event_counts()?
            .into_iter()
            .map(|(kind, count)| EventCount { kind, count })
            .collect(),
    })
}

fn snapshot_report(store: &Store, now: i64) -> Result<SnapshotReport> {
    let c = store.counters()?;
    let mut r = SnapshotReport {
        usable: false,
        age_s: (c.snapshot_token != 0).then(|| now - c.snapshot_at),
        writes_behind: (c.latency_version - c.snapshot_version).max(0),
        build_ms: c.snapshot_ms,
        entries: 0,
        quality_entries: 0,
        aggregates: 0,
        bytes: 0,
        problem: None,
    };
    let Some(db) = store.db_path() else {
        return Ok(r);
    };
    if c.snapshot_token == 0 {
        r.problem = Some("none published yet: run `pdns-ha apply` or `ingest`".into());
        return Ok(r);
    }
    match crate::snapshot::Mapped::open(&crate::store::snapshot::path_of(&db), c.snapshot_token) {
        Ok(m) => {
            let h = m.header();
            r.usable = true;
            r.entries = h.entries;
            r.quality_entries = h.quality_entries;
            r.aggregates = h.keys;
            r.bytes = h.file_len;
        }
        Err(e) => r.problem = Some(format!("{e:#}: run `pdns-ha apply` to publish it again")),
    }
    Ok(r)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

impl Status {
    pub fn text(&self) -> Vec<String> {
        let mut out = vec![format!(
            "generation {}; collector {}",
            self.generation,
            self.collector_heartbeat_age_s
                .map_or("never seen".into(), |a| format!("last seen {a} s ago"))
        )];
        out.push(format!(
            "{:<12} {:<11} {:>8} {:>7} {:>17} {:>9} {:>10} {:>16} {:>16}",
            "NODE",
            "HEALTH",
            "PROBE",
            "DRAIN",
            "SESSIONS",
            "IDLE CPU",
            "FREE",
            "LATENCY NETS",
            "QUALITY NETS"
        ));
        for n in &self.nodes {
            out.push(format!(
                "{:<12} {:<11} {:>8} {:>7} {:>17} {:>9} {:>10} {:>16} {:>16}",
                n.name,
                n.health,
                n.probe_rtt_ms.map_or("-".into(), |r| format!("{r:.1}ms")),
                if n.drained { "drained" } else { "-" },
                format!("{}/{}", opt(n.sessions), opt(n.max_sessions)),
                n.idle_cpu.map_or("-".into(), |c| format!("{c:.1}%")),
                n.free_capacity.map_or("-".into(), |f| format!("{f:.0}")),
                format!("{}/{}", n.latency_networks_fresh, n.latency_entries),
                format!("{}/{}", n.quality_networks_fresh, n.quality_entries),
            ));
        }
        // Why a probe fails, and certificates about to expire.
        for n in &self.nodes {
            if n.health == "down"
                && let Some(d) = &n.probe_detail
            {
                out.push(format!("  {}: {}", n.name, crate::text::escape_controls(d)));
            }
            if n.probe_cert_expiring
                && let (Some(at), Some(days)) = (n.probe_cert_not_after, n.probe_cert_days_left)
            {
                out.push(format!(
                    "  {}: WARNING: the TLS certificate {} {} ({})",
                    n.name,
                    if days < 0 { "expired" } else { "expires" },
                    crate::clock::utc(at),
                    if days < 0 {
                        format!("{} days ago", -days)
                    } else {
                        format!("in {days} days")
                    }
                ));
            }
        }
        out.push(format!("seen client networks: {}", self.seen_networks));
        for s in &self.top_seen_networks {
            out.push(format!(
                "  {:<24} {:>10} queries, last {} s ago",
                s.prefix, s.queries, s.last_seen_age_s
            ));
        }
        let l = &self.latency_snapshot;
        out.push(match (&l.problem, l.usable) {
            (Some(p), _) => format!(
                "latency snapshot: not used ({p}); latency and call quality read through SQLite"
            ),
            (None, true) => format!(
                "latency snapshot: {} entries, {} call quality entries, for {} aggregates, {} KiB, built in {} ms, {} s ago, {} write(s) behind",
                l.entries,
                l.quality_entries,
                l.aggregates,
                l.bytes / 1024,
                l.build_ms,
                opt(l.age_s),
                l.writes_behind
            ),
            (None, false) => "latency snapshot: none (in-memory database)".into(),
        });
        if let Some(m) = &self.memcached {
            out.push(format!(
                "memcached: {} hits, {} misses, {} errors, {} rejected{}",
                m.hits,
                m.misses,
                m.errors,
                m.rejected,
                if m.backing_off { ", backing off" } else { "" }
            ));
        }
        if !self.recent_events.is_empty() {
            out.push("recent changes (pdns-ha log shows more):".into());
            out.extend(
                self.recent_events
                    .iter()
                    .map(|e| format!("  {}", event_line(e))),
            );
        }
        out
    }

    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
            prom_family(&mut s, name, help, kind);
            for (labels, v) in rows {
                prom_sample(&mut s, name, &labels, v);
            }
        };
        let node = |n: &NodeStatus| format!("node=\"{}\"", prom_label(&n.name));
        metric(
            "generation",
            "Topology generation.",
            "gauge",
            vec![(String::new(), self.generation as f64)],
        );
        if let Some(a) = self.collector_heartbeat_age_s {
            metric(
                "collector_heartbeat_age_seconds",
                "Seconds since the collector last wrote.",
                "gauge",
                vec![(String::new(), a as f64)],
            );
        }
        let l = &self.latency_snapshot;
        metric(
            "latency_snapshot_usable",
            "1 if coprocesses read latency and call quality from the published snapshot, 0 if through SQLite.",
            "gauge",
            vec![(String::new(), f64::from(u8::from(l.usable)))],
        );
        if let Some(a) = l.age_s {
            metric(
                "latency_snapshot_age_seconds",
                "Seconds since the latency snapshot was published.",
                "gauge",
                vec![(String::new(), a as f64)],
            );
        }
        metric(
            "latency_snapshot_writes_behind",
            "Latency and call quality writes not yet in the published snapshot.",
            "gauge",
            vec![(String::new(), l.writes_behind as f64)],
        );
        metric(
            "node_health",
            "1 for the node's current health state.",
            "gauge",
            self.nodes
                .iter()
                .flat_map(|n| {
                    ["up", "down", "overloaded", "unknown"]
                        .into_iter()
                        .map(move |st| {
                            (
                                format!("node=\"{}\",state=\"{st}\"", prom_label(&n.name)),
                                f64::from(u8::from(n.health == st)),
                            )
                        })
                })
                .collect(),
        );
        metric(
            "node_drained",
            "1 if the operator drained the node.",
            "gauge",
            self.nodes
                .iter()
                .map(|n| (node(n), f64::from(u8::from(n.drained))))
                .collect(),
        );
        let opt_rows = |f: &dyn Fn(&NodeStatus) -> Option<f64>| -> Vec<(String, f64)> {
            self.nodes
                .iter()
                .filter_map(|n| f(n).map(|v| (node(n), v)))
                .collect()
        };
        metric(
            "node_probe_rtt_milliseconds",
            "SIP OPTIONS round trip.",
            "gauge",
            opt_rows(&|n| n.probe_rtt_ms),
        );
        metric(
            "node_probe_cert_expiry_seconds",
            "When the TLS certificate of the node's tls: probe expires (Unix time of its notAfter).",
            "gauge",
            opt_rows(&|n| n.probe_cert_not_after.map(|t| t as f64)),
        );
        metric(
            "node_sessions",
            "Current sessions.",
            "gauge",
            opt_rows(&|n| n.sessions.map(f64::from)),
        );
        metric(
            "node_max_sessions",
            "Session limit.",
            "gauge",
            opt_rows(&|n| n.max_sessions.map(f64::from)),
        );
        metric(
            "node_idle_cpu_percent",
            "Idle CPU.",
            "gauge",
            opt_rows(&|n| n.idle_cpu),
        );
        metric(
            "node_free_capacity",
            "Free capacity used by the load policy.",
            "gauge",
            opt_rows(&|n| n.free_capacity),
        );
        metric(
            "node_load_age_seconds",
            "Age of the load figures.",
            "gauge",
            opt_rows(&|n| n.load_age_s.map(|a| a as f64)),
        );
        metric(
            "node_health_age_seconds",
            "Age of the health state.",
            "gauge",
            opt_rows(&|n| n.health_age_s.map(|a| a as f64)),
        );
        metric(
            "node_latency_networks",
            "Client networks with fresh latency at the fine level.",
            "gauge",
            opt_rows(&|n| Some(n.latency_networks_fresh as f64)),
        );
        metric(
            "node_quality_networks",
            "Client networks with fresh call quality (MOS) at the fine level.",
            "gauge",
            opt_rows(&|n| Some(n.quality_networks_fresh as f64)),
        );
        metric(
            "answers_total",
            "Answers of services and pools that put the node first (all coprocesses; written every 5 s).",
            "counter",
            self.nodes
                .iter()
                .map(|n| (node(n), n.answers_first as f64))
                .collect(),
        );
        metric(
            "seen_networks",
            "Client networks seen by the coprocesses.",
            "gauge",
            vec![(String::new(), self.seen_networks as f64)],
        );
        if let Some(m) = &self.memcached {
            metric(
                "memcached_hits_total",
                "Decisions read from memcached.",
                "counter",
                vec![(String::new(), m.hits as f64)],
            );
            metric(
                "memcached_misses_total",
                "Decisions not found in memcached.",
                "counter",
                vec![(String::new(), m.misses as f64)],
            );
            metric(
                "memcached_errors_total",
                "memcached errors and timeouts.",
                "counter",
                vec![(String::new(), m.errors as f64)],
            );
            metric(
                "memcached_rejected_total",
                "Values from memcached refused as invalid.",
                "counter",
                vec![(String::new(), m.rejected as f64)],
            );
            metric(
                "memcached_backing_off",
                "1 while memcached is not asked after an error.",
                "gauge",
                vec![(String::new(), f64::from(u8::from(m.backing_off)))],
            );
        }
        metric(
            "events_total",
            "State changes recorded in the log (pdns-ha log), by kind.",
            "counter",
            self.events_total
                .iter()
                .map(|e| (format!("kind=\"{}\"", e.kind), e.count as f64))
                .collect(),
        );
        s
    }
}

/// One event as `status` and `pdns-ha log` print it: time (UTC), kind,
/// node, detail; control characters escaped.
pub fn event_line(e: &Event) -> String {
    format!(
        "{}  {:<15} {:<12} {}",
        crate::clock::utc(e.at),
        e.kind.as_str(),
        e.node
            .as_deref()
            .map_or("-".into(), crate::text::escape_controls),
        crate::text::escape_controls(&e.detail)
    )
}

/// A label value for the Prometheus text exposition (version 0.0.4): `\`,
/// `"` and newline escaped.
pub fn prom_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The HELP and TYPE lines of metric `pdns_ha_NAME`.
pub fn prom_family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(
        out,
        "# HELP pdns_ha_{name} {help}\n# TYPE pdns_ha_{name} {kind}"
    );
}

/// One sample of `pdns_ha_NAME`; `labels` in `a="b",c="d"` form (escaped
/// with [`prom_label`]), or empty.
pub fn prom_sample(out: &mut String, name: &str, labels: &str, v: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "pdns_ha_{name} {v}");
    } else {
        let _ = writeln!(out, "pdns_ha_{name}{{{labels}}} {v}");
    }
}

#[derive(Serialize)]
pub struct NodeExplain {
    pub node: String,
    pub health: String,
    pub drained: bool,
    pub latency_ms: Option<f64>,
    pub latency_entry: Option<String>,
    pub latency_age_s: Option<i64>,
    /// Quality policy: the call quality entry used (moving averages).
    pub mos: Option<f64>,
    pub mos_dev: Option<f64>,
    pub loss_pct: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub calls: Option<i64>,
    pub quality_entry: Option<String>,
    pub quality_age_s: Option<i64>,
    pub free_capacity: Option<f64>,
    pub sessions: Option<u32>,
    pub tier: Option<u16>,
    pub weight: Option<u16>,
    pub reason: String,
}

#[derive(Serialize)]
pub struct DynamicExplain {
    pub name: String,
    pub kind: &'static str,
    pub policy: &'static str,
    pub scope: u8,
    pub failed_open: bool,
    pub nodes: Vec<NodeExplain>,
}

#[derive(Serialize)]
pub struct Explain {
    pub qname: String,
    pub qtype: String,
    pub client: String,
    pub records: Vec<answer::Record>,
    pub dynamic: Vec<DynamicExplain>,
    /// Where latency entries were read from: `snapshot` or `sqlite`.
    pub latency_from: &'static str,
}

/// The records the coprocess would send for this question and client, and
/// for each dynamic name, every node's place and why. Uses no cache.
pub fn explain(engine: &mut Engine, qname: &str, qtype: &str, client: &Prefix) -> Explain {
    // Asked as PowerDNS asks: without the final dot, in the letter case given.
    let qname = match qname.strip_suffix('.') {
        Some(n) if !n.is_empty() => n,
        _ => qname,
    };
    let (use_cache, record_seen) = (engine.use_cache, engine.record_seen);
    engine.use_cache = false;
    engine.record_seen = false;
    engine.refresh();
    let qtype_uc = qtype.to_ascii_uppercase();
    let q = proto::Query {
        qname,
        qclass: "IN",
        qtype: &qtype_uc,
        id: -1,
        remote: "",
        local: None,
        client: *client,
    };
    let records = engine.records(&q);
    let topo = std::rc::Rc::clone(engine.topo());
    let mut dynamic = Vec::new();
    let lower = qname.to_ascii_lowercase();
    for e in topo.names.get(&lower).into_iter().flatten() {
        let (target, name, kind, pol) = match *e {
            Entry::Service(s) => (
                Target::Service(s),
                &topo.services[s].name,
                "service",
                topo.services[s].policy,
            ),
            Entry::Pool(p) => (
                Target::Pool(p),
                &topo.pools[p].name,
                "pool",
                topo.pools[p].policy,
            ),
            _ => continue,
        };
        let fine_scope = client.family().fine().min(client.len);
        let d = engine.compute(&topo, target, &client.truncate(fine_scope), fine_scope);
        let candidates = match target {
            Target::Service(s) => &topo.services[s].candidates,
            Target::Pool(p) => &topo.pools[p].candidates,
        };
        let mut nodes = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            let v = &d.views[c.node];
            let ranked = d.decision.ranked.iter().find(|r| r.node == c.node);
            let left = d.decision.left_out.iter().find(|(n, _)| *n == c.node);
            let lat = d.latency[i];
            let q = d.quality[i];
            nodes.push(NodeExplain {
                node: topo.nodes[c.node].def.name.clone(),
                health: v.health.map_or("unknown".into(), |h| h.to_string()),
                drained: v.drained,
                latency_ms: lat.map(|l| l.latency.ms),
                latency_entry: lat.map(|l| l.label.describe(&topo)),
                latency_age_s: lat.map(|l| l.age_s),
                mos: q.map(|q| q.quality.mos),
                mos_dev: q.map(|q| q.mos_dev),
                loss_pct: q.and_then(|q| q.loss_pct),
                jitter_ms: q.and_then(|q| q.jitter_ms),
                calls: q.map(|q| q.calls),
                quality_entry: q.map(|q| q.label.describe(&topo)),
                quality_age_s: q.map(|q| q.age_s),
                free_capacity: policy::free_capacity(v),
                sessions: v.load.map(|l| l.sessions),
                tier: ranked.map(|r| r.tier),
                weight: ranked.map(|r| r.weight),
                reason: ranked
                    .map(|r| r.reason)
                    .or(left.map(|l| l.1))
                    .map_or("-".into(), |r| r.describe()),
            });
        }
        // Answer order first, then the nodes left out.
        let pos = |n: &NodeExplain| (n.tier.is_none(), n.tier, std::cmp::Reverse(n.weight));
        nodes.sort_by_key(|n| pos(n));
        dynamic.push(DynamicExplain {
            name: name.clone(),
            kind,
            policy: pol.as_str(),
            scope: d.decision.scope,
            failed_open: d.decision.failed_open,
            nodes,
        });
    }
    engine.use_cache = use_cache;
    engine.record_seen = record_seen;
    Explain {
        qname: qname.to_string(),
        qtype: qtype_uc,
        client: client.to_string(),
        records,
        dynamic,
        latency_from: if engine.snapshot_header().is_some() {
            "snapshot"
        } else {
            "sqlite"
        },
    }
}

/// Answers `CMD` lines from the pipe (`pdnsutil backend-cmd pipe TEXT`,
/// ABI 5): `status`, `explain QNAME [QTYPE] CLIENT`, `help`.
pub fn command(engine: &mut Engine, text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["status"] => match engine.store() {
            // Every coprocess's memcached counters (pdnsutil runs its own).
            Some(store) => crate::cache::memcached::stats_from_store(store)
                .map(|s| s.or_else(|| engine.shared_stats()))
                .and_then(|shared| status(store, engine.topo(), shared))
                .map(|s| s.text())
                .unwrap_or_else(|e| vec![format!("error: {e:#}")]),
            None => vec!["error: the database is not open (see the PowerDNS log)".into()],
        },
        ["explain", qname, rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
            let (qtype, client) = if rest.len() == 2 {
                (rest[0], rest[1])
            } else {
                ("ANY", rest[0])
            };
            match client.parse() {
                Ok(client) => explain(engine, qname, qtype, &client).text(),
                Err(e) => vec![format!("error: client: {e}")],
            }
        }
        _ => vec![
            "pdns-ha commands:".into(),
            "  status                          nodes, health, load, latency and call quality coverage".into(),
            "  explain QNAME [QTYPE] CLIENT    the answer for CLIENT (IP or IP/LEN) and why".into(),
            "  help                            this text".into(),
        ],
    }
}

impl Explain {
    pub fn text(&self) -> Vec<String> {
        let mut out = vec![format!(
            "; {} {} for client {}",
            self.qname, self.qtype, self.client
        )];
        if self.records.is_empty() {
            out.push("; no records (NXDOMAIN or NODATA)".into());
        }
        for r in &self.records {
            out.push(format!(
                "{}\t{}\tIN\t{}\t{}\t; scope /{}{}",
                r.name,
                r.ttl,
                r.rtype,
                r.content,
                r.scope,
                if r.auth {
                    ""
                } else {
                    "; not authoritative (auth=0: at or below a delegation, not signed)"
                }
            ));
        }
        for d in &self.dynamic {
            out.push(String::new());
            out.push(format!(
                "; {} {} policy={} scope=/{}{}{}",
                d.kind,
                d.name,
                d.policy,
                d.scope,
                if d.failed_open { " FAIL-OPEN" } else { "" },
                match (d.policy, self.latency_from) {
                    ("latency", "snapshot") => " (latency from the latency snapshot)",
                    ("quality", "snapshot") =>
                        " (latency and call quality from the latency snapshot)",
                    ("latency", _) =>
                        " (latency through SQLite: no usable latency snapshot, see status)",
                    ("quality", _) =>
                        " (latency and call quality through SQLite: no usable latency snapshot, see status)",
                    _ => "",
                }
            ));
            let quality = d.policy == "quality";
            out.push(format!(
                "{:<12} {:<11} {:>5} {:>6} {:>9} {:<24} {:>7} {:>9}  {}",
                "NODE",
                "HEALTH",
                "TIER",
                "WEIGHT",
                "LATENCY",
                "ENTRY (AGE)",
                "FREE",
                "SESSIONS",
                if quality {
                    format!(
                        "{:>5} {:>6} {:>6} {:<24}  REASON",
                        "MOS", "LOSS", "CALLS", "QUALITY ENTRY (AGE)"
                    )
                } else {
                    "REASON".into()
                }
            ));
            for n in &d.nodes {
                out.push(format!(
                    "{:<12} {:<11} {:>5} {:>6} {:>9} {:<24} {:>7} {:>9}  {}",
                    n.node,
                    if n.drained {
                        "drained".to_string()
                    } else {
                        n.health.clone()
                    },
                    opt(n.tier),
                    opt(n.weight),
                    n.latency_ms.map_or("-".into(), |m| format!("{m:.1}ms")),
                    match (&n.latency_entry, n.latency_age_s) {
                        (Some(e), Some(a)) => format!("{e} ({a}s)"),
                        _ => "-".into(),
                    },
                    n.free_capacity.map_or("-".into(), |f| format!("{f:.0}")),
                    opt(n.sessions),
                    if quality {
                        format!(
                            "{:>5} {:>6} {:>6} {:<24}  {}",
                            n.mos.map_or("-".into(), |m| format!("{m:.2}")),
                            n.loss_pct.map_or("-".into(), |l| format!("{l:.1}%")),
                            opt(n.calls),
                            match (&n.quality_entry, n.quality_age_s) {
                                (Some(e), Some(a)) => format!("{e} ({a}s)"),
                                _ => "-".into(),
                            },
                            n.reason
                        )
                    } else {
                        n.reason.clone()
                    }
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{ONE_NODE, TempDb};

    fn status_now(store: &Store) -> Status {
        let (site, ids) = store.load_site().unwrap();
        status(store, &Topology::build(site, &ids, 1), None).unwrap()
    }

    fn node_status(store: &Store) -> NodeStatus {
        status_now(store).nodes.remove(0)
    }

    #[test]
    fn explain_marks_the_records_sent_non_authoritative() {
        let db = TempDb::new("report-explain-auth");
        let _store = db.apply(&format!(
            "{ONE_NODE}
[[record]]
name = \"child.voip.test\"
type = \"NS\"
content = \"ns.child.voip.test.\"

[[record]]
name = \"ns.child.voip.test\"
type = \"A\"
content = \"192.0.2.53\"

[[record]]
name = \"child.voip.test\"
type = \"DS\"
content = \"60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118\"
"
        ));
        let mut e = Engine::new(&db.path);
        let client: Prefix = "198.51.100.0/24".parse().unwrap();
        let flagged = |x: &Explain| -> Vec<(String, bool)> {
            x.records
                .iter()
                .map(|r| (r.rtype.clone(), r.auth))
                .collect()
        };
        // The delegation's NS: auth=0; its DS: signed at the parent.
        let x = explain(&mut e, "child.voip.test", "ANY", &client);
        let mut got = flagged(&x);
        got.sort();
        assert_eq!(got, [("DS".to_string(), true), ("NS".to_string(), false)]);
        let text = x.text();
        let line = |t: &str| -> String {
            text.iter()
                .find(|l| l.contains(&format!("\tIN\t{t}\t")))
                .unwrap_or_else(|| panic!("no {t} in {text:?}"))
                .clone()
        };
        assert!(
            line("NS").ends_with(
                "; scope /0; not authoritative (auth=0: at or below a delegation, not signed)"
            ),
            "{text:?}"
        );
        assert!(line("DS").ends_with("; scope /0"), "{text:?}");
        // The glue below the cut.
        let x = explain(&mut e, "ns.child.voip.test", "A", &client);
        assert_eq!(flagged(&x), [("A".to_string(), false)]);
        assert!(x.text()[1].contains("not authoritative"), "{:?}", x.text());
        // Everything else is authoritative, and says nothing.
        for (name, t) in [("voip.test", "ANY"), ("a.voip.test", "A")] {
            let x = explain(&mut e, name, t, &client);
            assert!(
                !x.records.is_empty() && x.records.iter().all(|r| r.auth),
                "{name}"
            );
            assert!(x.text().iter().all(|l| !l.contains("not authoritative")));
        }
        // --json has the flag.
        let json = serde_json::to_value(explain(&mut e, "child.voip.test", "NS", &client)).unwrap();
        assert_eq!(json["records"][0]["auth"], false, "{json}");
    }

    #[test]
    fn a_fresh_tls_probe_shows_its_certificate_and_a_stale_one_nothing() {
        let db = TempDb::new("report-cert");
        let mut store = db.apply(ONE_NODE);
        let now = metrics::now();
        let at = now + 3 * 86_400 + 600;
        let health = metrics::Metric::Health {
            node: "a".into(),
            state: metrics::Health::Up,
            ts: now,
            probe_rtt_ms: Some(1.0),
            reason: Some("SIP probe: tls:192.0.2.1:5061 answered 200".into()),
            cert_not_after: Some(at),
        };
        store
            .write_metrics(&[health], "collector", None, now)
            .unwrap();
        let n = node_status(&store);
        assert_eq!(n.probe_cert_not_after, Some(at));
        assert_eq!(n.probe_cert_days_left, Some(3));
        assert!(n.probe_cert_expiring);
        assert_eq!(
            n.probe_detail.as_deref(),
            Some("SIP probe: tls:192.0.2.1:5061 answered 200")
        );
        let s = status_now(&store);
        assert!(
            s.text().iter().any(
                |l| l.starts_with("  a: WARNING: the TLS certificate expires")
                    && l.ends_with("(in 3 days)")
            ),
            "{:?}",
            s.text()
        );
        assert!(
            s.prometheus().contains(&format!(
                "pdns_ha_node_probe_cert_expiry_seconds{{node=\"a\"}} {at}\n"
            )),
            "{}",
            s.prometheus()
        );
        // Older than health_max_age_s (60 s): not shown.
        store
            .conn
            .execute("UPDATE probe SET updated = updated - 61", [])
            .unwrap();
        let n = node_status(&store);
        assert_eq!(
            (n.probe_cert_not_after, n.probe_detail.as_deref()),
            (None, None)
        );
        assert!(!n.probe_cert_expiring);
    }

    #[test]
    fn a_probe_reason_is_shown_only_for_a_health_the_collector_set() {
        let db = TempDb::new("report-reason");
        let mut store = db.apply(ONE_NODE);
        let now = metrics::now();
        let health = |state, reason: Option<&str>| metrics::Metric::Health {
            node: "a".into(),
            state,
            ts: now,
            probe_rtt_ms: None,
            reason: reason.map(String::from),
            cert_not_after: None,
        };
        let probe = "SIP probe: udp:192.0.2.1:5060 answered 200";
        store
            .write_metrics(
                &[health(metrics::Health::Up, Some(probe))],
                "collector",
                None,
                now,
            )
            .unwrap();
        assert_eq!(node_status(&store).probe_detail.as_deref(), Some(probe));
        // An agent reports the node down: the collector's last probe, which
        // it answered, does not explain that.
        store
            .write_metrics(&[health(metrics::Health::Down, None)], "ingest", None, now)
            .unwrap();
        let n = node_status(&store);
        assert_eq!((n.health.as_str(), n.probe_detail), ("down", None));
        let why = format!("  a: {probe}");
        assert!(!status_now(&store).text().contains(&why));
    }
}
