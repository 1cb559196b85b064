//! The fault soak. A real PowerDNS (the settings of `pdns.conf.example`:
//! three distributor threads, pipe backend and standby) running `pdns-ha
//! pipe` with a real memcached; `pdns-ha collect` against a fake fleet of
//! four FreeSWITCH event sockets and SIP responders on loopback; an agent
//! feeding latency through `pdns-ha ingest` for 2000 client networks, bad
//! lines included; and a steady DNS load over those networks (ECS). Every
//! few seconds one fault starts (see [`Fault`]), and several overlap.
//!
//! Every answer is checked against the state of the fleet when it was
//! asked (see [`Truth`]): a node known down or drained is never in an
//! answer, once the documented delay has passed; the node with the lowest
//! latency for the client's network is alone in the best SRV tier while it
//! is up; a pool answers exactly its `answers` nodes; a static record shows
//! the applied site within the packet cache's TTL. At the end: no metric
//! that `ingest` said it stored is missing from the database, coprocess
//! memory stayed flat, the WAL stayed bounded, nothing panicked.
//!
//! Ignored by a plain `cargo test`: `scripts/soak.sh [MINUTES]` runs it
//! (`PDNS_HA_SOAK_MINUTES`, default 3) and prints the report, which is also
//! written to `PDNS_HA_SOAK_REPORT` when set.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::dnswire::{self, Rdata, Response};
use support::fake_esl::{FakeEsl, FakeEslConfig, Heartbeat, Mode, status_body, xmlstatus_body};
use support::memcached::Memcached;
use support::sip_responder::SipResponder;
use support::{BIN, Db, Pdns, PdnsOpts};

const ZONE: &str = "soak.example.com";
const SRV: &str = "_sip._udp.soak.example.com";
const POOL: &str = "sip.soak.example.com";
const TXT: &str = "version.soak.example.com";
const NODES: [&str; 4] = ["mtl1", "mtl2", "van1", "van2"];
/// Nodes whose addresses a pool answers.
const POOL_ANSWERS: usize = 2;
/// Client networks: the k-th is 10.(k / 256).(k % 256).0/24.
const NETS: usize = 2000;
/// Networks per `ingest` run (four lines each).
const NETS_PER_INGEST: usize = 250;
/// Every network's latency is sent again this often (well under
/// `latency_max_age_s`).
const FEED_CYCLE: Duration = Duration::from_secs(20);
/// The bad lines in every `ingest` run of the agent.
const BAD_LINES_PER_INGEST: usize = 6;

// The collector's settings in the site file.
const PROBE_INTERVAL_MS: u64 = 500;
const PROBE_TIMEOUT_MS: u64 = 200;
const DOWN_AFTER: u64 = 2;
const UP_AFTER: u64 = 2;
const BATCH_MS: u64 = 200;

/// README: "Metric, health and drain changes show in answers within 2
/// seconds".
const TO_ANSWERS_MS: u64 = 2000;
/// Allowed on top of every documented delay (a loaded machine).
const SLACK_MS: u64 = 1000;
/// A node whose probes go unanswered is out of the answers after this long
/// (collector time only: see [`Truth::effective`]).
const GRACE_DOWN: Duration = Duration::from_millis(
    PROBE_INTERVAL_MS * (DOWN_AFTER + 1) + PROBE_TIMEOUT_MS + BATCH_MS + TO_ANSWERS_MS + SLACK_MS,
);
/// A node that answers again is back after this long.
const GRACE_UP: Duration = Duration::from_millis(
    PROBE_INTERVAL_MS * (UP_AFTER + 1) + PROBE_TIMEOUT_MS + BATCH_MS + TO_ANSWERS_MS + SLACK_MS,
);
/// A drain or undrain shows after this long.
const GRACE_DRAIN: Duration = Duration::from_millis(TO_ANSWERS_MS + SLACK_MS);
/// Latency stored by `ingest` shows after this long (published at its
/// exit, decisions kept 1 s, shared ones at most 2 s).
const GRACE_DATA: Duration = Duration::from_secs(4);
/// A static record is cached by PowerDNS for `cache-ttl` (20 s) in its
/// packet cache, refilled from its query cache (`query-cache-ttl`, 20 s),
/// which can have been filled up to 20 s before.
const GRACE_STATIC: Duration = Duration::from_secs(20 + 20 + 2);
/// The collector's first load figures are in after this long.
const GRACE_LOAD: Duration = Duration::from_secs(10);
/// A question unanswered this long is a timeout (PowerDNS gives up on the
/// coprocess after `pipe-timeout`, 2 s).
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// A SERVFAIL or timeout this soon after a coprocess was killed is the
/// killed coprocess's question.
const KILL_SHADOW: Duration = Duration::from_millis(3000);

fn net_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (k / 256) as u8, (k % 256) as u8, 0)
}

/// The node with the lowest latency from network k.
fn preferred(k: usize) -> usize {
    k % NODES.len()
}

/// The latency of node i from network k: 5 ms for the preferred node, 60,
/// 80, 100 ms for the others (separate SRV tiers).
fn rtt_ms(k: usize, i: usize) -> u32 {
    let rank = (i + NODES.len() - preferred(k)) % NODES.len();
    if rank == 0 { 5 } else { 40 + 20 * rank as u32 }
}

/// The sessions FreeSWITCH reports on node i (of 1000, 80 % idle CPU).
fn sessions(i: usize) -> u32 {
    100 + 150 * i as u32
}

/// Node 0's `max_sessions` in site variant v.
fn max_sessions_0(variant: u32) -> u32 {
    if variant.is_multiple_of(2) { 1000 } else { 400 }
}

/// The load policy's free capacity of node i in site variant v: idle CPU
/// share × (max sessions − sessions): 720 or 240, 600, 480, 360 (never
/// within the 10 % that would put two nodes in one tier).
fn free_capacity(variant: u32, i: usize) -> u32 {
    let max = if i == 0 {
        max_sessions_0(variant)
    } else {
        1000
    };
    (max - sessions(i)) * 8 / 10
}

fn host(i: usize) -> String {
    format!("{}.{ZONE}", NODES[i])
}

fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + i as u8)
}

/// The site file, version `variant` (a static TXT record and one node's
/// `max_sessions` change with it).
fn site(variant: u32, esl: &[String], probes: &[String]) -> String {
    let mut s = format!(
        r#"[zone."{ZONE}"]
ns = ["ns1.{ZONE}"]
hostmaster = "hostmaster.{ZONE}"

[collector]
probe_interval_ms = {PROBE_INTERVAL_MS}
probe_timeout_ms = {PROBE_TIMEOUT_MS}
down_after = {DOWN_AFTER}
up_after = {UP_AFTER}
batch_interval_ms = {BATCH_MS}
esl_connect_timeout_ms = 500
esl_reply_timeout_ms = 1000
heartbeat_wait_ms = 2000
registration_poll_interval_ms = 5000
reconnect_min_ms = 100
reconnect_max_ms = 1000
auth_retry_ms = 1000

[[record]]
name = "{TXT}"
type = "TXT"
content = '"site-{variant}"'
"#
    );
    let list = NODES.map(|n| format!("\"{n}\"")).join(", ");
    for (i, n) in NODES.iter().enumerate() {
        let _ = write!(
            s,
            "\n[node.{n}]\nhost = \"{}\"\nipv4 = [\"{}\"]\nesl = \"{}\"\nsip_probe = \"{}\"\n",
            host(i),
            address(i),
            esl[i],
            probes[i]
        );
        if i == 0 {
            let _ = writeln!(s, "max_sessions = {}", max_sessions_0(variant));
        }
    }
    let _ = write!(
        s,
        "\n[service.\"{SRV}\"]\npolicy = \"latency\"\nport = 5060\nnodes = [{list}]\n\
         \n[pool.\"{POOL}\"]\npolicy = \"load\"\nnodes = [{list}]\nanswers = {POOL_ANSWERS}\n"
    );
    s
}

// ------------------------------------------------------------------ truth

/// What the soak did to one node, and when.
#[derive(Clone, Debug)]
struct NodeState {
    /// Its SIP responder stopped answering at this instant (and still is).
    silent_since: Option<Instant>,
    /// It answers probes since.
    answering_since: Instant,
    drained_since: Option<Instant>,
    undrained_since: Instant,
    /// `node drain` or `undrain` is running: in transition.
    drain_changing: bool,
}

/// The state of the fleet as the soak made it: what every answer is
/// checked against.
struct Truth {
    nodes: Vec<NodeState>,
    /// Spans during which the collector could not act (killed, not yet
    /// restarted) or the database could not be written: health delays do
    /// not run during them.
    disturbed: Vec<(Instant, Option<Instant>)>,
    /// When the soak started (the collector's first load figures).
    started: Instant,
    /// An `apply` is running.
    applying: bool,
    /// Site variants: (variant, apply started, apply ended).
    variants: Vec<(u32, Instant, Instant)>,
    /// When each network's latency was first stored.
    fed: Vec<Option<Instant>>,
    /// When coprocesses were killed.
    kills: Vec<Instant>,
}

impl Truth {
    fn new(now: Instant) -> Truth {
        Truth {
            nodes: vec![
                NodeState {
                    silent_since: None,
                    answering_since: now,
                    drained_since: None,
                    undrained_since: now,
                    drain_changing: false,
                };
                NODES.len()
            ],
            disturbed: Vec::new(),
            started: now,
            applying: false,
            variants: vec![(0, now, now)],
            fed: vec![None; NETS],
            kills: Vec::new(),
        }
    }

    /// Time from `from` to `to` outside the disturbed spans.
    fn effective(&self, from: Instant, to: Instant) -> Duration {
        let mut d = to.saturating_duration_since(from);
        for &(a, b) in &self.disturbed {
            let (a, b) = (a.max(from), b.unwrap_or(to).min(to));
            d = d.saturating_sub(b.saturating_duration_since(a));
        }
        d
    }

    /// Node i must not be in an answer to a question sent at `sent`.
    fn must_be_out(&self, i: usize, sent: Instant) -> bool {
        let n = &self.nodes[i];
        n.silent_since
            .is_some_and(|t| t <= sent && self.effective(t, sent) >= GRACE_DOWN)
            || !n.drain_changing
                && n.drained_since
                    .is_some_and(|t| sent.saturating_duration_since(t) >= GRACE_DRAIN)
    }

    /// Node i is up, undrained and has been long enough to be answered.
    fn settled_in(&self, i: usize, sent: Instant) -> bool {
        let n = &self.nodes[i];
        n.silent_since.is_none()
            && n.answering_since <= sent
            && self.effective(n.answering_since, sent) >= GRACE_UP
            && n.drained_since.is_none()
            && !n.drain_changing
            && sent.saturating_duration_since(n.undrained_since) >= GRACE_DRAIN
    }

    /// The nodes in, if every node is settled in or out for a question sent
    /// at `sent` (none in between).
    fn settled(&self, sent: Instant) -> Option<Vec<usize>> {
        let mut inn = Vec::new();
        for i in 0..NODES.len() {
            if self.settled_in(i, sent) {
                inn.push(i);
            } else if !self.must_be_out(i, sent) {
                return None;
            }
        }
        Some(inn)
    }

    /// The site variant in force for a question sent at `sent`, if it had
    /// been for long enough to show in dynamic answers.
    fn variant_settled(&self, sent: Instant) -> Option<u32> {
        if self.applying || self.variants.iter().any(|&(_, _, ended)| ended > sent) {
            return None;
        }
        let &(v, _, ended) = self.variants.last()?;
        (sent.saturating_duration_since(ended) >= GRACE_DRAIN).then_some(v)
    }

    /// How long before `sent` the site variant named by `txt` had been
    /// replaced (zero if it was still in force); None if no applied site
    /// has it.
    fn txt_staleness(&self, txt: &str, sent: Instant) -> Option<Duration> {
        let j = self
            .variants
            .iter()
            .position(|&(v, _, _)| txt == format!("site-{v}"))?;
        Some(match self.variants.get(j + 1) {
            Some(&(_, _, replaced)) => sent.saturating_duration_since(replaced),
            None => Duration::ZERO,
        })
    }

    fn near_kill(&self, sent: Instant) -> bool {
        self.kills.iter().any(|&k| {
            sent + Duration::from_millis(100) >= k
                && sent.saturating_duration_since(k) <= KILL_SHADOW
        })
    }
}

// ------------------------------------------------------------------ load

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ask {
    Srv(usize),
    Pool(usize),
    Txt(usize),
}

impl Ask {
    fn net(self) -> usize {
        match self {
            Ask::Srv(k) | Ask::Pool(k) | Ask::Txt(k) => k,
        }
    }
}

#[derive(Default, Debug)]
struct LoadCounts {
    sent: u64,
    good: u64,
    servfail_after_kill: u64,
    servfail_other: u64,
    timeouts_after_kill: u64,
    timeouts_other: u64,
    unmatched: u64,
    /// Wrong answers by reason.
    wrong: BTreeMap<String, u64>,
    /// The first wrong answers, in full.
    examples: Vec<String>,
    /// Checks that applied: the preferred node was required first.
    checked_first: u64,
    /// A node was required to be out.
    checked_out: u64,
    /// Every node was settled: the whole answer was checked.
    checked_exact: u64,
    /// The longest a static answer was older than the applied site.
    static_staleness: Duration,
}

impl LoadCounts {
    fn wrong_total(&self) -> u64 {
        self.wrong.values().sum()
    }

    /// Counts a wrong answer; keeps the first three of each reason.
    fn wrong(&mut self, reason: &str, detail: String) {
        let n = self.wrong.entry(reason.to_string()).or_default();
        *n += 1;
        if *n <= 3 {
            self.examples.push(format!("{reason}: {detail}"));
        }
    }
}

/// Checks one response; returns the reason it is wrong, if it is.
fn check(
    truth: &Truth,
    ask: Ask,
    sent: Instant,
    r: &Response,
    counts: &mut LoadCounts,
) -> Option<&'static str> {
    if r.truncated {
        return Some("truncated");
    }
    if r.rcode != dnswire::RCODE_NOERROR {
        return Some(match r.rcode {
            3 => "rcode NXDOMAIN",
            5 => "rcode REFUSED",
            _ => "rcode other than NOERROR, SERVFAIL, NXDOMAIN, REFUSED",
        });
    }
    let out: Vec<usize> = (0..NODES.len())
        .filter(|&i| truth.must_be_out(i, sent))
        .collect();
    if !out.is_empty() && !matches!(ask, Ask::Txt(_)) {
        counts.checked_out += 1;
    }
    match ask {
        Ask::Srv(k) => {
            let mut seen = Vec::new();
            for a in &r.answers {
                let Rdata::Srv {
                    priority,
                    port,
                    target,
                    ..
                } = a
                else {
                    return Some("not an SRV record");
                };
                let Some(i) = (0..NODES.len()).find(|&i| host(i) == *target) else {
                    return Some("SRV target not in the site");
                };
                if *port != 5060 || seen.iter().any(|&(j, _)| j == i) {
                    return Some("SRV port or duplicate");
                }
                seen.push((i, *priority));
            }
            if seen.is_empty() {
                return Some("no SRV record");
            }
            if seen.iter().any(|(i, _)| out.contains(i)) {
                return Some("a node known down or drained is answered");
            }
            let ecs_ok = r.ecs.as_ref().is_some_and(|e| {
                e.family == 1
                    && e.source == 24
                    && (1..=24).contains(&e.scope)
                    && e.address == net_addr(k).octets()[..3]
            });
            if !ecs_ok {
                return Some("ECS scope");
            }
            let p = preferred(k);
            if truth.fed[k].is_some_and(|t| sent.saturating_duration_since(t) >= GRACE_DATA)
                && truth.settled_in(p, sent)
            {
                counts.checked_first += 1;
                let Some(&(_, best)) = seen.iter().find(|&&(i, _)| i == p) else {
                    return Some("the nearest node, up, is missing");
                };
                if seen.iter().any(|&(i, prio)| i != p && prio <= best) {
                    return Some("the nearest node, up, is not alone in the best tier");
                }
            }
            // With every node settled in or out: exactly the nodes in, in
            // latency order, one tier each.
            if let Some(inn) = truth.settled(sent)
                && truth.fed[k].is_some_and(|t| sent.saturating_duration_since(t) >= GRACE_DATA)
            {
                counts.checked_exact += 1;
                let mut want = inn;
                want.sort_by_key(|&i| rtt_ms(k, i));
                let mut got = seen.clone();
                got.sort_by_key(|&(_, prio)| prio);
                let tiers_distinct = got.windows(2).all(|w| w[0].1 < w[1].1);
                if got.iter().map(|&(i, _)| i).collect::<Vec<_>>() != want || !tiers_distinct {
                    return Some("SRV: not the nodes up in latency order");
                }
            }
        }
        Ask::Pool(_) => {
            let mut seen = Vec::new();
            for a in &r.answers {
                let Rdata::A(ip) = a else {
                    return Some("not an A record");
                };
                let Some(i) = (0..NODES.len()).find(|&i| address(i) == *ip) else {
                    return Some("address not in the site");
                };
                if seen.contains(&i) {
                    return Some("duplicate address");
                }
                seen.push(i);
            }
            if seen.len() != POOL_ANSWERS {
                return Some("pool: not `answers` addresses");
            }
            if seen.iter().any(|i| out.contains(i)) {
                return Some("a node known down or drained is answered");
            }
            // With every node settled in or out and the site's capacities
            // in force: the two nodes in with the most free capacity.
            if let Some(mut inn) = truth.settled(sent)
                && let Some(v) = truth.variant_settled(sent)
                && sent.saturating_duration_since(truth.started) >= GRACE_LOAD
            {
                counts.checked_exact += 1;
                inn.sort_by_key(|&i| std::cmp::Reverse(free_capacity(v, i)));
                inn.truncate(POOL_ANSWERS);
                inn.sort();
                seen.sort();
                if seen != inn {
                    return Some("pool: not the nodes up with the most free capacity");
                }
            }
        }
        Ask::Txt(_) => {
            let [Rdata::Txt(t)] = r.answers.as_slice() else {
                return Some("TXT: not one record");
            };
            let Some(stale) = truth.txt_staleness(t, sent) else {
                return Some("TXT: never applied");
            };
            counts.static_staleness = counts.static_staleness.max(stale);
            if stale > GRACE_STATIC {
                return Some("TXT: an old site, past the caches' TTL");
            }
        }
    }
    None
}

struct InFlight {
    ask: Ask,
    sent: Instant,
}

/// Sends `rate` questions per second (at most `inflight` unanswered) until
/// `stop`, checking every answer.
fn run_load(
    port: u16,
    rate: u32,
    inflight: usize,
    truth: Arc<Mutex<Truth>>,
    counts: Arc<Mutex<LoadCounts>>,
    stop: Arc<AtomicBool>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let mut pending: HashMap<u16, InFlight> = HashMap::new();
    let mut rng = Rng::new(0x5eed_1234);
    let mut next_id = 1u16;
    let step = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut next_send = Instant::now();
    let mut buf = [0u8; 4096];
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) || !pending.is_empty() {
        let now = Instant::now();
        // Every question due is sent (a slow turn of the loop does not
        // lower the rate), but a stall is not made up in a burst.
        if next_send + Duration::from_millis(200) < now {
            next_send = now;
        }
        while !stop.load(Ordering::SeqCst) && now >= next_send && pending.len() < inflight {
            next_send += step;
            let k = rng.below(NETS as u64) as usize;
            n += 1;
            let (ask, qname, qtype) = match n % 20 {
                0 => (Ask::Txt(k), TXT, dnswire::TYPE_TXT),
                1..=3 => (Ask::Pool(k), POOL, dnswire::TYPE_A),
                _ => (Ask::Srv(k), SRV, dnswire::TYPE_SRV),
            };
            while pending.contains_key(&next_id) {
                next_id = next_id.wrapping_add(1);
            }
            let q = dnswire::build_query(next_id, qname, qtype, net_addr(ask.net()));
            if sock.send(&q).is_ok() {
                pending.insert(next_id, InFlight { ask, sent: now });
                counts.lock().unwrap().sent += 1;
            }
            next_id = next_id.wrapping_add(1);
        }
        match sock.recv(&mut buf) {
            Ok(len) => {
                let r = dnswire::parse_response(&buf[..len]);
                let Some(f) = r.as_ref().and_then(|r| pending.remove(&r.id)) else {
                    counts.lock().unwrap().unmatched += 1;
                    continue;
                };
                // Checked at once: the truth is read as it is now.
                let r = r.unwrap();
                let truth = truth.lock().unwrap();
                let mut c = counts.lock().unwrap();
                if r.rcode == dnswire::RCODE_SERVFAIL {
                    if truth.near_kill(f.sent) {
                        c.servfail_after_kill += 1;
                    } else {
                        c.servfail_other += 1;
                        if c.examples.len() < 20 {
                            let ago = f.sent.elapsed();
                            c.examples
                                .push(format!("SERVFAIL: {:?} asked {ago:?} ago", f.ask));
                        }
                    }
                    continue;
                }
                match check(&truth, f.ask, f.sent, &r, &mut c) {
                    None => c.good += 1,
                    Some(reason) => {
                        let detail = format!(
                            "{:?} asked at {:.1} s: {:?}",
                            f.ask,
                            f.sent.duration_since(truth.started).as_secs_f64(),
                            r
                        );
                        c.wrong(reason, detail);
                    }
                }
            }
            Err(_) => {
                let now = Instant::now();
                let late: Vec<u16> = pending
                    .iter()
                    .filter(|(_, f)| now.duration_since(f.sent) > QUERY_TIMEOUT)
                    .map(|(&id, _)| id)
                    .collect();
                if late.is_empty() {
                    continue;
                }
                let truth = truth.lock().unwrap();
                let mut c = counts.lock().unwrap();
                for id in late {
                    let f = pending.remove(&id).unwrap();
                    if truth.near_kill(f.sent) {
                        c.timeouts_after_kill += 1;
                    } else {
                        c.timeouts_other += 1;
                        if c.examples.len() < 20 {
                            c.examples.push(format!("timeout: {:?}", f.ask));
                        }
                    }
                }
            }
        }
    }
}

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// ------------------------------------------------------------------ the agent

#[derive(Default, Debug)]
struct IngestCounts {
    runs: u64,
    /// Runs that stopped with status 2 (the database could not be written).
    refused_runs: u64,
    stored: u64,
    bad_lines: u64,
    /// What `ingest` said does not match what it was given.
    mismatches: Vec<String>,
    /// Samples stored per (network, node).
    accepted: HashMap<(usize, usize), u64>,
}

/// One `ingest` run: `lines` (each `Some((k, node))` if it is a good
/// latency line, `None` if bad) as `input`. Files what it stored; returns
/// the lines not stored (to send again), empty on success.
fn ingest_run(
    db: &Path,
    input: &[u8],
    lines: &[Option<(usize, usize)>],
    bad_expected: usize,
    truth: &Mutex<Truth>,
    counts: &Mutex<IngestCounts>,
) -> Vec<(usize, usize)> {
    let o = support::pdns_ha_stdin_bytes(db, &["ingest"], input);
    let err = support::stderr(&o);
    let good = lines.iter().filter(|l| l.is_some()).count();
    let mut c = counts.lock().unwrap();
    c.runs += 1;
    let code = o.status.code();
    // "N metric(s) stored, M bad line(s)"
    let summary = err.lines().rev().find_map(|l| {
        let (n, rest) = l.split_once(" metric(s) stored, ")?;
        let m = rest.strip_suffix(" bad line(s)")?;
        Some((n.parse::<usize>().ok()?, m.parse::<usize>().ok()?))
    });
    let stored_lines: usize = match (code, summary) {
        (Some(0 | 1), Some((n, m))) => {
            if n != good || m != bad_expected || code != Some(u8::from(m > 0).into()) {
                c.mismatches.push(format!(
                    "stored {n} of {good} good lines, {m} bad of {bad_expected}, status {code:?}"
                ));
            }
            c.bad_lines += m as u64;
            lines.len()
        }
        (Some(2), _) => {
            c.refused_runs += 1;
            // "lines A-B of stdin were NOT stored (...); S metrics before them were stored."
            let first = err.lines().find_map(|l| {
                let rest = l.split_once("lines ")?.1;
                let (a, _) = rest.split_once('-')?;
                if !l.contains("NOT stored") {
                    return None;
                }
                a.parse::<usize>().ok()
            });
            match first {
                Some(a) => a.saturating_sub(1),
                None => {
                    c.mismatches
                        .push(format!("status 2 without the lines: {err}"));
                    0
                }
            }
        }
        _ => {
            c.mismatches.push(format!("status {code:?}: {err}"));
            0
        }
    };
    let now = Instant::now();
    let mut truth = truth.lock().unwrap();
    let mut stored = 0;
    for &(k, i) in lines[..stored_lines].iter().flatten() {
        *c.accepted.entry((k, i)).or_default() += 1;
        stored += 1;
        // The preferred node is checked once every node has data.
        if truth.fed[k].is_none() && (0..NODES.len()).all(|j| c.accepted.contains_key(&(k, j))) {
            truth.fed[k] = Some(now);
        }
    }
    c.stored += stored;
    lines[stored_lines.min(lines.len())..]
        .iter()
        .flatten()
        .copied()
        .collect()
}

/// The agent: every [`FEED_CYCLE`], the latency of every network to every
/// node, `NETS_PER_INGEST` networks per `ingest` run, each run with bad
/// lines among the good ones; lines not stored are sent again.
fn run_agent(
    db: PathBuf,
    truth: Arc<Mutex<Truth>>,
    counts: Arc<Mutex<IngestCounts>>,
    stop: Arc<AtomicBool>,
) {
    let mut retry: Vec<(usize, usize)> = Vec::new();
    let mut rng = Rng::new(0xa6e7);
    while !stop.load(Ordering::SeqCst) {
        let cycle = Instant::now();
        for chunk in 0..NETS.div_ceil(NETS_PER_INGEST) {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let mut good: Vec<(usize, usize)> = std::mem::take(&mut retry);
            for k in chunk * NETS_PER_INGEST..((chunk + 1) * NETS_PER_INGEST).min(NETS) {
                good.extend((0..NODES.len()).map(|i| (k, i)));
            }
            let (input, lines) = agent_input(&good, &mut rng);
            retry = ingest_run(&db, &input, &lines, BAD_LINES_PER_INGEST, &truth, &counts);
            if !retry.is_empty() {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        while cycle.elapsed() < FEED_CYCLE && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The text of an agent's `ingest` run: the good latency lines with
/// [`BAD_LINES_PER_INGEST`] bad ones spread among them.
fn agent_input(good: &[(usize, usize)], rng: &mut Rng) -> (Vec<u8>, Vec<Option<(usize, usize)>>) {
    let mut input = Vec::new();
    let mut lines = Vec::new();
    let every = good.len() / BAD_LINES_PER_INGEST + 1;
    let mut bad = 0;
    for (j, &(k, i)) in good.iter().enumerate() {
        if j % every == every / 2 && bad < BAD_LINES_PER_INGEST {
            input.extend_from_slice(&bad_line(bad, rng));
            input.push(b'\n');
            lines.push(None);
            bad += 1;
        }
        let _ = writeln!(
            input,
            "latency {} {} {}",
            NODES[i],
            net_addr(k),
            rtt_ms(k, i)
        );
        lines.push(Some((k, i)));
    }
    while bad < BAD_LINES_PER_INGEST {
        input.extend_from_slice(&bad_line(bad, rng));
        input.push(b'\n');
        lines.push(None);
        bad += 1;
    }
    (input, lines)
}

/// The j-th kind of bad line (no newline inside).
fn bad_line(j: usize, rng: &mut Rng) -> Vec<u8> {
    match j % BAD_LINES_PER_INGEST {
        0 => {
            let mut b = rng.bytes(40);
            b.retain(|&c| c != b'\n');
            b.insert(0, 0xff); // never UTF-8
            b
        }
        1 => vec![b'x'; 20_000],
        2 => b"latency ghost 10.0.0.1 5".to_vec(),
        3 => format!("latency {} 10.0.0.1 -5", NODES[0]).into_bytes(),
        4 => format!("latency {} 10.0.0.1 5 99999999999", NODES[1]).into_bytes(),
        _ => format!("health {} sideways", NODES[2]).into_bytes(),
    }
}

// ------------------------------------------------------------------ faults

/// The faults, started one after the other, round robin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `apply` of a changed site (a static record, a node's capacity).
    Apply,
    /// `node drain`, `node undrain` 6 s later.
    Drain,
    /// A node's SIP responder goes silent for 10 s.
    SipSilent,
    /// The collector killed with SIGKILL, restarted 2 s later.
    CollectorKill,
    /// memcached killed, restarted on its port 2 s later.
    MemcachedKill,
    /// memcached frozen with SIGSTOP for 3 s.
    MemcachedStop,
    /// An event socket accepts and never answers, for 5 s.
    EslHang,
    /// An event socket closes in the middle of a reply, for 5 s.
    EslCloseMidFrame,
    /// FreeSWITCH refuses the password, for 5 s.
    EslBadPassword,
    /// The database directory and files read-only (immutable), 3 s.
    DbReadOnly,
    /// A coprocess killed with SIGKILL (PowerDNS starts another).
    CoprocessKill,
    /// An `ingest` run of random bytes, huge lines and NULs around a few
    /// good lines.
    IngestGarbage,
    /// A coprocess killed while the database is read-only: the new one
    /// must answer.
    CoprocessKillReadOnly,
}

const FAULTS: [Fault; 13] = [
    Fault::SipSilent,
    Fault::Apply,
    Fault::CoprocessKill,
    Fault::MemcachedStop,
    Fault::Drain,
    Fault::EslHang,
    Fault::CollectorKill,
    Fault::IngestGarbage,
    Fault::MemcachedKill,
    Fault::EslBadPassword,
    Fault::DbReadOnly,
    Fault::EslCloseMidFrame,
    Fault::CoprocessKillReadOnly,
];

/// Something to undo at a given instant.
enum Undo {
    Undrain(usize),
    SipAnswer(usize),
    RestartCollector,
    RestartMemcached,
    ContinueMemcached,
    EslNormal(usize),
    Writable,
}

/// What the faults act on, and what they did.
struct Rig {
    db: Db,
    fleet: Vec<(FakeEsl, SipResponder)>,
    esl_addrs: Vec<String>,
    probes: Vec<String>,
    variant: u32,
    collector: Option<Child>,
    collector_log: PathBuf,
    memcached: Option<Memcached>,
    mc_port: u16,
    pdns: Pdns,
    truth: Arc<Mutex<Truth>>,
    ingest_counts: Arc<Mutex<IngestCounts>>,
    undo: Vec<(Instant, Undo)>,
    rng: Rng,
    /// Which node each kind of node fault takes next (round robin).
    node_turn: [usize; 3],
    faults: BTreeMap<Fault, u64>,
    skipped: BTreeMap<Fault, u64>,
    errors: Vec<String>,
    /// Good lines stored by the garbage runs.
    garbage_good: u64,
}

impl Rig {
    fn later(&mut self, secs: f64, u: Undo) {
        self.undo
            .push((Instant::now() + Duration::from_secs_f64(secs), u));
    }

    fn read_only(&self, on: bool) -> bool {
        support::set_read_only(self.db.dir.path(), on)
    }

    /// Ends the open disturbed span (collector back, database writable)
    /// `after` from now.
    fn end_disturbance(&self, after: Duration) {
        let mut t = self.truth.lock().unwrap();
        if let Some(d) = t.disturbed.iter_mut().rev().find(|d| d.1.is_none()) {
            d.1 = Some(Instant::now() + after);
        }
    }

    /// `node drain` or `node undrain`: the node is in transition while the
    /// command runs. False if the command failed (read-only database).
    fn set_drain(&mut self, i: usize, drain: bool) -> bool {
        self.truth.lock().unwrap().nodes[i].drain_changing = true;
        let o = self
            .db
            .run(&["node", if drain { "drain" } else { "undrain" }, NODES[i]]);
        let mut t = self.truth.lock().unwrap();
        let n = &mut t.nodes[i];
        n.drain_changing = false;
        if o.status.success() {
            if drain {
                n.drained_since = Some(Instant::now());
            } else {
                n.drained_since = None;
                n.undrained_since = Instant::now();
            }
        }
        o.status.success()
    }

    /// Starts one fault; false if it could not start now.
    fn start(&mut self, fault: Fault) -> bool {
        match fault {
            Fault::Apply => {
                self.variant += 1;
                let began = Instant::now();
                self.truth.lock().unwrap().applying = true;
                let o = self
                    .db
                    .apply(&site(self.variant, &self.esl_addrs, &self.probes));
                let mut t = self.truth.lock().unwrap();
                t.applying = false;
                if o.status.success() {
                    t.variants.push((self.variant, began, Instant::now()));
                } else {
                    self.errors
                        .push(format!("apply failed: {}", support::stderr(&o)));
                    self.variant -= 1;
                }
            }
            Fault::Drain => {
                let i = self.node_turn[0] % NODES.len();
                self.node_turn[0] += 1;
                if self.set_drain(i, true) {
                    self.later(6.0, Undo::Undrain(i));
                } else {
                    self.errors.push(format!("drain {} failed", NODES[i]));
                }
            }
            Fault::SipSilent => {
                let i = (self.node_turn[1] + 1) % NODES.len();
                let mut t = self.truth.lock().unwrap();
                if t.nodes.iter().any(|n| n.silent_since.is_some()) {
                    return false;
                }
                self.node_turn[1] += 1;
                self.fleet[i].1.set_status(0);
                t.nodes[i].silent_since = Some(Instant::now());
                drop(t);
                self.later(10.0, Undo::SipAnswer(i));
            }
            Fault::CollectorKill => {
                let Some(mut c) = self.collector.take() else {
                    return false;
                };
                let _ = c.kill();
                let _ = c.wait();
                self.truth
                    .lock()
                    .unwrap()
                    .disturbed
                    .push((Instant::now(), None));
                self.later(2.0, Undo::RestartCollector);
            }
            Fault::MemcachedKill => {
                let Some(mut m) = self.memcached.take() else {
                    return false;
                };
                m.kill();
                self.later(2.0, Undo::RestartMemcached);
            }
            Fault::MemcachedStop => {
                let Some(m) = &self.memcached else {
                    return false;
                };
                signal(m.pid(), "-STOP");
                self.later(3.0, Undo::ContinueMemcached);
            }
            Fault::EslHang | Fault::EslCloseMidFrame | Fault::EslBadPassword => {
                let i = self.node_turn[2] % NODES.len();
                self.node_turn[2] += 1;
                self.fleet[i].0.update(|c| match fault {
                    Fault::EslHang => c.mode = Mode::HangAfterAccept,
                    Fault::EslCloseMidFrame => c.mode = Mode::CloseMidFrame,
                    _ => c.password = "not-the-password".into(),
                });
                self.fleet[i].0.drop_connections();
                self.later(5.0, Undo::EslNormal(i));
            }
            Fault::DbReadOnly | Fault::CoprocessKillReadOnly => {
                if !self.read_only(true) {
                    self.read_only(false);
                    return false;
                }
                self.truth
                    .lock()
                    .unwrap()
                    .disturbed
                    .push((Instant::now(), None));
                self.later(3.0, Undo::Writable);
                if fault == Fault::CoprocessKillReadOnly {
                    std::thread::sleep(Duration::from_millis(200));
                    kill_coprocess(&self.pdns, &self.truth, &mut self.rng);
                }
            }
            Fault::CoprocessKill => kill_coprocess(&self.pdns, &self.truth, &mut self.rng),
            Fault::IngestGarbage => {
                self.garbage_good += ingest_garbage(
                    &self.db.path,
                    &self.truth,
                    &self.ingest_counts,
                    &mut self.rng,
                );
            }
        }
        true
    }

    /// A collector that exited by itself is an error; it is started again,
    /// as systemd's `Restart=on-failure` would.
    fn watch_collector(&mut self) {
        let Some(c) = &mut self.collector else {
            return;
        };
        if let Ok(Some(status)) = c.try_wait() {
            self.errors.push(format!(
                "the collector exited by itself ({status}) at {:.1} s; started again",
                self.truth.lock().unwrap().started.elapsed().as_secs_f64()
            ));
            self.collector = Some(start_collector(&self.db.path, &self.collector_log));
        }
    }

    /// Undoes what is due by `now`.
    fn undo_due(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.undo)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.undo = later;
        for (_, u) in due {
            match u {
                Undo::Undrain(i) => {
                    if !self.set_drain(i, false) {
                        // The database is read-only at that moment.
                        self.later(0.5, Undo::Undrain(i));
                    }
                }
                Undo::SipAnswer(i) => {
                    self.fleet[i].1.set_status(200);
                    let mut t = self.truth.lock().unwrap();
                    t.nodes[i].silent_since = None;
                    t.nodes[i].answering_since = Instant::now();
                }
                Undo::RestartCollector => {
                    self.collector = Some(start_collector(&self.db.path, &self.collector_log));
                    // Its first probes and batch.
                    self.end_disturbance(Duration::from_secs(1));
                }
                Undo::RestartMemcached => self.memcached = Some(Memcached::start(self.mc_port)),
                Undo::ContinueMemcached => {
                    if let Some(m) = &self.memcached {
                        signal(m.pid(), "-CONT");
                    }
                }
                Undo::EslNormal(i) => {
                    self.fleet[i].0.update(|c| {
                        c.mode = Mode::Normal;
                        c.password = esl_config().password;
                    });
                    self.fleet[i].0.drop_connections();
                }
                Undo::Writable => {
                    if !self.read_only(false) {
                        self.errors
                            .push("could not make the database writable again".into());
                    }
                    self.end_disturbance(Duration::from_millis(500));
                }
            }
        }
    }

    /// Undoes every fault now.
    fn undo_all(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.undo.is_empty() && Instant::now() < deadline {
            let now = Instant::now();
            for u in &mut self.undo {
                u.0 = u.0.min(now);
            }
            self.undo_due(now);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Kills a process with a signal.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

fn start_collector(db: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("collector log");
    Command::new(BIN)
        .args(["collect", "--db"])
        .arg(db)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start the collector")
}

/// Memory of one process from /proc/PID/status: (VmRSS, RssAnon) in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

fn esl_config() -> FakeEslConfig {
    FakeEslConfig {
        heartbeat: Some(Heartbeat {
            session_count: 100,
            max_sessions: 1000,
            idle_cpu: 80.0,
        }),
        heartbeat_every: Duration::from_secs(1),
        status_body: status_body(100, 1000, 80.0),
        xmlstatus: vec![("internal".into(), xmlstatus_body(&[]))],
        ..Default::default()
    }
}

#[test]
#[ignore = "the fault soak: run by scripts/soak.sh [MINUTES]"]
fn soak() {
    require_pdns!();
    let minutes: f64 = std::env::var("PDNS_HA_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(3.0);
    let rate: u32 = std::env::var("PDNS_HA_SOAK_QPS")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(300);
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    // PDNS_HA_SOAK_FAULTS=DbReadOnly,CoprocessKill: only these, in turn.
    let only: Vec<Fault> = match std::env::var("PDNS_HA_SOAK_FAULTS") {
        Ok(list) => list
            .split(',')
            .map(|name| {
                *FAULTS
                    .iter()
                    .find(|f| format!("{f:?}") == name.trim())
                    .unwrap_or_else(|| {
                        panic!("PDNS_HA_SOAK_FAULTS: no fault {name}; faults: {FAULTS:?}")
                    })
            })
            .collect(),
        Err(_) => FAULTS.to_vec(),
    };
    let fault_every = Duration::from_secs(4);
    eprintln!("soak: {minutes} min, {rate} questions/s, a fault every {fault_every:?}");

    // The fleet.
    let fleet: Vec<(FakeEsl, SipResponder)> = (0..NODES.len())
        .map(|i| {
            let esl = FakeEsl::start(esl_config());
            esl.set_load(sessions(i), 1000, 80.0);
            (esl, SipResponder::start(200))
        })
        .collect();
    let esl_addrs: Vec<String> = fleet.iter().map(|(e, _)| e.addr_string()).collect();
    let probes: Vec<String> = fleet.iter().map(|(_, s)| s.probe_spec()).collect();

    let db = Db::new("soak");
    db.apply_ok(&site(0, &esl_addrs, &probes));
    let collector_log = db.dir.path().join("collector.log");
    let collector = Some(start_collector(&db.path, &collector_log));
    let mc_port = support::free_port();
    let memcached = Some(Memcached::start(mc_port));
    let mut opts = PdnsOpts::abi(5);
    opts.pipe_args = vec!["--memcached".into(), format!("127.0.0.1:{mc_port}")];
    let pdns = Pdns::start(&db.path, opts);

    let start = Instant::now();
    let truth = Arc::new(Mutex::new(Truth::new(start)));
    let load_counts = Arc::new(Mutex::new(LoadCounts::default()));
    let ingest_counts = Arc::new(Mutex::new(IngestCounts::default()));
    let stop_load = Arc::new(AtomicBool::new(false));
    let stop_agent = Arc::new(AtomicBool::new(false));
    let agent = {
        let (db, t, c, s) = (
            db.path.clone(),
            truth.clone(),
            ingest_counts.clone(),
            stop_agent.clone(),
        );
        std::thread::spawn(move || run_agent(db, t, c, s))
    };
    let load = {
        let (t, c, s) = (truth.clone(), load_counts.clone(), stop_load.clone());
        let port = pdns.port;
        std::thread::spawn(move || run_load(port, rate, 16, t, c, s))
    };

    let wal = PathBuf::from(format!("{}-wal", db.path.display()));
    let mut rig = Rig {
        db,
        fleet,
        esl_addrs,
        probes,
        variant: 0,
        collector,
        collector_log,
        memcached,
        mc_port,
        pdns,
        truth: truth.clone(),
        ingest_counts: ingest_counts.clone(),
        undo: Vec::new(),
        rng: Rng::new(0xfa17),
        node_turn: [0; 3],
        faults: BTreeMap::new(),
        skipped: BTreeMap::new(),
        errors: Vec::new(),
        garbage_good: 0,
    };
    let mut memory: Vec<(Duration, u64, u64, usize)> = Vec::new();
    let mut wal_max = 0u64;
    let mut next_fault = start + Duration::from_secs(5);
    let mut fault_no = 0usize;
    let mut next_sample = start;
    while start.elapsed() < run_for {
        let now = Instant::now();
        rig.undo_due(now);
        rig.watch_collector();
        // Samples: coprocess memory and WAL size.
        if now >= next_sample {
            next_sample = now + Duration::from_secs(5);
            let mems: Vec<(u64, u64)> = rig
                .pdns
                .coprocesses()
                .into_iter()
                .filter_map(memory_kib)
                .collect();
            if !mems.is_empty() {
                let rss = mems.iter().map(|m| m.0).max().unwrap();
                let anon = mems.iter().map(|m| m.1).max().unwrap();
                memory.push((start.elapsed(), rss, anon, mems.len()));
            }
        }
        wal_max = wal_max.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        if now >= next_fault {
            next_fault = now + fault_every;
            let fault = only[fault_no % only.len()];
            fault_no += 1;
            let ran = rig.start(fault);
            *(if ran {
                &mut rig.faults
            } else {
                &mut rig.skipped
            })
            .entry(fault)
            .or_default() += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // Wind down: undo every fault, let the answers settle, stop the load.
    rig.undo_all();
    stop_agent.store(true, Ordering::SeqCst);
    agent.join().expect("the agent thread");
    std::thread::sleep(Duration::from_secs(2));
    stop_load.store(true, Ordering::SeqCst);
    load.join().expect("the load thread");
    let elapsed = start.elapsed();
    let final_mem: Vec<(u64, u64)> = rig
        .pdns
        .coprocesses()
        .into_iter()
        .filter_map(memory_kib)
        .collect();

    // Metrics lost: every sample ingest said it stored is counted in the
    // database's /24 entry of its network and node.
    let ic = ingest_counts.lock().unwrap();
    let conn = rusqlite::Connection::open(&rig.db.path).expect("open the database");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut in_db: HashMap<(usize, usize), u64> = HashMap::new();
    let mut st = conn
        .prepare(
            "SELECT t.name, l.net, l.samples FROM latency l JOIN topology t
             ON t.kind = 'node' AND t.id = l.node_id WHERE l.family = 4 AND l.plen = 24",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (name, net, samples) = row.unwrap();
        let i = NODES.iter().position(|n| *n == name).expect("a site node");
        in_db.insert((net_index(net), i), samples as u64);
    }
    let mut lost = 0u64;
    let mut extra = 0u64;
    for (key, &n) in &ic.accepted {
        let have = in_db.get(key).copied().unwrap_or(0);
        lost += n.saturating_sub(have);
        extra += have.saturating_sub(n);
    }

    let lc = load_counts.lock().unwrap();
    let collector_text = std::fs::read_to_string(&rig.collector_log).unwrap_or_default();
    let pdns_log = rig.pdns.log();
    let panics = collector_text.matches("panicked").count() + pdns_log.matches("panicked").count();
    let first_mem = memory
        .iter()
        .find(|m| m.0 >= Duration::from_secs(30))
        .or(memory.first())
        .copied();
    let last_mem = memory.last().copied();

    let mut report = String::new();
    let _ = writeln!(
        report,
        "soak: {:.1} min, {rate} questions/s",
        elapsed.as_secs_f64() / 60.0
    );
    let _ = writeln!(
        report,
        "questions: {} sent, {} good, {} wrong, {} SERVFAIL ({} right after a coprocess kill), {} timeouts ({} right after a coprocess kill), {} unmatched",
        lc.sent,
        lc.good,
        lc.wrong_total(),
        lc.servfail_after_kill + lc.servfail_other,
        lc.servfail_after_kill,
        lc.timeouts_after_kill + lc.timeouts_other,
        lc.timeouts_after_kill,
        lc.unmatched
    );
    let _ = writeln!(
        report,
        "checks: {} answers with a node required out, {} with the nearest node required alone in the best tier, {} checked whole (every node settled)",
        lc.checked_out, lc.checked_first, lc.checked_exact
    );
    let _ = writeln!(
        report,
        "static answers: at most {:.1} s older than the applied site",
        lc.static_staleness.as_secs_f64()
    );
    for (reason, n) in &lc.wrong {
        let _ = writeln!(report, "  wrong: {n} × {reason}");
    }
    for e in &lc.examples {
        let _ = writeln!(report, "  e.g. {e}");
    }
    let _ = writeln!(
        report,
        "faults: {} in all",
        rig.faults.values().sum::<u64>()
    );
    for (f, n) in &rig.faults {
        let _ = writeln!(report, "  {n:4} × {f:?}");
    }
    for (f, n) in &rig.skipped {
        let _ = writeln!(report, "  skipped {n} × {f:?}");
    }
    for e in &rig.errors {
        let _ = writeln!(report, "  fault error: {e}");
    }
    let _ = writeln!(
        report,
        "ingest: {} runs ({} refused while read-only, sent again), {} metrics stored, {} bad lines refused, {} good lines in the garbage runs; metrics lost: {lost} (in the database but never reported stored: {extra})",
        ic.runs, ic.refused_runs, ic.stored, ic.bad_lines, rig.garbage_good
    );
    for m in ic.mismatches.iter().take(10) {
        let _ = writeln!(report, "  ingest mismatch: {m}");
    }
    if let (Some(a), Some(b)) = (first_mem, last_mem) {
        let _ = writeln!(
            report,
            "coprocess memory (largest of {} coprocesses): RSS {} KiB at {:?} -> {} KiB at {:?}; RssAnon {} KiB -> {} KiB",
            b.3, a.1, a.0, b.1, b.0, a.2, b.2
        );
    }
    let _ = writeln!(
        report,
        "final coprocesses: {final_mem:?} (VmRSS, RssAnon KiB)"
    );
    let _ = writeln!(report, "WAL: at most {} KiB", wal_max / 1024);
    let _ = writeln!(report, "panics in the logs: {panics}");
    // Warnings and errors by kind (digits and paths folded).
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for l in pdns_log.lines().chain(collector_text.lines()) {
        if l.contains("ERROR") || l.contains("WARN") || l.starts_with("error:") {
            let folded: String = l
                .split_whitespace()
                .map(|w| {
                    if w.contains('/') || w.contains(':') && w.chars().any(|c| c.is_ascii_digit()) {
                        "…"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .take(140)
                .collect();
            *kinds.entry(folded).or_default() += 1;
        }
    }
    let _ = writeln!(report, "warnings and errors logged, by kind:");
    for (k, n) in &kinds {
        let _ = writeln!(report, "  {n:5} × {k}");
    }
    eprintln!("\n{report}");
    if let Ok(p) = std::env::var("PDNS_HA_SOAK_REPORT") {
        std::fs::write(p, &report).expect("write the report");
    }
    drop(st);
    if let Some(mut c) = rig.collector.take() {
        let _ = c.kill();
        let _ = c.wait();
    }

    assert_eq!(lc.wrong_total(), 0, "wrong answers:\n{report}");
    assert_eq!(
        lc.servfail_other + lc.timeouts_other + lc.unmatched,
        0,
        "{report}"
    );
    assert_eq!(lost, 0, "metrics lost:\n{report}");
    assert!(ic.mismatches.is_empty(), "{report}");
    assert!(rig.errors.is_empty(), "{report}");
    assert_eq!(panics, 0, "{report}");
    assert!(
        lc.checked_out > 0 && lc.checked_first > 0,
        "the checks never applied:\n{report}"
    );
    if let (Some(a), Some(b)) = (first_mem, last_mem) {
        assert!(b.2 <= a.2 + 1024, "coprocess memory grew:\n{report}");
    }
    assert!(wal_max < 64 << 20, "WAL grew:\n{report}");
}

/// The network index of a /24 key of the latency table.
fn net_index(net: i64) -> usize {
    // The key of an IPv4 network is its address; see net::Prefix::net_key.
    let a = Ipv4Addr::from(net as u32).octets();
    usize::from(a[1]) * 256 + usize::from(a[2])
}

/// Kills one of the coprocesses that answer: PowerDNS's primary pipe
/// backends, told from their standbys by the CPU they use now (a standby is
/// asked only what its primary answered with nothing, which in this soak is
/// next to nothing). A standby killed alone stays dead until PowerDNS next
/// asks it, and if its primary dies before that, the question is lost and
/// the name is NXDOMAIN for `negquery-cache-ttl`: a limit of PowerDNS the
/// README describes ("When a coprocess dies"), which this soak does not
/// count against pdns-ha.
fn kill_coprocess(pdns: &Pdns, truth: &Mutex<Truth>, rng: &mut Rng) {
    let before: Vec<(u32, u64)> = pdns
        .coprocesses()
        .into_iter()
        .map(|p| (p, cpu_ticks(p)))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut busy: Vec<(u64, u32)> = before
        .iter()
        .map(|&(p, t)| (cpu_ticks(p).saturating_sub(t), p))
        .filter(|&(d, _)| d > 0)
        .collect();
    busy.sort_unstable_by(|a, b| b.cmp(a));
    busy.truncate(before.len() / 2);
    if busy.is_empty() {
        return;
    }
    let (_, pid) = busy[rng.below(busy.len() as u64) as usize];
    truth.lock().unwrap().kills.push(Instant::now());
    signal(pid, "-KILL");
}

/// User and system CPU ticks of a process (/proc/PID/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// An `ingest` run of hostile input around ten good lines; returns the
/// good lines stored.
fn ingest_garbage(
    db: &Path,
    truth: &Mutex<Truth>,
    counts: &Mutex<IngestCounts>,
    rng: &mut Rng,
) -> u64 {
    let mut input = Vec::new();
    let mut lines: Vec<Option<(usize, usize)>> = Vec::new();
    let mut bad = 0;
    let mut push_bad = |input: &mut Vec<u8>, lines: &mut Vec<Option<(usize, usize)>>, b: &[u8]| {
        input.extend_from_slice(b);
        input.push(b'\n');
        lines.push(None);
        bad += 1;
    };
    // Random bytes without a newline (one line, never UTF-8 once 0xff is in).
    let mut noise = rng.bytes(100_000);
    noise.retain(|&c| c != b'\n');
    noise[0] = 0xff;
    push_bad(&mut input, &mut lines, &noise);
    push_bad(&mut input, &mut lines, &vec![b'9'; 3 << 20]);
    push_bad(&mut input, &mut lines, b"\0\0\0latency\0mtl1");
    push_bad(
        &mut input,
        &mut lines,
        format!("latency {} 10.0.0.1 NaN", NODES[0]).as_bytes(),
    );
    push_bad(
        &mut input,
        &mut lines,
        format!("latency {} 10.0.0.1 inf", NODES[0]).as_bytes(),
    );
    push_bad(
        &mut input,
        &mut lines,
        "latency mtl1 10.0.0.1 5 \u{202e}".as_bytes(),
    );
    for _ in 0..10 {
        let k = rng.below(NETS as u64) as usize;
        let i = rng.below(NODES.len() as u64) as usize;
        let _ = writeln!(
            input,
            "latency {} {}/24 {}",
            NODES[i],
            net_addr(k),
            rtt_ms(k, i)
        );
        lines.push(Some((k, i)));
    }
    let before = counts.lock().unwrap().stored;
    let retry = ingest_run(db, &input, &lines, bad, truth, counts);
    let after = counts.lock().unwrap().stored;
    // Lines not stored (read-only) are simply not counted: nothing to resend.
    let _ = retry;
    after - before
}
