//! Answering: from a question and a client network to the records PowerDNS
//! gets. The engine ties together its parts, each tested on its own:
//! [`view::StoreView`] (the database, the topology and the node states, kept
//! up to date), [`timed::TimedCache`] and [`timed::TimedBytes`] (decisions
//! and rendered answers, valid for a short time, bounded in bytes),
//! [`seen::SeenCounter`] (the client networks asked about), and the
//! decisions themselves (`decide`, `compute`: latency entries read through
//! prepared statements, ranked by `policy` into buffers the engine reuses,
//! kept as a `policy::Choice`).

pub mod latency;
pub mod seen;
pub mod timed;
pub mod view;

use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::bounded::{HeapSize, alloc_size};
use crate::cache::{DecisionKey, SharedCache};
use crate::metrics;
use crate::net::Prefix;
use crate::policy::{self, Candidate, Choice, Decision, Input, Latency, NodeView, Quality};
use crate::proto::{self, Data};
use crate::site::Policy;
use crate::store::{NodeStateRows, Store};
use crate::topology::{Entry, Target, Topology};
pub use latency::{EntryLabel, LatencyEntry, QualityEntry};
use seen::{FirstCounter, SeenCounter};
use timed::{TimedBytes, TimedCache};
pub use view::CHECK_EVERY;
use view::StoreView;

// Bounds of what lives across questions. The caches' tables are sets of
// four entries (`bounded::SetCache`: a new entry replaces an expired one of
// its set, else the one expiring first), allocated once; the byte budgets
// count the table and what the entries own, as allocated
// (`bounded::alloc_size`), and hold whatever the questions are. The caches
// serve questions asked again within `decision_cache_ms` (at most 2 s); a
// stream of new client networks only costs them, so they are small.

/// Decisions kept: one per (dynamic name, client /24 or /48) asked within
/// `decision_cache_ms`. Rendered answers hold the same networks; a decision
/// serves the questions they do not (another type, A after AAAA for a
/// pool, another ABI).
pub const DECISIONS_MAX: usize = 512;
/// Budget of the decision cache: the table (56 KiB: a key and a `Choice`
/// of up to six nodes inline, 96 bytes a slot, and 16 in its set's head)
/// and 8 KiB for decisions of more nodes, which own heap (more of them drop
/// the others).
pub const DECISIONS_BYTES: usize = 64 * 1024;
/// Rendered answers kept: PowerDNS asks the same few names, for each client
/// network, again and again, moments apart; the last few hundred answers
/// are served from here.
pub const RENDERED_MAX: usize = 512;
/// Budget of the rendered-answer cache: the table (32 KiB: 48 bytes a slot
/// and 16 in its set's head) and a ring of 128 KiB for the answers with
/// their names and types as asked (the oldest written over first): 450 SRV
/// answers of three records (about 290 bytes each), or about 130 of the
/// longest names (1003 bytes). One answer over an eighth of the ring is not
/// kept.
pub const RENDERED_BYTES: usize = 160 * 1024;
/// Budget of the node views of the current second: 6500 nodes of 40 bytes
/// (a site has tens). A larger site's views are computed for each decision
/// instead.
pub const VIEWS_BYTES: usize = 256 * 1024;

/// A decision with the details `explain` shows.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    pub decision: Decision,
    /// Per candidate (in the site's order): the latency entry used.
    pub latency: Vec<Option<LatencyEntry>>,
    /// Per candidate: the call quality entry used (quality policy only).
    pub quality: Vec<Option<QualityEntry>>,
    /// Per node index.
    pub views: Rc<Vec<NodeView>>,
}

/// The answering engine of one coprocess (or of `explain`).
pub struct Engine {
    /// The database, the topology and the node states.
    pub view: StoreView,
    decisions: TimedCache<DecisionKey, Choice>,
    /// Whole answers as written, for repeated questions (short-lived).
    rendered: TimedBytes<u64, Rendered>,
    /// While an answer is built: until when it may be reused, and the policy
    /// of the dynamic name it answered (for the seen networks).
    building_until: Option<Instant>,
    building_seen: Option<Policy>,
    /// ... and the node it put first (an index in the topology).
    building_first: Option<u32>,
    /// When the last question was answered, for [`Engine::housekeeping`].
    answered_at: Option<Instant>,
    seen: SeenCounter,
    first: FirstCounter,
    /// The qname in lower case (at most a line long: `proto::MAX_LINE`).
    name_buf: String,
    /// Optional cache shared between processes (memcached).
    pub shared: Option<Box<dyn SharedCache>>,
    /// The shared cache's counters last written to the store, and when.
    shared_stats_written: Option<(crate::cache::CacheStats, Instant)>,
    /// Whether to use the in-process decision cache (off for `explain`).
    pub use_cache: bool,
    /// Whether to record seen client networks (off for `explain`).
    pub record_seen: bool,
    last_error_log: Option<Instant>,
    last_fail_open_log: Option<Instant>,
    views_cache: ViewsCache,
    /// Reused by each computed decision (as large as the longest list of
    /// candidates in the site).
    decision_buf: Decision,
    latency_buf: Vec<Option<Latency>>,
    /// The aggregates of the client and the latency entries found, of the
    /// last computed decision (reused: no allocation per question).
    aggregates_buf: Vec<latency::Aggregate>,
    entries_buf: Vec<Option<LatencyEntry>>,
    /// The same for call quality (quality policy only).
    quality_buf: Vec<Option<Quality>>,
    quality_entries_buf: Vec<Option<QualityEntry>>,
}

impl Engine {
    /// An engine on the database at `path`, which may not exist yet.
    pub fn new(path: &Path) -> Engine {
        Engine {
            view: StoreView::new(path),
            decisions: TimedCache::new(DECISIONS_BYTES, DECISIONS_MAX),
            rendered: TimedBytes::new(RENDERED_BYTES, RENDERED_MAX),
            building_until: None,
            building_seen: None,
            building_first: None,
            answered_at: None,
            seen: SeenCounter::default(),
            first: FirstCounter::default(),
            name_buf: String::new(),
            shared: None,
            shared_stats_written: None,
            use_cache: true,
            record_seen: true,
            last_error_log: None,
            last_fail_open_log: None,
            views_cache: ViewsCache::default(),
            decision_buf: Decision::default(),
            latency_buf: Vec::new(),
            quality_buf: Vec::new(),
            quality_entries_buf: Vec::new(),
            aggregates_buf: Vec::new(),
            entries_buf: Vec::new(),
        }
    }

    /// The store, if open.
    pub fn store(&self) -> Option<&Store> {
        self.view.store()
    }

    /// The snapshot latency and call quality entries are read from, or None
    /// while they are read through SQLite.
    pub fn snapshot_header(&self) -> Option<crate::snapshot::Header> {
        self.view.snapshot().map(|m| m.header())
    }

    /// The topology answers are built from.
    pub fn topo(&self) -> &Rc<Topology> {
        &self.view.topo
    }

    /// Counters of the shared cache, if one is configured.
    pub fn shared_stats(&self) -> Option<crate::cache::CacheStats> {
        self.shared.as_ref().map(|c| c.stats())
    }

    /// The topology generation and health epoch the answers are built on.
    pub fn version(&self) -> (i64, i64) {
        self.view.version()
    }

    fn log_error(&mut self, what: &str, e: &anyhow::Error) {
        if due(&mut self.last_error_log) {
            log::error!("{what}: {e:#}");
        }
    }

    /// Brings the view of the store up to date, cheaply: called before every
    /// question; does real work at most every [`CHECK_EVERY`]. Drops what
    /// the change made stale.
    pub fn refresh(&mut self) {
        let changed = self.view.refresh();
        if changed.states {
            self.views_cache.clear();
        }
        if changed.decisions {
            self.decisions.clear();
            self.rendered.clear();
        }
    }

    /// Work that may wait until after an answer was sent: writing the seen
    /// client networks (dropped, not delayed, when the database is busy).
    pub fn housekeeping(&mut self) {
        // The instant of the question just answered, if any: one clock
        // read less per question.
        let now = self.answered_at.take().unwrap_or_else(Instant::now);
        if self.seen.due(now) {
            self.housekeeping_now();
        }
    }

    /// [`Engine::housekeeping`] without waiting for its interval (at exit).
    pub fn housekeeping_now(&mut self) {
        self.flush_shared_stats();
        let batch = self.seen.take();
        let first = self.first.take();
        if self.seen.dropped + self.first.dropped > 0 {
            log::debug!(
                "{} client networks and {} answers not counted (counter full)",
                self.seen.dropped,
                self.first.dropped
            );
            self.seen.dropped = 0;
            self.first.dropped = 0;
        }
        let Some(store) = self.view.store_mut() else {
            return;
        };
        if batch.is_empty() && first.is_empty() {
            return;
        }
        if let Err(e) = store.record_seen(&batch, &first, metrics::now()) {
            log::debug!(
                "seen client networks and answer counts dropped ({} networks): {e:#}",
                batch.len()
            );
        }
    }

    /// Writes the shared cache's counters for `status` (dropped when the
    /// database is busy; skipped when unchanged and written recently).
    fn flush_shared_stats(&mut self) {
        let (Some(cache), Some(store)) = (self.shared.as_ref(), self.view.store_mut()) else {
            return;
        };
        let stats = cache.stats();
        if self
            .shared_stats_written
            .is_some_and(|(s, t)| s == stats && t.elapsed() < Duration::from_secs(30))
        {
            return;
        }
        match store.write_cache_stats(std::process::id(), &stats, metrics::now()) {
            Ok(()) => self.shared_stats_written = Some((stats, Instant::now())),
            Err(e) => log::debug!("memcached counters not written: {e:#}"),
        }
    }

    /// Answers one question: DATA lines into `out`, then END.
    ///
    /// A question asked again (same name as written, type, ABI and client
    /// network) while the decisions it used are still valid gets the bytes
    /// written the first time: PowerDNS asks the same few names over and
    /// over, and this skips the lookups and the formatting.
    pub fn answer(&mut self, q: &proto::Query, abi: u8, out: &mut Vec<u8>) {
        let now = Instant::now();
        self.answered_at = Some(now);
        let client = q.client.truncate(q.client.family().fine());
        let key = Rendered::hash(q, abi, &client);
        if self.use_cache
            && let Some((r, bytes)) = self.rendered.get(&key, now)
            && let Some(answer) = r.answer(bytes, q, abi, &client)
        {
            out.extend_from_slice(answer);
            let (seen, first) = (r.seen, r.first);
            if let Some(policy) = seen {
                self.note_seen(&q.client, policy);
            }
            if let Some(n) = first {
                self.note_first(n);
            }
            return;
        }
        let start = out.len();
        self.building_until = None;
        self.building_seen = None;
        self.building_first = None;
        self.answer_uncached(q, abi, now, out);
        if self.use_cache {
            let ttl = Duration::from_millis(self.view.topo.policy.decision_cache_ms);
            let until = self.building_until.map_or(now + ttl, |u| u.min(now + ttl));
            // A name and type are at most a line long (`proto::MAX_LINE`).
            if let (Ok(qname_len), Ok(qtype_len)) =
                (u16::try_from(q.qname.len()), u16::try_from(q.qtype.len()))
            {
                let r = Rendered {
                    qname_len,
                    qtype_len,
                    abi,
                    client,
                    seen: self.building_seen,
                    first: self.building_first,
                };
                let parts = [q.qname.as_bytes(), q.qtype.as_bytes(), &out[start..]];
                self.rendered.insert(key, r, &parts, until);
            }
        }
    }

    fn answer_uncached(&mut self, q: &proto::Query, abi: u8, now: Instant, out: &mut Vec<u8>) {
        self.emit(q, now, &mut Lines { out, abi });
        proto::write_end(out);
    }

    /// The records of the answer to `q`, typed (what `explain` shows): the
    /// same path as [`Engine::answer`], without the pipe's format.
    pub fn records(&mut self, q: &proto::Query) -> Vec<Record> {
        let mut r = Records::default();
        self.emit(q, Instant::now(), &mut r);
        r.records
    }

    /// Every record of the answer to `q`, into `w`.
    fn emit(&mut self, q: &proto::Query, now: Instant, w: &mut impl Emit) {
        let topo = Rc::clone(&self.view.topo);
        let mut name = std::mem::take(&mut self.name_buf);
        name.clear();
        // PowerDNS sends names without the final dot; accept one anyway.
        name.push_str(q.qname.strip_suffix('.').unwrap_or(q.qname));
        name.make_ascii_lowercase();
        if let Some(entries) = topo.names.get(&name) {
            for &e in entries {
                self.answer_entry(&topo, &name, e, q, now, w);
            }
        }
        self.name_buf = name;
    }

    /// The records of entry `e` of `name` (the question's name, lower case).
    fn answer_entry(
        &mut self,
        topo: &Topology,
        name: &str,
        e: Entry,
        q: &proto::Query,
        now: Instant,
        w: &mut impl Emit,
    ) {
        let qtype = q.qtype;
        let any = qtype.eq_ignore_ascii_case("ANY");
        let want = |t: &str| any || qtype.eq_ignore_ascii_case(t);
        let soa_question = qtype.eq_ignore_ascii_case("SOA");
        // Data at or below a delegation is not authoritative (glue, or
        // hidden by the cut): PowerDNS must not sign it. No lookup for a
        // site without delegations.
        let auth = topo.cuts.is_empty() || !topo.cuts.contains_key(name);
        let data = |qtype: &'static str, ttl: u32, id: i64, scope: u8, prio: Option<u16>| Data {
            scope,
            auth,
            qname: q.qname,
            qtype,
            ttl,
            id,
            prio,
        };
        match e {
            Entry::Apex(z) => {
                let zone = &topo.zones[z];
                if want("SOA") {
                    w.record(&data("SOA", zone.def.ttl, zone.id, 0, None), |o| {
                        o.extend_from_slice(zone.soa.as_bytes())
                    });
                }
                if want("NS") && !soa_question {
                    for ns in &zone.def.ns {
                        w.record(&data("NS", zone.def.ttl, zone.id, 0, None), |o| {
                            o.extend_from_slice(ns.as_bytes())
                        });
                    }
                }
            }
            _ if soa_question => {}
            Entry::Host(n) => {
                let node = &topo.nodes[n];
                let Some(z) = topo.zone_of(&node.def.host) else {
                    return;
                };
                let zone = &topo.zones[z];
                write_addresses(w, &node.def, any, qtype, |t| {
                    data(t, zone.def.ttl, zone.id, 0, None)
                });
            }
            Entry::Record(r) => {
                let rec = &topo.records[r];
                if !any && !qtype.eq_ignore_ascii_case(&rec.def.rtype) {
                    return;
                }
                let zone = &topo.zones[rec.zone];
                let d = Data {
                    scope: 0,
                    auth: auth || topo.auth(name, &rec.def.rtype),
                    qname: q.qname,
                    qtype: &rec.def.rtype,
                    ttl: rec.def.ttl,
                    id: zone.id,
                    prio: rec.prio,
                };
                w.record(&d, |o| o.extend_from_slice(rec.rest.as_bytes()));
            }
            Entry::Ent(z) => {
                if any {
                    let zone = &topo.zones[z];
                    w.record(&data("TYPE65534", zone.def.ttl, zone.id, 0, None), |o| {
                        o.extend_from_slice(b"\\# 0")
                    });
                }
            }
            Entry::Service(s) => {
                if !want("SRV") {
                    return;
                }
                let svc = &topo.services[s];
                let zone_id = topo.zones[svc.zone].id;
                let client = q.client;
                self.note_seen(&client, svc.policy);
                let d = self.decide(topo, Target::Service(s), &client, now);
                if let Some(r) = d.places().first() {
                    self.note_first(r.node);
                }
                w.records(
                    &data("SRV", svc.ttl, zone_id, d.scope, None),
                    d.places(),
                    |r| Some(r.tier),
                    |r, o| {
                        proto::push_uint(o, u64::from(r.weight));
                        o.push(b' ');
                        proto::push_uint(o, u64::from(svc.port));
                        o.push(b' ');
                        o.extend_from_slice(topo.nodes[r.node as usize].def.host.as_bytes());
                    },
                );
            }
            Entry::Pool(p) => {
                let pool = &topo.pools[p];
                if !(want("A") || want("AAAA")) {
                    return;
                }
                let zone_id = topo.zones[pool.zone].id;
                let client = q.client;
                self.note_seen(&client, pool.policy);
                let d = self.decide(topo, Target::Pool(p), &client, now);
                if let Some(r) = d.places().first() {
                    self.note_first(r.node);
                }
                let take = if d.failed_open {
                    d.places().len()
                } else {
                    pool.answers as usize
                };
                for r in d.places().iter().take(take) {
                    write_addresses(w, &topo.nodes[r.node as usize].def, any, qtype, |t| {
                        data(t, pool.ttl, zone_id, d.scope, None)
                    });
                }
            }
        }
    }

    /// Counts an answer that puts node `n` (an index in the topology) first.
    fn note_first(&mut self, n: u32) {
        self.building_first = Some(n);
        if self.record_seen
            && let Some(node) = self.view.topo.nodes.get(n as usize)
        {
            self.first.note(node.id);
        }
    }

    fn note_seen(&mut self, client: &Prefix, policy: Policy) {
        self.building_seen = Some(policy);
        if self.record_seen {
            self.seen.note(client, policy);
        }
    }

    /// The decision for a dynamic name and a client, from the in-process
    /// cache, the shared cache, or computed (`now`: the question's arrival).
    pub fn decide(
        &mut self,
        topo: &Topology,
        target: Target,
        client: &Prefix,
        now: Instant,
    ) -> Choice {
        let (policy, _) = target_of(topo, target);
        let fine_scope = client.family().fine().min(client.len);
        // Decisions are made per client network at the fine level: a more
        // specific source prefix tells nothing more.
        let client = &client.truncate(fine_scope);
        let key = DecisionKey::new(target, policy, client);
        if self.use_cache
            && let Some((decision, until)) = self.decisions.get(&key, now)
        {
            self.building_until = Some(self.building_until.map_or(until, |u| u.min(until)));
            return decision.clone();
        }
        let ttl = Duration::from_millis(topo.policy.decision_cache_ms);
        let version = self.view.version();
        let shared_hit = if self.use_cache && self.shared.is_some() {
            // A decision read from the shared cache is answered only if it
            // agrees with this server's own node states (another DNS
            // server's database may see a node down that this one does not,
            // or the other way round, under the same version numbers).
            let views = self.views(topo, metrics::now());
            self.shared
                .as_mut()
                .and_then(|c| c.get(&key, version, topo, &views))
        } else {
            None
        };
        let d = match shared_hit {
            Some(d) => Choice::of(&d),
            None => {
                let mut d = std::mem::take(&mut self.decision_buf);
                self.compute_into(topo, target, client, fine_scope, &mut d);
                if self.use_cache
                    && let Some(c) = self.shared.as_mut()
                {
                    c.put(&key, version, topo, &d);
                }
                let choice = Choice::of(&d);
                self.decision_buf = d;
                choice
            }
        };
        if self.use_cache {
            let until = now + ttl;
            self.decisions.insert(key, d.clone(), until);
            self.building_until = Some(self.building_until.map_or(until, |u| u.min(until)));
        }
        d
    }

    /// Computes a decision from the store, with the details `explain` shows.
    pub fn compute(
        &mut self,
        topo: &Topology,
        target: Target,
        client: &Prefix,
        fine_scope: u8,
    ) -> Detail {
        let mut decision = Decision::default();
        let views = self.compute_into(topo, target, client, fine_scope, &mut decision);
        let (_, candidates) = target_of(topo, target);
        let mut latency = self.entries_buf.clone();
        latency.resize(candidates.len(), None);
        let mut quality = self.quality_entries_buf.clone();
        quality.resize(candidates.len(), None);
        Detail {
            decision,
            latency,
            quality,
            views,
        }
    }

    /// Computes a decision into `decision` (its vectors reused); returns
    /// the views. The latency entries found are left in `entries_buf`, the
    /// quality entries in `quality_entries_buf` (empty if none were read).
    fn compute_into(
        &mut self,
        topo: &Topology,
        target: Target,
        client: &Prefix,
        fine_scope: u8,
        decision: &mut Decision,
    ) -> Rc<Vec<NodeView>> {
        let (policy, candidates) = target_of(topo, target);
        let now = metrics::now();
        let cfg = &topo.policy;
        let views = self.views(topo, now);
        let mut latency = std::mem::take(&mut self.latency_buf);
        latency.clear();
        latency.resize(candidates.len(), None);
        let mut entries = std::mem::take(&mut self.entries_buf);
        entries.clear();
        let mut aggregates = std::mem::take(&mut self.aggregates_buf);
        let mut quality = std::mem::take(&mut self.quality_buf);
        quality.clear();
        let mut quality_entries = std::mem::take(&mut self.quality_entries_buf);
        quality_entries.clear();
        let mut prefer: &[usize] = &[];
        if matches!(policy, Policy::Latency | Policy::Quality) {
            let fresh_after = now - cfg.latency_max_age_s;
            let named = latency::aggregates_into(topo, client, &mut aggregates);
            if let Some(ni) = named {
                prefer = &topo.networks[ni].prefer;
            }
            if let Some(source) = self.view.source() {
                let read = latency::read_into(
                    source,
                    topo,
                    candidates,
                    &aggregates,
                    fresh_after,
                    now,
                    &mut entries,
                );
                if let Err(e) = read {
                    entries.clear();
                    self.log_error("latency lookup failed; answering without latency", &e)
                }
            }
            for (l, e) in latency.iter_mut().zip(&entries) {
                *l = e.map(|e| e.latency);
            }
        }
        if policy == Policy::Quality
            && let Some(source) = self.view.source()
        {
            let read = latency::read_quality_into(
                source,
                topo,
                candidates,
                &aggregates,
                now - cfg.quality_max_age_s,
                cfg.quality_min_calls,
                now,
                &mut quality_entries,
            );
            if let Err(e) = read {
                quality_entries.clear();
                self.log_error(
                    "call quality lookup failed; answering without call quality",
                    &e,
                )
            }
            quality.extend(quality_entries.iter().map(|e| e.map(|e| e.quality)));
        }
        policy::rank_into(
            &Input {
                policy,
                config: cfg,
                candidates,
                views: &views,
                latency: &latency,
                quality: &quality,
                prefer,
                fine_scope,
            },
            decision,
        );
        self.latency_buf = latency;
        self.quality_buf = quality;
        self.quality_entries_buf = quality_entries;
        self.aggregates_buf = aggregates;
        self.entries_buf = entries;
        if decision.failed_open {
            let name = match target {
                Target::Service(s) => &topo.services[s].name,
                Target::Pool(p) => &topo.pools[p].name,
            };
            self.log_fail_open(name);
        }
        views
    }

    /// Node states judged for freshness, recomputed at most once a second or
    /// when the states were reloaded.
    fn views(&mut self, topo: &Topology, now: i64) -> Rc<Vec<NodeView>> {
        let states = &self.view.states;
        self.views_cache
            .get_or(now, || node_views(topo, states, now))
    }

    fn log_fail_open(&mut self, name: &str) {
        if due(&mut self.last_fail_open_log) {
            log::warn!("{name}: every node is down or drained; answering all of them (fail open)");
        }
    }

    /// Answers a whole zone for AXFR: static data, and dynamic names in the
    /// site file's order.
    pub fn axfr(&mut self, id: i64, zone: Option<&str>, abi: u8, out: &mut Vec<u8>) -> bool {
        let topo = Rc::clone(&self.view.topo);
        let z = match zone {
            Some(name) => {
                let n = name.trim_end_matches('.').to_ascii_lowercase();
                topo.zones.iter().position(|z| z.def.name == n)
            }
            None => topo.zones.iter().position(|z| z.id == id),
        };
        let Some(z) = z else { return false };
        let apex = topo.zones[z].def.name.clone();
        let mut names: Vec<(&String, &Vec<Entry>)> = topo
            .names
            .iter()
            .filter(|(n, _)| topo.zone_of(n) == Some(z))
            .collect();
        names.sort_by(|a, b| (a.0 != &apex, a.0).cmp(&(b.0 != &apex, b.0)));
        let record_seen = std::mem::replace(&mut self.record_seen, false);
        let now = Instant::now();
        for (name, entries) in names {
            let q = proto::Query {
                qname: name,
                qclass: "IN",
                qtype: "ANY",
                id,
                remote: "0.0.0.0",
                local: None,
                client: Prefix::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
            };
            for &e in entries {
                if matches!(e, Entry::Ent(_)) {
                    continue;
                }
                self.answer_entry(&topo, name, e, &q, now, &mut Lines { out, abi });
            }
        }
        self.record_seen = record_seen;
        // AXFR carries no client: dynamic answers above use static scope 0.
        true
    }
}

/// Where the engine puts the records of an answer: DATA lines for the pipe
/// ([`Lines`]) or typed records for `explain` ([`Records`]). One path builds
/// both, so `explain` shows what PowerDNS gets.
pub trait Emit {
    /// One record; `content` writes its content (after the MX/SRV priority,
    /// which is `d.prio`).
    fn record(&mut self, d: &Data, content: impl FnOnce(&mut Vec<u8>));

    /// Records that differ only in their priority and content (an SRV
    /// answer): one [`Emit::record`] each.
    fn records<T>(
        &mut self,
        d: &Data,
        items: &[T],
        prio: impl Fn(&T) -> Option<u16>,
        content: impl Fn(&T, &mut Vec<u8>),
    ) {
        for item in items {
            let d = Data {
                prio: prio(item),
                ..*d
            };
            self.record(&d, |o| content(item, o));
        }
    }
}

/// DATA lines of one pipe ABI, as PowerDNS reads them.
pub struct Lines<'a> {
    pub out: &'a mut Vec<u8>,
    pub abi: u8,
}

impl Emit for Lines<'_> {
    fn record(&mut self, d: &Data, content: impl FnOnce(&mut Vec<u8>)) {
        proto::write_data(self.out, self.abi, d, content);
    }

    /// The same lines, with the fields they share written once.
    fn records<T>(
        &mut self,
        d: &Data,
        items: &[T],
        prio: impl Fn(&T) -> Option<u16>,
        content: impl Fn(&T, &mut Vec<u8>),
    ) {
        proto::write_data_lines(self.out, self.abi, d, items, prio, content);
    }
}

/// One record of an answer, as PowerDNS gets it.
#[derive(serde::Serialize, Clone, Debug, PartialEq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    #[serde(rename = "type")]
    pub rtype: String,
    /// With the MX/SRV priority first, as in a zone file.
    pub content: String,
    pub scope: u8,
    /// The pipe's `auth` field: false for data at or below a delegation
    /// (its NS, glue), which PowerDNS neither answers as authoritative nor
    /// signs.
    pub auth: bool,
}

/// Typed records.
#[derive(Default)]
pub struct Records {
    pub records: Vec<Record>,
    buf: Vec<u8>,
}

impl Emit for Records {
    fn record(&mut self, d: &Data, content: impl FnOnce(&mut Vec<u8>)) {
        self.buf.clear();
        if let Some(p) = d.prio {
            proto::push_uint(&mut self.buf, u64::from(p));
            self.buf.push(b' ');
        }
        content(&mut self.buf);
        self.records.push(Record {
            name: d.qname.to_string(),
            ttl: d.ttl,
            rtype: d.qtype.to_string(),
            content: String::from_utf8_lossy(&self.buf).into_owned(),
            scope: d.scope,
            auth: d.auth,
        });
    }
}

impl HeapSize for DecisionKey {
    fn heap_size(&self) -> usize {
        0
    }
}

impl HeapSize for Choice {
    /// Nothing up to `policy::CHOICE_INLINE` nodes; else the shared slice
    /// (two counters and the places).
    fn heap_size(&self) -> usize {
        match self.heap_places() {
            0 => 0,
            n => alloc_size(2 * size_of::<usize>() + n * size_of::<policy::Place>()),
        }
    }
}

/// The node views of one second, shared by the decisions made in it: one
/// vector, kept only if it takes at most [`VIEWS_BYTES`].
#[derive(Default)]
struct ViewsCache(Option<(i64, Rc<Vec<NodeView>>)>);

impl ViewsCache {
    /// The views of second `now`, kept or made by `make`.
    fn get_or(&mut self, now: i64, make: impl FnOnce() -> Vec<NodeView>) -> Rc<Vec<NodeView>> {
        if let Some((at, v)) = &self.0
            && *at == now
        {
            return Rc::clone(v);
        }
        let v = Rc::new(make());
        self.0 = (views_bytes(&v) <= VIEWS_BYTES).then(|| (now, Rc::clone(&v)));
        v
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// What a views vector takes: the `Rc` allocation and the vector's buffer.
fn views_bytes(v: &Vec<NodeView>) -> usize {
    alloc_size(2 * size_of::<usize>() + size_of::<Vec<NodeView>>())
        + alloc_size(v.capacity() * size_of::<NodeView>())
}

/// What an answer as written answered. Its string in the cache is the
/// question's name and type as asked, then the answer.
#[derive(Clone, Copy)]
struct Rendered {
    qname_len: u16,
    qtype_len: u16,
    abi: u8,
    /// The client network at the fine level.
    client: Prefix,
    /// The policy of the dynamic name answered, if any.
    seen: Option<Policy>,
    /// The node it put first, if any (an index in the topology; the cached
    /// answers are dropped when the topology changes).
    first: Option<u32>,
}

impl Rendered {
    fn hash(q: &proto::Query, abi: u8, client: &Prefix) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        q.qname.hash(&mut h);
        q.qtype.hash(&mut h);
        abi.hash(&mut h);
        client.hash(&mut h);
        h.finish()
    }

    /// The answer in `bytes` (this entry's string), if it answers `q`.
    fn answer<'a>(
        &self,
        bytes: &'a [u8],
        q: &proto::Query,
        abi: u8,
        client: &Prefix,
    ) -> Option<&'a [u8]> {
        if self.abi != abi || self.client != *client {
            return None;
        }
        let (qname, rest) = bytes.split_at_checked(usize::from(self.qname_len))?;
        let (qtype, answer) = rest.split_at_checked(usize::from(self.qtype_len))?;
        (qname == q.qname.as_bytes() && qtype == q.qtype.as_bytes()).then_some(answer)
    }
}

fn target_of(topo: &Topology, t: Target) -> (Policy, &[Candidate]) {
    match t {
        Target::Service(s) => (topo.services[s].policy, &topo.services[s].candidates),
        Target::Pool(p) => (topo.pools[p].policy, &topo.pools[p].candidates),
    }
}

/// Judges the stored node states for freshness, per node index.
pub fn node_views(topo: &Topology, states: &NodeStateRows, now: i64) -> Vec<NodeView> {
    let cfg = &topo.policy;
    topo.nodes
        .iter()
        .map(|n| NodeView {
            health: states
                .health
                .get(&n.id)
                .filter(|h| now - h.updated <= cfg.health_max_age_s)
                .map(|h| h.state),
            drained: states.drained.contains_key(&n.id),
            load: states
                .load
                .get(&n.id)
                .filter(|l| now - l.updated <= cfg.load_max_age_s)
                .map(|l| policy::Load {
                    sessions: l.sessions,
                    max_sessions: l.max_sessions,
                    idle_cpu: l.idle_cpu,
                }),
            site_max_sessions: n.def.max_sessions,
        })
        .collect()
}

fn write_addresses<'a>(
    w: &mut impl Emit,
    node: &crate::site::Node,
    any: bool,
    qtype: &str,
    data: impl Fn(&'static str) -> Data<'a>,
) {
    if any || qtype.eq_ignore_ascii_case("A") {
        for a in &node.ipv4 {
            w.record(&data("A"), |o| {
                let _ = write!(o, "{a}");
            });
        }
    }
    if any || qtype.eq_ignore_ascii_case("AAAA") {
        for a in &node.ipv6 {
            w.record(&data("AAAA"), |o| {
                let _ = write!(o, "{a}");
            });
        }
    }
}

/// Rate limit of repeated log lines: true (and the time noted) at most
/// every 10 s.
pub(crate) fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(10)) {
        return false;
    }
    *last = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Ids;

    const SITE: &str = r#"
[zone."voip.example.com"]
ns = ["ns1.voip.example.com"]
hostmaster = "hostmaster.example.com"
[node.a]
host = "a.voip.example.com"
ipv4 = ["192.0.2.1"]
[node.b]
host = "b.voip.example.com"
ipv4 = ["192.0.2.2"]
[node.c]
host = "c.voip.example.com"
ipv4 = ["192.0.2.3"]
[service."_sip._udp.voip.example.com"]
policy = "latency"
port = 5060
nodes = ["a", "b", "c"]
"#;

    /// An engine on the site above, with no database (no latency: every
    /// decision is computed from the site alone).
    fn engine() -> Engine {
        let site = crate::site::parse("test.toml", SITE).expect("site");
        let ids = Ids {
            zones: vec![1],
            nodes: vec![100, 101, 102],
            networks: vec![],
        };
        let mut e = Engine::new(Path::new("/nonexistent/pdns-ha.db"));
        e.view.topo = Rc::new(Topology::build(site, &ids, 7));
        e
    }

    fn query<'a>(qname: &'a str, client: &str) -> proto::Query<'a> {
        proto::Query {
            qname,
            qclass: "IN",
            qtype: "ANY",
            id: -1,
            remote: "192.0.2.1",
            local: None,
            client: client.parse().unwrap(),
        }
    }

    /// A name of 255 octets, most of them written `\DDD` (979 bytes),
    /// different for each `i`.
    fn long_name(i: usize) -> String {
        let tag = format!("{i:08}");
        let label = |n: usize| "\\255".repeat(n);
        format!(
            "{tag}{}.{}.{}.{}",
            label(55),
            label(63),
            label(63),
            label(61)
        )
    }

    /// The string kept for a question, if any.
    fn rendered<'a>(e: &'a Engine, q: &proto::Query) -> Option<&'a [u8]> {
        let client = q.client.truncate(q.client.family().fine());
        e.rendered
            .get(&Rendered::hash(q, 5, &client), Instant::now())
            .map(|(_, bytes)| bytes)
    }

    #[test]
    fn rendered_answers_are_kept_with_their_names_and_stay_in_budget() {
        let mut e = engine();
        let mut out = Vec::new();
        let name = long_name(0);
        let q = query(&name, "10.0.0.0/24");
        e.answer(&q, 5, &mut out);
        assert_eq!(out, b"END\n");
        assert_eq!(rendered(&e, &q).unwrap().len(), name.len() + 3 + 4);
        for i in 0..5000 {
            out.clear();
            e.answer(&query(&long_name(i), "10.0.0.0/24"), 5, &mut out);
            assert_eq!(out, b"END\n");
            assert!(e.rendered.bytes() <= RENDERED_BYTES);
            assert!(e.rendered.len() <= RENDERED_MAX);
        }
        // The oldest went first.
        let (first, last) = (long_name(0), long_name(4999));
        assert!(rendered(&e, &query(&first, "10.0.0.0/24")).is_none());
        assert!(rendered(&e, &query(&last, "10.0.0.0/24")).is_some());
        // Ordinary answers, one per client network, as many as the table has
        // slots: most are kept (some sets fill before others) and readable
        // (the ring holds about as many).
        e.rendered.clear();
        let clients: Vec<String> = (0..RENDERED_MAX)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        let srv = "_sip._udp.voip.example.com";
        for c in &clients {
            out.clear();
            e.answer(&query(srv, c), 5, &mut out);
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 4);
        }
        assert!(e.rendered.bytes() <= RENDERED_BYTES);
        let kept = clients
            .iter()
            .filter(|c| rendered(&e, &query(srv, c)).is_some())
            .count();
        assert!(kept > RENDERED_MAX * 3 / 4, "{kept}");
    }

    #[test]
    fn a_rendered_answer_answers_only_its_own_question() {
        let mut e = engine();
        let srv = "_sip._udp.voip.example.com";
        let q = query(srv, "198.51.100.7/32");
        let mut first = Vec::new();
        e.answer(&q, 5, &mut first);
        let (r, bytes) = {
            let client = q.client.truncate(24);
            let (r, bytes) = e
                .rendered
                .get(&Rendered::hash(&q, 5, &client), Instant::now())
                .unwrap();
            (*r, bytes.to_vec())
        };
        let client: Prefix = "198.51.100.0/24".parse().unwrap();
        assert_eq!(r.answer(&bytes, &q, 5, &client), Some(&first[..]));
        assert_eq!(r.answer(&bytes, &q, 4, &client), None, "ABI");
        let other: Prefix = "198.51.101.0/24".parse().unwrap();
        assert_eq!(r.answer(&bytes, &q, 5, &other), None, "client");
        let mut srv_type = q.clone();
        srv_type.qtype = "SRV";
        assert_eq!(r.answer(&bytes, &srv_type, 5, &client), None, "type");
        let upper = query("_SIP._udp.voip.example.com", "198.51.100.7/32");
        assert_eq!(
            r.answer(&bytes, &upper, 5, &client),
            None,
            "name as written"
        );
        // Asked again: the same bytes, from the cache.
        let mut again = Vec::new();
        e.answer(&q, 5, &mut again);
        assert_eq!(again, first);
        assert_eq!(e.rendered.len(), 1);
    }

    #[test]
    fn answers_are_counted_for_the_node_they_put_first_cached_or_not() {
        let mut e = engine();
        let srv = "_sip._udp.voip.example.com";
        let mut out = Vec::new();
        for client in ["198.51.100.7/32", "198.51.100.7/32", "203.0.113.1/32"] {
            e.answer(&query(srv, client), 5, &mut out);
        }
        // A static name and a name without entries count for no node.
        e.answer(&query("a.voip.example.com", "198.51.100.7/32"), 5, &mut out);
        e.answer(
            &query("nope.voip.example.com", "198.51.100.7/32"),
            5,
            &mut out,
        );
        // Site order with no latency: a (id 100) first, the second answer
        // from the rendered cache.
        assert_eq!(e.first.take(), [(100, 3)]);
        // explain counts nothing.
        e.record_seen = false;
        e.rendered.clear();
        e.answer(&query(srv, "198.51.100.7/32"), 5, &mut out);
        assert!(e.first.is_empty());
    }

    #[test]
    fn decisions_and_seen_networks_stay_in_budget() {
        use seen::{SEEN_BYTES, SEEN_MAX};
        let mut e = engine();
        let topo = Rc::clone(e.topo());
        let n = (3 * DECISIONS_MAX).max(2 * SEEN_MAX);
        for i in 0..n {
            let client: Prefix = format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
            let d = e.decide(&topo, Target::Service(0), &client, Instant::now());
            assert_eq!(d.places().len(), 3);
            e.note_seen(&client, Policy::Latency);
            assert!(e.decisions.bytes() <= DECISIONS_BYTES);
            assert!(e.decisions.len() <= DECISIONS_MAX);
            assert!(e.seen.bytes() <= SEEN_BYTES);
            if i + 1 == DECISIONS_MAX {
                // Decisions of three nodes own no heap: the table fills
                // (some sets before others).
                assert!(
                    e.decisions.len() > DECISIONS_MAX * 3 / 4,
                    "{}",
                    e.decisions.len()
                );
            }
        }
        assert_eq!(e.seen.len(), SEEN_MAX);
        assert_eq!(e.seen.dropped as usize, n - SEEN_MAX);
        // A decision of more nodes than a choice holds inline is counted.
        let d = Decision {
            ranked: vec![
                policy::Ranked {
                    node: 1,
                    tier: 0,
                    weight: 1,
                    reason: policy::Reason::Static,
                };
                100
            ],
            ..Decision::default()
        };
        assert!(Choice::of(&d).heap_size() >= 100 * size_of::<policy::Place>());
        assert_eq!(Choice::of(&Decision::default()).heap_size(), 0);
    }

    #[test]
    fn views_are_kept_for_their_second_and_only_when_small() {
        let e = engine();
        let states = NodeStateRows::default();
        let mut cache = ViewsCache::default();
        let a = cache.get_or(10, || node_views(e.topo(), &states, 10));
        let b = cache.get_or(10, || unreachable!("kept for its second"));
        assert!(Rc::ptr_eq(&a, &b));
        let c = cache.get_or(11, || node_views(e.topo(), &states, 11));
        assert!(!Rc::ptr_eq(&a, &c));
        // Views of a huge site are made each time, not kept.
        let huge = VIEWS_BYTES / size_of::<NodeView>() + 1;
        let view = a[0];
        cache.get_or(12, || vec![view; huge]);
        assert!(cache.0.is_none());
        let mut made = false;
        cache.get_or(12, || {
            made = true;
            Vec::new()
        });
        assert!(made);
    }

    #[test]
    fn lines_and_typed_records_come_from_one_path() {
        let mut e = engine();
        for (qname, qtype) in [
            ("_sip._udp.voip.example.com", "ANY"),
            ("_sip._udp.voip.example.com", "SRV"),
            ("voip.example.com", "ANY"),
            ("_udp.voip.example.com", "ANY"),
            ("b.voip.example.com", "A"),
            ("nothing.voip.example.com", "ANY"),
        ] {
            let mut q = query(qname, "198.51.100.0/24");
            q.qtype = qtype;
            let mut out = Vec::new();
            e.answer(&q, 5, &mut out);
            let typed = e.records(&q);
            // The DATA lines, read back: scope, name, type, TTL, content.
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<Record> = text
                .lines()
                .filter(|l| l.starts_with("DATA\t"))
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    Record {
                        scope: f[1].parse().unwrap(),
                        auth: f[2] == "1",
                        name: f[3].into(),
                        rtype: f[5].into(),
                        ttl: f[6].parse().unwrap(),
                        content: f[8..].join(" "),
                    }
                })
                .collect();
            assert_eq!(lines, typed, "{qname} {qtype}");
            assert!(text.ends_with("END\n"));
            if qname.starts_with("_sip") {
                assert_eq!(typed.len(), 3, "{typed:?}");
                assert!(typed.iter().all(|r| r.rtype == "SRV" && r.scope == 24));
                assert!(
                    typed[0].content.ends_with(" 5060 a.voip.example.com"),
                    "{typed:?}"
                );
            }
        }
    }

    #[test]
    fn lines_follow_the_abi() {
        let mut e = engine();
        let q = query("b.voip.example.com", "198.51.100.0/24");
        let (mut v1, mut v5) = (Vec::new(), Vec::new());
        e.answer(&q, 1, &mut v1);
        e.answer(&q, 5, &mut v5);
        assert_eq!(
            v1,
            b"DATA\tb.voip.example.com\tIN\tA\t3600\t1\t192.0.2.2\nEND\n"
        );
        assert_eq!(
            v5,
            b"DATA\t0\t1\tb.voip.example.com\tIN\tA\t3600\t1\t192.0.2.2\nEND\n"
        );
    }
}
