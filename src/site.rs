//! The site file (TOML): parsing and validation into a normalized [`Site`].
//!
//! Pure: reads text, returns either a whole valid site or the first error
//! with the line it is on. Nothing here touches the database; `store::apply`
//! makes the database equal to a `Site`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::collector_config::CollectorConfig;
use crate::dnsname;
use crate::endpoint::{
    CaFile, EslAddr, EslPassword, EslPasswordFile, SipTarget, SofiaProfile, TlsServerName,
    Transport,
};
use crate::metrics::Metric;
use crate::net::Prefix;
use crate::rdata;

/// How a service or pool orders its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Static,
    Latency,
    Load,
    /// By the calls' receive MOS from the client's network.
    Quality,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Static => "static",
            Policy::Latency => "latency",
            Policy::Load => "load",
            Policy::Quality => "quality",
        }
    }
}

/// Tunables of the latency and load policies (`[policy]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Nodes within this many milliseconds of a tier's best share its priority.
    pub latency_tolerance_ms: f64,
    /// ... or within this share (percent) of the tier's best latency.
    pub latency_tolerance_pct: f64,
    /// Nodes whose free capacity is within this share (percent) of a tier's
    /// best share its priority.
    pub load_tolerance_pct: f64,
    /// Latency entries older than this (seconds) count as absent.
    pub latency_max_age_s: i64,
    /// Load older than this (seconds) counts as unknown.
    pub load_max_age_s: i64,
    /// Health older than this (seconds) counts as unknown (fail open).
    pub health_max_age_s: i64,
    /// Weight of a new sample in the latency moving average (0 < a <= 1).
    pub latency_alpha: f64,
    /// How long a coprocess reuses a decision (milliseconds).
    pub decision_cache_ms: u64,
    /// Call quality entries older than this (seconds) count as absent.
    pub quality_max_age_s: i64,
    /// Nodes whose MOS is within this many MOS points of a tier's best
    /// share its priority.
    pub quality_tolerance_mos: f64,
    /// Calls an entry needs before its MOS counts (fewer: the next, wider
    /// aggregate is used).
    #[serde(deserialize_with = "min_calls")]
    pub quality_min_calls: u32,
    /// Weight of a new call in the quality moving averages (0 < a <= 1).
    pub quality_alpha: f64,
}

/// `quality_min_calls`: a whole number from 1 (TOML gives any integer).
fn min_calls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = i64::deserialize(d).map_err(|e| {
        serde::de::Error::custom(format!("quality_min_calls must be a whole number: {e}"))
    })?;
    u32::try_from(v).ok().filter(|&n| n >= 1).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "quality_min_calls must be a whole number from 1 to {}, not {v}",
            u32::MAX
        ))
    })
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            latency_tolerance_ms: 5.0,
            latency_tolerance_pct: 10.0,
            load_tolerance_pct: 10.0,
            latency_max_age_s: 900,
            load_max_age_s: 90,
            health_max_age_s: 60,
            latency_alpha: 0.3,
            decision_cache_ms: 1000,
            quality_max_age_s: 3600,
            quality_tolerance_mos: 0.2,
            quality_min_calls: 5,
            quality_alpha: 0.1,
        }
    }
}

impl PolicyConfig {
    /// How long a sample of this kind counts (seconds), and the setting.
    pub fn max_age_s(&self, m: &Metric) -> (i64, &'static str) {
        match m {
            Metric::Latency { .. } => (self.latency_max_age_s, "latency_max_age_s"),
            Metric::Quality { .. } => (self.quality_max_age_s, "quality_max_age_s"),
            Metric::Load { .. } => (self.load_max_age_s, "load_max_age_s"),
            Metric::Health { .. } => (self.health_max_age_s, "health_max_age_s"),
        }
    }

    /// Why a sample is too old to change any answer (the engine judges a
    /// stored value fresh while `now - updated <= max age`), or `None`.
    pub fn too_old(&self, m: &Metric, now: i64) -> Option<String> {
        let (max, setting) = self.max_age_s(m);
        let age = now - m.ts();
        (age > max).then(|| {
            format!(
                "{} sample dated {} is {age} s old, older than [policy] {setting} = {max} s: it would not count, so it is not stored",
                m.kind(),
                m.ts()
            )
        })
    }

    fn validate(&self) -> Result<(), String> {
        let pos = |v: f64, n: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("policy.{n} must be a number >= 0"))
            }
        };
        pos(self.latency_tolerance_ms, "latency_tolerance_ms")?;
        pos(self.latency_tolerance_pct, "latency_tolerance_pct")?;
        pos(self.load_tolerance_pct, "load_tolerance_pct")?;
        if !(self.latency_alpha > 0.0 && self.latency_alpha <= 1.0) {
            return Err("policy.latency_alpha must be in (0, 1]".into());
        }
        if !(self.quality_alpha > 0.0 && self.quality_alpha <= 1.0) {
            return Err("policy.quality_alpha must be in (0, 1]".into());
        }
        let span = crate::metrics::MOS_MAX - crate::metrics::MOS_MIN;
        if !(self.quality_tolerance_mos.is_finite()
            && (0.0..=span).contains(&self.quality_tolerance_mos))
        {
            return Err(format!(
                "policy.quality_tolerance_mos must be a number from 0 to {span} (MOS points)"
            ));
        }
        for (v, n) in [
            (self.latency_max_age_s, "latency_max_age_s"),
            (self.load_max_age_s, "load_max_age_s"),
            (self.health_max_age_s, "health_max_age_s"),
            (self.quality_max_age_s, "quality_max_age_s"),
        ] {
            if v <= 0 {
                return Err(format!("policy.{n} must be > 0 seconds"));
            }
        }
        if self.decision_cache_ms > 2000 {
            return Err("policy.decision_cache_ms must be at most 2000".into());
        }
        Ok(())
    }
}

/// A zone served by pdns-ha.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub name: String,
    pub ns: Vec<String>,
    pub hostmaster: String,
    pub ttl: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// A VoIP server. What it tells the collector is typed (`crate::endpoint`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredNode", from = "StoredNode")]
pub struct Node {
    pub name: String,
    pub host: String,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    pub esl: Option<EslAddr>,
    pub esl_password: Option<EslPassword>,
    pub esl_password_file: Option<EslPasswordFile>,
    pub esl_profiles: Vec<SofiaProfile>,
    pub sip_probe: Option<SipTarget>,
    /// The name a `tls:` probe checks the certificate for (`host` if none).
    pub sip_probe_server_name: Option<TlsServerName>,
    /// The CA a `tls:` probe trusts instead of the system's.
    pub sip_probe_ca: Option<CaFile>,
    pub max_sessions: Option<u32>,
    /// Collector settings read back from the database that no longer parse
    /// (stored by an older version, or edited by hand): why, one per value,
    /// the value left out. Always empty from [`parse`]. Only the collector
    /// needs these settings: it logs these and measures the node without
    /// them; answering never looks at them.
    pub unusable: Vec<String>,
}

/// A node as stored (JSON in the database): the collector's values as text,
/// each written by its type's `Display` and read back by the same parser
/// as the site file's. The same fields, in the same order, as always; the
/// TLS probe's two, newer, are left out when not given (so a node without
/// them is stored as before, and an older row reads back without them).
#[derive(Serialize, Deserialize)]
struct StoredNode {
    name: String,
    host: String,
    ipv4: Vec<Ipv4Addr>,
    ipv6: Vec<Ipv6Addr>,
    esl: Option<String>,
    esl_password: Option<String>,
    esl_password_file: Option<String>,
    esl_profiles: Vec<String>,
    sip_probe: Option<String>,
    max_sessions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sip_probe_server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sip_probe_ca: Option<String>,
}

impl From<Node> for StoredNode {
    fn from(n: Node) -> StoredNode {
        fn text<T: std::fmt::Display>(v: &Option<T>) -> Option<String> {
            v.as_ref().map(T::to_string)
        }
        StoredNode {
            esl: text(&n.esl),
            esl_password: n.esl_password.as_ref().map(|p| p.expose().to_string()),
            esl_password_file: text(&n.esl_password_file),
            esl_profiles: n.esl_profiles.iter().map(|p| p.to_string()).collect(),
            sip_probe: text(&n.sip_probe),
            sip_probe_server_name: text(&n.sip_probe_server_name),
            sip_probe_ca: text(&n.sip_probe_ca),
            name: n.name,
            host: n.host,
            ipv4: n.ipv4,
            ipv6: n.ipv6,
            max_sessions: n.max_sessions,
        }
    }
}

impl From<StoredNode> for Node {
    /// A value that no longer parses is left out and said in `unusable`:
    /// the topology still loads (the coprocess needs none of these).
    fn from(n: StoredNode) -> Node {
        fn typed<T: std::str::FromStr<Err = String>>(
            v: Option<String>,
            unusable: &mut Vec<String>,
        ) -> Option<T> {
            v?.parse().map_err(|e| unusable.push(e)).ok()
        }
        let mut unusable = Vec::new();
        let esl = typed(n.esl, &mut unusable);
        let esl_password = typed(n.esl_password, &mut unusable);
        let esl_password_file = typed(n.esl_password_file, &mut unusable);
        let sip_probe = typed(n.sip_probe, &mut unusable);
        let sip_probe_server_name = typed(n.sip_probe_server_name, &mut unusable);
        let sip_probe_ca = typed(n.sip_probe_ca, &mut unusable);
        let esl_profiles = n
            .esl_profiles
            .into_iter()
            .filter_map(|p| typed(Some(p), &mut unusable))
            .collect();
        Node {
            name: n.name,
            host: n.host,
            ipv4: n.ipv4,
            ipv6: n.ipv6,
            esl,
            esl_password,
            esl_password_file,
            esl_profiles,
            sip_probe,
            sip_probe_server_name,
            sip_probe_ca,
            max_sessions: n.max_sessions,
            unusable,
        }
    }
}

/// A node's place in a service or pool, as the site file gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub node: String,
    pub priority: u16,
    pub weight: u16,
}

/// An SRV name (`_sip._udp.example.com`) answered with nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub policy: Policy,
    pub port: u16,
    pub ttl: u32,
    pub nodes: Vec<Member>,
}

/// An A/AAAA name answered with the addresses of the best `answers` nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub policy: Policy,
    pub ttl: u32,
    pub answers: u16,
    pub nodes: Vec<Member>,
}

/// Any static record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub content: String,
}

impl Record {
    /// The identity of a record within the site (records have no name of
    /// their own).
    pub fn key(&self) -> String {
        format!("{} {} {}", self.name, self.rtype, self.content)
    }
}

/// A named client network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub prefixes: Vec<Prefix>,
    pub prefer: Vec<String>,
}

/// A whole, valid site.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Site {
    pub zones: Vec<Zone>,
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    pub pools: Vec<Pool>,
    pub records: Vec<Record>,
    pub networks: Vec<Network>,
    pub policy: PolicyConfig,
    pub collector: CollectorConfig,
}

// Prefix is stored as text in JSON.
impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---- raw TOML shapes ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    #[serde(default)]
    zone: BTreeMap<String, Spanned<RawZone>>,
    #[serde(default)]
    node: BTreeMap<String, Spanned<RawNode>>,
    #[serde(default)]
    service: BTreeMap<String, Spanned<RawService>>,
    #[serde(default)]
    pool: BTreeMap<String, Spanned<RawPool>>,
    #[serde(default)]
    record: Vec<Spanned<RawRecord>>,
    #[serde(default)]
    network: BTreeMap<String, Spanned<RawNetwork>>,
    #[serde(default)]
    policy: Option<Spanned<PolicyConfig>>,
    #[serde(default)]
    collector: Option<Spanned<CollectorConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    ns: Vec<String>,
    hostmaster: String,
    #[serde(default = "default_zone_ttl")]
    ttl: u32,
    #[serde(default = "default_refresh")]
    refresh: u32,
    #[serde(default = "default_retry")]
    retry: u32,
    #[serde(default = "default_expire")]
    expire: u32,
    #[serde(default = "default_minimum")]
    minimum: u32,
}

fn default_zone_ttl() -> u32 {
    3600
}
fn default_refresh() -> u32 {
    10800
}
fn default_retry() -> u32 {
    3600
}
fn default_expire() -> u32 {
    604800
}
fn default_minimum() -> u32 {
    60
}
fn default_dynamic_ttl() -> u32 {
    30
}
fn default_answers() -> u16 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    host: String,
    #[serde(default)]
    ipv4: Vec<Spanned<String>>,
    #[serde(default)]
    ipv6: Vec<Spanned<String>>,
    esl: Option<Spanned<String>>,
    esl_password: Option<Spanned<String>>,
    esl_password_file: Option<Spanned<String>>,
    esl_profiles: Option<Vec<Spanned<String>>>,
    sip_probe: Option<Spanned<String>>,
    sip_probe_server_name: Option<Spanned<String>>,
    sip_probe_ca: Option<Spanned<String>>,
    max_sessions: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    policy: Policy,
    port: u16,
    #[serde(default = "default_dynamic_ttl")]
    ttl: u32,
    nodes: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    policy: Policy,
    #[serde(default = "default_dynamic_ttl")]
    ttl: u32,
    #[serde(default = "default_answers")]
    answers: u16,
    nodes: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    content: String,
    ttl: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    prefixes: Vec<String>,
    #[serde(default)]
    prefer: Vec<String>,
}

/// Parses and validates a site file as read from disk: [`parse`], after a
/// check that it is UTF-8 (TOML is), with the line of the first bad byte.
pub fn parse_bytes(path: &str, bytes: &[u8]) -> Result<Site, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        format!(
            "{path}:{}: the file is not UTF-8 (byte 0x{:02x} at column {}): save it as UTF-8",
            bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1,
            bytes[at],
            at - line_start + 1
        )
    })?;
    parse(path, text)
}

/// Parses and validates a site file. `path` is only used in error messages.
/// The error names the file, the line and the reason.
pub fn parse(path: &str, text: &str) -> Result<Site, String> {
    let raw: RawSite = toml::from_str(text).map_err(|e| {
        // The TOML parser gives some errors no place (a key nested too deep
        // is one): find the line ourselves.
        match (e.span(), deep_key_line(text)) {
            (Some(s), _) => format!("{path}:{}: {}", line_of(text, s.start), e.message()),
            (None, Some(line)) => format!(
                "{path}:{line}: {}: this key has more than {MAX_KEY_PARTS} dotted parts (a site file's keys have at most 3)",
                e.message()
            ),
            (None, None) => format!("{path}: {}", e.message()),
        }
    })?;
    let at = |span: std::ops::Range<usize>, msg: String| {
        format!("{path}:{}: {msg}", line_of(text, span.start))
    };
    build(raw).map_err(|(span, msg)| at(span, msg))
}

/// A key of more parts than this is nested too deep for a site file (its
/// deepest keys have 3: `zone."NAME".ns`); the TOML parser stops at 80.
const MAX_KEY_PARTS: usize = 16;

/// The first line whose key (a `[table]` header, or what stands before `=`)
/// has more than [`MAX_KEY_PARTS`] dotted parts, quoted parts read as one.
fn deep_key_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let l = line.trim_start();
            let (key, end) = match l.strip_prefix('[') {
                Some(h) => (h.strip_prefix('[').unwrap_or(h), b']'),
                None => (l, b'='),
            };
            let (mut parts, mut quote) = (1, None);
            let mut escaped = false;
            for b in key.bytes() {
                match quote {
                    Some(q) => {
                        if escaped {
                            escaped = false;
                        } else if b == b'\\' && q == b'"' {
                            escaped = true;
                        } else if b == q {
                            quote = None;
                        }
                    }
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == end || b == b'#' => break,
                    None if b == b'.' => parts += 1,
                    None => {}
                }
            }
            parts > MAX_KEY_PARTS
        })
        .map(|i| i + 1)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

type Span = std::ops::Range<usize>;
type BuildResult<T> = Result<T, (Span, String)>;

fn build(raw: RawSite) -> BuildResult<Site> {
    let mut site = Site::default();
    let mut owners: HashSet<String> = HashSet::new();

    if let Some(p) = raw.policy {
        let span = p.span();
        site.policy = p.into_inner();
        site.policy.validate().map_err(|e| (span, e))?;
    }
    if let Some(c) = raw.collector {
        let span = c.span();
        site.collector = c.into_inner();
        site.collector.validate().map_err(|e| (span, e))?;
    }

    for (name, z) in raw.zone {
        let span = z.span();
        let z = z.into_inner();
        let err = |m: String| (span.clone(), format!("zone \"{name}\": {m}"));
        let zname = dnsname::normalize(&name).map_err(err)?;
        if !owners.insert(zname.clone()) {
            return Err(err("defined twice (names are case-insensitive)".into()));
        }
        if z.ns.is_empty() {
            return Err(err("ns must list at least one name server".into()));
        }
        let ns =
            z.ns.iter()
                .map(|n| dnsname::normalize(n).map_err(|e| err(format!("ns: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
        let hostmaster =
            dnsname::normalize(&z.hostmaster).map_err(|e| err(format!("hostmaster: {e}")))?;
        site.zones.push(Zone {
            name: zname,
            ns,
            hostmaster,
            ttl: z.ttl,
            refresh: z.refresh,
            retry: z.retry,
            expire: z.expire,
            minimum: z.minimum,
        });
    }
    let in_zone = |n: &str| site_zone_of(&site.zones, n).is_some();

    let mut node_names = HashSet::new();
    for (name, n) in raw.node {
        let span = n.span();
        let n = n.into_inner();
        let err = |m: String| (span.clone(), format!("node \"{name}\": {m}"));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(err(
                "a node name uses letters, digits, '-', '_' and '.' only".into(),
            ));
        }
        let host = dnsname::normalize(&n.host).map_err(|e| err(format!("host: {e}")))?;
        let ipv4 = n
            .ipv4
            .iter()
            .map(|a| {
                a.get_ref().parse::<Ipv4Addr>().map_err(|_| {
                    (
                        a.span(),
                        format!(
                            "node \"{name}\": ipv4: '{}' is not an IPv4 address",
                            a.get_ref()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ipv6 = n
            .ipv6
            .iter()
            .map(|a| {
                a.get_ref().parse::<Ipv6Addr>().map_err(|_| {
                    (
                        a.span(),
                        format!(
                            "node \"{name}\": ipv6: '{}' is not an IPv6 address",
                            a.get_ref()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if in_zone(&host) && ipv4.is_empty() && ipv6.is_empty() {
            return Err(err(format!(
                "host {host} is inside a served zone but has no ipv4 or ipv6 address to answer with"
            )));
        }
        if n.esl_password.is_some() && n.esl_password_file.is_some() {
            return Err(err(
                "give esl_password or esl_password_file, not both".into()
            ));
        }
        // Each value parsed once, by the one parser its type has (the
        // collector runs by the same types).
        let esl = opt_value::<EslAddr>(&name, &n.esl)?;
        let esl_password = opt_value::<EslPassword>(&name, &n.esl_password)?;
        let esl_password_file = opt_value::<EslPasswordFile>(&name, &n.esl_password_file)?;
        let sip_probe = opt_value::<SipTarget>(&name, &n.sip_probe)?;
        let sip_probe_server_name = opt_value::<TlsServerName>(&name, &n.sip_probe_server_name)?;
        let sip_probe_ca = opt_value::<CaFile>(&name, &n.sip_probe_ca)?;
        let tls = sip_probe
            .as_ref()
            .is_some_and(|p| p.transport == Transport::Tls);
        if !tls && (sip_probe_server_name.is_some() || sip_probe_ca.is_some()) {
            return Err(err(
                "sip_probe_server_name and sip_probe_ca are for a TLS probe: give sip_probe = \"tls:HOST:PORT\" too".into(),
            ));
        }
        let esl_profiles = match &n.esl_profiles {
            None => SofiaProfile::defaults(),
            Some(ps) => ps
                .iter()
                .map(|p| node_value(&name, p))
                .collect::<BuildResult<Vec<SofiaProfile>>>()?,
        };
        node_names.insert(name.clone());
        site.nodes.push(Node {
            name,
            host,
            ipv4,
            ipv6,
            esl,
            esl_password,
            esl_password_file,
            esl_profiles,
            sip_probe,
            sip_probe_server_name,
            sip_probe_ca,
            max_sessions: n.max_sessions,
            unusable: Vec::new(),
        });
    }

    for (name, s) in raw.service {
        let span = s.span();
        let s = s.into_inner();
        let err = |m: String| (span.clone(), format!("service \"{name}\": {m}"));
        let sname = owned_name(&name, &site.zones, &mut owners).map_err(err)?;
        let nodes = members(&s.nodes, &node_names).map_err(err)?;
        site.services.push(Service {
            name: sname,
            policy: s.policy,
            port: s.port,
            ttl: s.ttl,
            nodes,
        });
    }

    for (name, p) in raw.pool {
        let span = p.span();
        let p = p.into_inner();
        let err = |m: String| (span.clone(), format!("pool \"{name}\": {m}"));
        let pname = owned_name(&name, &site.zones, &mut owners).map_err(err)?;
        let nodes = members(&p.nodes, &node_names).map_err(err)?;
        if p.answers == 0 {
            return Err(err("answers must be at least 1".into()));
        }
        site.pools.push(Pool {
            name: pname,
            policy: p.policy,
            ttl: p.ttl,
            answers: p.answers,
            nodes,
        });
    }

    let dynamic: HashSet<String> = owners
        .iter()
        .filter(|n| !site.zones.iter().any(|z| &&z.name == n))
        .cloned()
        .collect();
    let mut seen_records = HashSet::new();
    let mut record_spans: Vec<Span> = Vec::new();
    let mut answer_bytes: HashMap<String, usize> = HashMap::new();
    for r in raw.record {
        let span = r.span();
        let r = r.into_inner();
        let err = |m: String| {
            (
                span.clone(),
                format!("record \"{} {}\": {m}", r.name, r.rtype),
            )
        };
        let name = dnsname::normalize(&r.name).map_err(err)?;
        let zone = site_zone_of(&site.zones, &name)
            .ok_or_else(|| err("the name is outside every [zone]".into()))?;
        if dynamic.contains(&name) {
            return Err(err("the name is already a service or pool".into()));
        }
        let rtype = r.rtype.to_ascii_uppercase();
        let rdata = rdata::check(&rtype, &r.content).map_err(err)?;
        let bytes = answer_bytes.entry(name.clone()).or_insert(0);
        *bytes += rdata.answer_bytes();
        if *bytes > rdata::MAX_ANSWER_BYTES {
            return Err(err(format!(
                "the static records of {name} take {} bytes in one answer, more than {} \
                 (an answer must fit in one DNS message)",
                *bytes,
                rdata::MAX_ANSWER_BYTES
            )));
        }
        let rec = Record {
            ttl: r.ttl.unwrap_or(site.zones[zone].ttl),
            name,
            rtype,
            content: rdata.content,
        };
        if !seen_records.insert(rec.key()) {
            return Err(err("the same record is listed twice".into()));
        }
        site.records.push(rec);
        record_spans.push(span);
    }
    for (r, span) in site.records.iter().zip(record_spans) {
        if r.rtype == "CNAME"
            && (site.records.iter().filter(|o| o.name == r.name).count() > 1
                || site.nodes.iter().any(|n| n.host == r.name)
                || site.zones.iter().any(|z| z.name == r.name))
        {
            return Err((
                span,
                format!(
                    "record \"{} CNAME\": a CNAME cannot share its name with other data",
                    r.name
                ),
            ));
        }
    }

    for (name, n) in raw.network {
        let span = n.span();
        let n = n.into_inner();
        let err = |m: String| (span.clone(), format!("network \"{name}\": {m}"));
        if n.prefixes.is_empty() {
            return Err(err("prefixes must list at least one prefix".into()));
        }
        let prefixes = n
            .prefixes
            .iter()
            .map(|p| {
                p.parse::<Prefix>()
                    .map_err(|e| err(format!("prefixes: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for p in &n.prefer {
            if !node_names.contains(p) {
                return Err(err(format!("prefer: unknown node \"{p}\"")));
            }
        }
        site.networks.push(Network {
            name,
            prefixes,
            prefer: n.prefer,
        });
    }
    Ok(site)
}

/// A node's value parsed by its type's parser; the error names the node
/// and the value's own line.
fn node_value<T: std::str::FromStr<Err = String>>(
    node: &str,
    v: &Spanned<String>,
) -> BuildResult<T> {
    v.get_ref()
        .parse()
        .map_err(|e| (v.span(), format!("node \"{node}\": {e}")))
}

fn opt_value<T: std::str::FromStr<Err = String>>(
    node: &str,
    v: &Option<Spanned<String>>,
) -> BuildResult<Option<T>> {
    v.as_ref().map(|v| node_value(node, v)).transpose()
}

/// Index of the zone that contains `name` (the longest matching apex).
pub fn site_zone_of(zones: &[Zone], name: &str) -> Option<usize> {
    zones
        .iter()
        .enumerate()
        .filter(|(_, z)| dnsname::is_within(name, &z.name))
        .max_by_key(|(_, z)| z.name.len())
        .map(|(i, _)| i)
}

fn owned_name(name: &str, zones: &[Zone], owners: &mut HashSet<String>) -> Result<String, String> {
    let n = dnsname::normalize(name)?;
    if site_zone_of(zones, &n).is_none() {
        return Err("the name is outside every [zone]".into());
    }
    if zones.iter().any(|z| z.name == n) {
        return Err("the name is a zone apex; use a name below it".into());
    }
    if !owners.insert(n.clone()) {
        return Err(
            "the name is defined twice (as a service or pool; names are case-insensitive)".into(),
        );
    }
    Ok(n)
}

fn members(values: &[toml::Value], nodes: &HashSet<String>) -> Result<Vec<Member>, String> {
    if values.is_empty() {
        return Err("nodes must list at least one node".into());
    }
    let mut out: Vec<Member> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let m = match v {
            toml::Value::String(s) => Member {
                node: s.clone(),
                priority: i as u16,
                weight: 100,
            },
            toml::Value::Table(t) => {
                for k in t.keys() {
                    if !["node", "priority", "weight"].contains(&k.as_str()) {
                        return Err(format!(
                            "nodes[{i}]: unknown key \"{k}\" (node, priority, weight)"
                        ));
                    }
                }
                let node = t
                    .get("node")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| format!("nodes[{i}]: needs node = \"NAME\""))?;
                let num = |k: &str, d: u16| -> Result<u16, String> {
                    match t.get(k) {
                        None => Ok(d),
                        Some(v) => v
                            .as_integer()
                            .and_then(|n| u16::try_from(n).ok())
                            .ok_or_else(|| {
                                format!("nodes[{i}]: {k} must be a whole number from 0 to 65535")
                            }),
                    }
                };
                Member {
                    node: node.to_string(),
                    priority: num("priority", i as u16)?,
                    weight: num("weight", 100)?,
                }
            }
            _ => {
                return Err(format!(
                    "nodes[{i}]: a node name or {{ node = \"NAME\", priority = N, weight = N }}"
                ));
            }
        };
        if !nodes.contains(&m.node) {
            return Err(format!("unknown node \"{}\"", m.node));
        }
        if out.iter().any(|o| o.node == m.node) {
            return Err(format!("node \"{}\" is listed twice", m.node));
        }
        out.push(m);
    }
    Ok(out)
}

/// Settings that work alone but not together (`[collector]` against
/// `[policy]`): figures that would expire before the collector renews them,
/// or a down node noticed only after its health has expired. `apply` prints
/// these as warnings and applies the site anyway.
pub fn advice(site: &Site) -> Vec<String> {
    let c = &site.collector;
    let p = &site.policy;
    let mut out = Vec::new();
    if let Some(a) = c.http_exposed() {
        out.push(format!(
            "[collector] http = \"{a}\" is not a loopback address: anyone who can reach it from the network reads /metrics and /status.json (node names, health, load); firewall the port, or listen on 127.0.0.1 behind a proxy"
        ));
    }
    let ms = |s: i64| s.saturating_mul(1000).max(0) as u64;
    if site.nodes.iter().any(|n| n.sip_probe.is_some()) {
        if c.probe_interval_ms.saturating_mul(3) > ms(p.health_max_age_s) {
            out.push(format!(
                "[collector] probe_interval_ms = {} is more than a third of [policy] health_max_age_s = {} s: one lost or late probe and the health expires (answers fail open)",
                c.probe_interval_ms, p.health_max_age_s
            ));
        }
        let detect = c.probe_interval_ms.saturating_mul(u64::from(c.down_after));
        if detect >= ms(p.health_max_age_s) {
            out.push(format!(
                "[collector] probe_interval_ms x down_after = {} ms is not under [policy] health_max_age_s = {} s: a dead node is noticed only after its last health has expired",
                detect, p.health_max_age_s
            ));
        }
    }
    if site.nodes.iter().any(|n| n.esl.is_some()) {
        if c.heartbeat_wait_ms >= ms(p.load_max_age_s) {
            out.push(format!(
                "[collector] heartbeat_wait_ms = {} is not under [policy] load_max_age_s = {} s: without HEARTBEATs the load expires before it is polled",
                c.heartbeat_wait_ms, p.load_max_age_s
            ));
        }
        if c.registration_poll_interval_ms >= ms(p.latency_max_age_s) {
            out.push(format!(
                "[collector] registration_poll_interval_ms = {} is not under [policy] latency_max_age_s = {} s: latency expires between polls",
                c.registration_poll_interval_ms, p.latency_max_age_s
            ));
        }
    }
    out
}

/// Checks a site read back from the database: every name and content that
/// can reach the pipe is validated again, so a hand-edited database cannot
/// put a tab, a newline or a bad name on the wire.
pub fn revalidate(site: &Site) -> Result<(), String> {
    let name = |n: &str| match dnsname::normalize(n) {
        Ok(x) if x == n => Ok(()),
        Ok(_) => Err(format!("'{n}' is not normalized")),
        Err(e) => Err(e),
    };
    for z in &site.zones {
        name(&z.name)?;
        name(&z.hostmaster)?;
        z.ns.iter().try_for_each(|n| name(n))?;
    }
    for n in &site.nodes {
        name(&n.host)?;
    }
    for s in &site.services {
        name(&s.name)?;
    }
    for p in &site.pools {
        name(&p.name)?;
    }
    for r in &site.records {
        name(&r.name)?;
        let c = rdata::check(&r.rtype, &r.content)?.content;
        if c != r.content {
            return Err(format!("record content '{}' is not normalized", r.content));
        }
    }
    let nodes: HashSet<&str> = site.nodes.iter().map(|n| n.name.as_str()).collect();
    for m in site
        .services
        .iter()
        .flat_map(|s| &s.nodes)
        .chain(site.pools.iter().flat_map(|p| &p.nodes))
    {
        if !nodes.contains(m.node.as_str()) {
            return Err(format!("unknown node \"{}\"", m.node));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = r#"
[zone."voip.example.com"]
ns = ["ns1.voip.example.com", "ns2.voip.example.com"]
hostmaster = "hostmaster.example.com"
ttl = 3600

[node.mtl1]
host = "mtl1.voip.example.com"
ipv4 = ["198.51.100.10"]
ipv6 = ["2001:db8:10::10"]
esl = "198.51.100.10:8021"
esl_password = "ClueCon"
sip_probe = "udp:198.51.100.10:5060"
max_sessions = 1000

[node.van1]
host = "van1.voip.example.com"
ipv4 = ["203.0.113.20"]

[service."_sip._udp.voip.example.com"]
policy = "latency"
port = 5060
ttl = 30
nodes = ["mtl1", "van1"]

[service."_sip._tcp.voip.example.com"]
policy = "static"
port = 5060
nodes = [{ node = "mtl1", priority = 10, weight = 60 }, { node = "van1", priority = 20 }]

[pool."sip.voip.example.com"]
policy = "load"
nodes = ["mtl1", "van1"]
answers = 1

[[record]]
name = "voip.example.com"
type = "NAPTR"
content = '10 50 "s" "SIP+D2U" "" _sip._udp.voip.example.com.'

[network.vancouver]
prefixes = ["24.64.0.0/13"]
prefer = ["van1"]
"#;

    #[test]
    fn a_key_nested_too_deep_is_found_on_its_line() {
        let deep = format!("[{}a]", "b.".repeat(20));
        let text = format!(
            "[service.\"_sip._udp.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q\"]\nx = \"a.b\"\n{deep}\n"
        );
        assert_eq!(deep_key_line(&text), Some(3), "quoted dots are one part");
        assert_eq!(
            deep_key_line(&format!("x = 1\n{}a = 1\n", "k.".repeat(17))),
            Some(2)
        );
        assert_eq!(deep_key_line(EXAMPLE), None);
        let e = parse(
            "site.toml",
            &format!("{EXAMPLE}\n[{}a]\n", "b.".repeat(100)),
        )
        .unwrap_err();
        let line = EXAMPLE.lines().count() + 2;
        assert!(e.starts_with(&format!("site.toml:{line}: ")), "{e}");
    }

    #[test]
    fn a_sample_counts_while_the_engine_would_count_it() {
        let p = PolicyConfig::default();
        let now = 1_800_000_000;
        let lat = |ts| Metric::Latency {
            node: "a".into(),
            client: "198.51.100.7".parse().unwrap(),
            rtt_ms: 1.0,
            ts,
        };
        assert_eq!(p.too_old(&lat(now - 900), now), None);
        let why = p.too_old(&lat(now - 901), now).unwrap();
        assert!(why.contains("latency_max_age_s = 900 s"), "{why}");
        let load = Metric::Load {
            node: "a".into(),
            sessions: 1,
            max_sessions: 2,
            idle_cpu: None,
            ts: now - 91,
        };
        assert!(p.too_old(&load, now).unwrap().contains("load_max_age_s"));
        let health = |ts| Metric::Health {
            node: "a".into(),
            state: crate::metrics::Health::Up,
            ts,
            probe_rtt_ms: None,
            reason: None,
            cert_not_after: None,
        };
        assert_eq!(p.too_old(&health(now - 60), now), None);
        assert!(
            p.too_old(&health(now - 61), now)
                .unwrap()
                .contains("health_max_age_s = 60 s")
        );
    }

    #[test]
    fn parses_the_contract_example() {
        let s = parse("site.toml", EXAMPLE).unwrap();
        assert_eq!(s.zones.len(), 1);
        assert_eq!(
            s.zones[0].ns,
            ["ns1.voip.example.com", "ns2.voip.example.com"]
        );
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.nodes[0].esl_profiles, SofiaProfile::defaults());
        assert_eq!(
            s.nodes[0]
                .sip_probe
                .as_ref()
                .map(|p| p.to_string())
                .as_deref(),
            Some("udp:198.51.100.10:5060")
        );
        assert_eq!(
            s.nodes[0].esl.as_ref().map(|p| p.to_string()).as_deref(),
            Some("198.51.100.10:8021")
        );
        assert!(s.nodes.iter().all(|n| n.unusable.is_empty()));
        let tcp = s.services.iter().find(|x| x.name.contains("_tcp")).unwrap();
        assert_eq!(tcp.ttl, 30);
        assert_eq!(
            tcp.nodes,
            [
                Member {
                    node: "mtl1".into(),
                    priority: 10,
                    weight: 60
                },
                Member {
                    node: "van1".into(),
                    priority: 20,
                    weight: 100
                }
            ]
        );
        let udp = s.services.iter().find(|x| x.name.contains("_udp")).unwrap();
        assert_eq!(udp.nodes[1].priority, 1);
        assert_eq!(
            s.records[0].content,
            "10 50 \"s\" \"SIP+D2U\" \"\" _sip._udp.voip.example.com."
        );
        assert_eq!(s.networks[0].prefixes[0].to_string(), "24.64.0.0/13");
        assert_eq!(s.policy, PolicyConfig::default());
    }

    fn err_of(text: &str) -> String {
        parse("site.toml", text).unwrap_err()
    }

    #[test]
    fn the_http_address_is_checked_by_apply_and_a_network_one_advised_against() {
        let e = err_of(&format!(
            "{EXAMPLE}\n[collector]\nhttp = \"metrics.local:9253\"\n"
        ));
        assert!(e.contains("site.toml:"), "{e}");
        assert!(e.contains("write IP:PORT, e.g. \"127.0.0.1:9253\""), "{e}");
        let local = parse(
            "site.toml",
            &format!("{EXAMPLE}\n[collector]\nhttp = \"127.0.0.1:9253\"\n"),
        )
        .unwrap();
        assert_eq!(
            local.collector.http,
            Some("127.0.0.1:9253".parse().unwrap())
        );
        assert_eq!(advice(&local), Vec::<String>::new());
        let open = parse(
            "site.toml",
            &format!("{EXAMPLE}\n[collector]\nhttp = \"0.0.0.0:9253\"\n"),
        )
        .unwrap();
        let a = advice(&open);
        assert!(
            a.len() == 1 && a[0].contains("not a loopback address"),
            "{a:?}"
        );
    }

    #[test]
    fn collector_settings_that_outrun_the_policy_ages_are_advised_against() {
        let site = parse("site.toml", EXAMPLE).unwrap();
        assert_eq!(advice(&site), Vec::<String>::new(), "the defaults fit");
        let with =
            |extra: &str| advice(&parse("site.toml", &format!("{EXAMPLE}\n{extra}")).unwrap());
        let a = with("[collector]\nprobe_interval_ms = 30000\n");
        assert_eq!(a.len(), 2, "{a:?}");
        assert!(
            a[0].contains("probe_interval_ms = 30000") && a[0].contains("health_max_age_s = 60")
        );
        assert!(a[1].contains("down_after = 90000 ms"), "{a:?}");
        let a = with(
            "[collector]\nheartbeat_wait_ms = 90000\nregistration_poll_interval_ms = 900000\n",
        );
        assert_eq!(a.len(), 2, "{a:?}");
        assert!(a[0].contains("load_max_age_s") && a[1].contains("latency_max_age_s"));
        let a = with("[policy]\nhealth_max_age_s = 10\n");
        assert!(
            a.iter().any(|w| w.contains("health_max_age_s = 10")),
            "{a:?}"
        );
        // No probe and no event socket: nothing to advise.
        let bare = EXAMPLE
            .replace("esl = \"198.51.100.10:8021\"\n", "")
            .replace("esl_password = \"ClueCon\"\n", "")
            .replace("sip_probe = \"udp:198.51.100.10:5060\"\n", "");
        let site = parse(
            "site.toml",
            &format!(
                "{bare}\n[collector]\nprobe_interval_ms = 60000\nheartbeat_wait_ms = 600000\n"
            ),
        )
        .unwrap();
        assert_eq!(advice(&site), Vec::<String>::new());
    }

    #[test]
    fn probe_and_event_socket_values_are_refused_as_the_collector_would() {
        // Each of these passed apply before, and the collector then refused
        // to probe or connect.
        for (from, to, why) in [
            ("udp:198.51.100.10:5060", "udp:a b:5060", "sip_probe"),
            ("udp:198.51.100.10:5060", "udp:host:0", "sip_probe"),
            ("udp:198.51.100.10:5060", "sctp:host:5060", "sip_probe"),
            (
                "esl_password = \"ClueCon\"",
                "esl_password = \"\"",
                "ESL password",
            ),
            ("esl = \"198.51.100.10:8021\"", "esl = \":8021\"", "esl"),
        ] {
            let text = EXAMPLE.replacen(from, to, 1);
            assert_ne!(text, EXAMPLE);
            let e = err_of(&text);
            assert!(e.contains(why), "{to}: {e}");
            assert!(e.starts_with("site.toml:"), "{to}: {e}");
        }
        // What the collector accepts, apply accepts.
        for (from, to) in [
            ("udp:198.51.100.10:5060", "tcp:[2001:db8::1]:5060"),
            ("udp:198.51.100.10:5060", "UDP:sip-1.example.net:5080"),
        ] {
            let s = parse("site.toml", &EXAMPLE.replacen(from, to, 1)).unwrap();
            assert_eq!(s.nodes[0].sip_probe, Some(to.parse().unwrap()));
        }
    }

    #[test]
    fn a_bad_collector_value_names_its_own_line() {
        for (from, to) in [
            (
                "sip_probe = \"udp:198.51.100.10:5060\"",
                "sip_probe = \"udp:a b:5060\"",
            ),
            ("esl_password = \"ClueCon\"", "esl_password = \"\""),
            ("esl = \"198.51.100.10:8021\"", "esl = \"198.51.100.10\""),
            (
                "esl_password = \"ClueCon\"",
                "esl_password = \"ClueCon\"\nesl_profiles = [\"internal\", \"a b\"]",
            ),
            (
                "esl_password = \"ClueCon\"",
                "esl_password_file = \"/etc/x\\n\"",
            ),
        ] {
            let text = EXAMPLE.replacen(from, to, 1);
            assert_ne!(text, EXAMPLE);
            let last = to.lines().last().unwrap();
            let line = text.lines().position(|l| l == last).unwrap() + 1;
            let e = err_of(&text);
            assert!(
                e.starts_with(&format!("site.toml:{line}: node \"mtl1\": ")),
                "{to}: {e}"
            );
        }
        let e = err_of(&EXAMPLE.replacen(
            "esl_password = \"ClueCon\"",
            "esl_password = \"ClueCon\"\nesl_password_file = \"/etc/x\"",
            1,
        ));
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn a_node_is_stored_as_the_text_its_values_parse_from() {
        let site = parse(
            "site.toml",
            &EXAMPLE
                .replacen("udp:198.51.100.10:5060", "UDP:2001:db8::10:5060", 1)
                .replacen(
                    "esl_password = \"ClueCon\"",
                    "esl_password = \"ClueCon\"\nesl_profiles = [\"internal\", \"external\"]",
                    1,
                ),
        )
        .unwrap();
        let node = &site.nodes[0];
        let json = serde_json::to_string(node).unwrap();
        assert!(
            json.contains(r#""sip_probe":"udp:[2001:db8::10]:5060""#),
            "the canonical text: {json}"
        );
        assert!(
            json.contains(r#""esl_profiles":["internal","external"]"#),
            "{json}"
        );
        assert!(!json.contains("unusable"), "{json}");
        let back: Node = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, node);
        // The fields, in the order stored before the values were typed: an
        // existing database reads the same and applies unchanged.
        let at = |k: &str| json.find(&format!("\"{k}\":")).unwrap_or(usize::MAX);
        let order = [
            "name",
            "host",
            "ipv4",
            "ipv6",
            "esl",
            "esl_password",
            "esl_password_file",
            "esl_profiles",
            "sip_probe",
            "max_sessions",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{json}");
        assert_eq!(
            json,
            r#"{"name":"mtl1","host":"mtl1.voip.example.com","ipv4":["198.51.100.10"],"ipv6":["2001:db8:10::10"],"esl":"198.51.100.10:8021","esl_password":"ClueCon","esl_password_file":null,"esl_profiles":["internal","external"],"sip_probe":"udp:[2001:db8::10]:5060","max_sessions":1000}"#
        );
    }

    #[test]
    fn tls_probe_keys_parse_store_and_read_back() {
        let text = EXAMPLE.replacen(
            "sip_probe = \"udp:198.51.100.10:5060\"",
            "sip_probe = \"tls:198.51.100.10:5061\"\nsip_probe_server_name = \"sip.example.com\"\nsip_probe_ca = \"/etc/pdns-ha/sip-ca.pem\"",
            1,
        );
        let site = parse("site.toml", &text).unwrap();
        let node = &site.nodes[0];
        assert_eq!(node.sip_probe.as_ref().unwrap().transport, Transport::Tls);
        assert_eq!(
            node.sip_probe_server_name.as_ref().unwrap().as_str(),
            "sip.example.com"
        );
        assert_eq!(
            node.sip_probe_ca.as_ref().unwrap().as_str(),
            "/etc/pdns-ha/sip-ca.pem"
        );
        let json = serde_json::to_string(node).unwrap();
        assert!(
            json.ends_with(r#""max_sessions":1000,"sip_probe_server_name":"sip.example.com","sip_probe_ca":"/etc/pdns-ha/sip-ca.pem"}"#),
            "{json}"
        );
        let back: Node = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, node);
        // Without them a node is stored as before (the test above).
        let plain = serde_json::to_string(&parse("site.toml", EXAMPLE).unwrap().nodes[0]).unwrap();
        assert!(!plain.contains("sip_probe_ca"), "{plain}");
        // Refused: a bad name, an empty path, and either key without a TLS probe.
        for (from, to, want) in [
            ("\"sip.example.com\"", "\"a b\"", "sip_probe_server_name"),
            ("\"/etc/pdns-ha/sip-ca.pem\"", "\"\"", "sip_probe_ca"),
        ] {
            let e = err_of(&text.replacen(from, to, 1));
            assert!(e.contains(want) && e.starts_with("site.toml:"), "{e}");
        }
        let e = err_of(&text.replacen("tls:198.51.100.10:5061", "udp:198.51.100.10:5060", 1));
        assert!(e.contains("are for a TLS probe"), "{e}");
    }

    #[test]
    fn a_stored_value_that_no_longer_parses_is_left_out_not_fatal() {
        let site = parse("site.toml", EXAMPLE).unwrap();
        let json = serde_json::to_string(&site.nodes[0])
            .unwrap()
            .replace("udp:198.51.100.10:5060", "udp:a b:5060")
            .replace(r#""esl_password":"ClueCon""#, r#""esl_password":"""#)
            .replace(r#"["internal"]"#, r#"["internal","x y"]"#);
        let node: Node = serde_json::from_str(&json).unwrap();
        assert_eq!(node.sip_probe, None);
        assert_eq!(node.esl_password, None);
        assert_eq!(node.esl_profiles, SofiaProfile::defaults());
        assert_eq!(node.esl, site.nodes[0].esl, "the other values are kept");
        let why = &node.unusable;
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[0].contains("ESL password"), "{why:?}");
        assert!(why[1].contains("'udp:a b:5060'"), "{why:?}");
        assert!(why[2].contains("'x y'"), "{why:?}");
    }

    #[test]
    fn a_cname_conflict_names_the_line_of_the_cname() {
        let rec = |name: &str, t: &str, c: &str| {
            format!("\n[[record]]\nname = \"{name}\"\ntype = \"{t}\"\ncontent = \"{c}\"\n")
        };
        let cname = rec("x.voip.example.com", "CNAME", "y.example.net.");
        for (before, after) in [
            // The other data after the CNAME, before it, and after it with
            // a record of another name before; then a node's and the apex's.
            (String::new(), rec("x.voip.example.com", "A", "192.0.2.9")),
            (rec("x.voip.example.com", "A", "192.0.2.9"), String::new()),
            (
                rec("a.voip.example.com", "A", "192.0.2.9"),
                rec("x.voip.example.com", "A", "192.0.2.9"),
            ),
        ] {
            let text = format!("{EXAMPLE}{before}{cname}{after}");
            let line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| *l == "[[record]]")
                .nth(if before.is_empty() { 1 } else { 2 })
                .unwrap()
                .0
                + 1;
            let e = err_of(&text);
            assert!(
                e.starts_with(&format!(
                    "site.toml:{line}: record \"x.voip.example.com CNAME\": a CNAME cannot share"
                )),
                "line {line}: {e}"
            );
        }
        for name in ["mtl1.voip.example.com", "voip.example.com"] {
            let text = format!("{EXAMPLE}{}", rec(name, "CNAME", "y.example.net."));
            let line = text.lines().count() - 3;
            let e = err_of(&text);
            assert!(
                e.starts_with(&format!("site.toml:{line}: record \"{name} CNAME\"")),
                "line {line}: {e}"
            );
        }
    }

    #[test]
    fn refuses_wrong_files_with_line_and_reason() {
        let e = err_of(&EXAMPLE.replace(
            "nodes = [\"mtl1\", \"van1\"]\nanswers",
            "nodes = [\"mtl1\", \"ghost\"]\nanswers",
        ));
        assert!(e.starts_with("site.toml:"), "{e}");
        assert!(e.contains("unknown node \"ghost\""), "{e}");
        let e = err_of(&EXAMPLE.replace("203.0.113.20", "203.0.113.300"));
        assert!(
            e.contains("not an IPv4 address") && e.contains("site.toml:18:"),
            "{e}"
        );
        let e =
            err_of(&EXAMPLE.replace("_sip._tcp.voip.example.com", "_sip._tcp.other.example.net"));
        assert!(e.contains("outside every [zone]"), "{e}");
        let e = err_of(&EXAMPLE.replace("type = \"NAPTR\"", "type = \"A\""));
        assert!(e.contains("not an IPv4 address"), "{e}");
        let e = err_of(&EXAMPLE.replace("policy = \"load\"", "policy = \"fastest\""));
        assert!(e.contains("site.toml:3"), "{e}");
        let e = err_of(
            &(EXAMPLE.to_string()
                + "[pool.\"_SIP._udp.voip.example.com\"]\npolicy=\"static\"\nnodes=[\"mtl1\"]\n"),
        );
        assert!(e.contains("defined twice"), "{e}");
        let e = err_of(
            "[zone.\"a.example\"]\nns = [\"ns.a.example\"]\nhostmaster = \"h.a.example\"\nbogus = 1\n",
        );
        assert!(e.contains("site.toml:4") && e.contains("bogus"), "{e}");
        let e = err_of("this is = not toml [");
        assert!(e.starts_with("site.toml:1:"), "{e}");
        let e = err_of(&EXAMPLE.replace("content = '10 50", "content = '10\t50"));
        assert!(e.contains("control character"), "{e}");
        let e = err_of(&(EXAMPLE.to_string() + "[policy]\nlatency_alpha = 0\n"));
        assert!(e.contains("latency_alpha"), "{e}");
        for (bad, why) in [
            ("quality_alpha = 1.5", "quality_alpha"),
            ("quality_alpha = 0", "quality_alpha"),
            ("quality_tolerance_mos = -0.1", "quality_tolerance_mos"),
            ("quality_tolerance_mos = 4", "quality_tolerance_mos"),
            ("quality_tolerance_mos = nan", "quality_tolerance_mos"),
            ("quality_max_age_s = 0", "quality_max_age_s"),
            ("quality_min_calls = -1", "quality_min_calls"),
            ("quality_min_calls = \"ten\"", "quality_min_calls"),
        ] {
            let e = err_of(&format!("{EXAMPLE}[policy]\n{bad}\n"));
            assert!(e.contains(why) && e.starts_with("site.toml:"), "{bad}: {e}");
        }
        let s = parse(
            "site.toml",
            &(EXAMPLE.replace("policy = \"load\"", "policy = \"quality\"")
                + "[policy]\nquality_tolerance_mos = 0.3\nquality_min_calls = 20\n"),
        )
        .unwrap();
        assert_eq!(s.policy.quality_tolerance_mos, 0.3);
        assert_eq!(s.policy.quality_min_calls, 20);
        assert_eq!(s.policy.quality_max_age_s, 3600);
        assert!(
            s.services
                .iter()
                .map(|x| x.policy)
                .chain(s.pools.iter().map(|x| x.policy))
                .any(|p| p == Policy::Quality)
        );
    }
}
