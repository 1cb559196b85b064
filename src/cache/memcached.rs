//! memcached as the shared decision cache: a tiny text-protocol client (get
//! and set only) with hard millisecond bounds, the key and value formats, and
//! the validation of everything read back.
//!
//! # Why not the `memcache` crate
//! `memcache` 0.21 opens its connections through an r2d2 pool: building the
//! client connects at once (`Client::connect` fails, or blocks for the pool's
//! `connection_timeout`, when memcached is down), the pool connects with a
//! plain `TcpStream::connect` (no connect timeout: a black-holed address
//! blocks for the kernel's SYN retries, minutes), and a pool checkout waits
//! up to `connection_timeout` for a connection. Read/write timeouts are set
//! only on the connections that exist when they are set. None of that gives
//! a coprocess what it needs: start at once with memcached down, and never
//! spend more than a few milliseconds on memcached per question. The protocol
//! subset we need (`get`, `set ... noreply`) is small, so this module speaks
//! it on a `std::net::TcpStream` itself: one lazily opened connection per
//! server, `TCP_NODELAY`, one deadline per operation covering connect, write
//! and read, and a back-off after any error during which the server is not
//! asked at all.
//!
//! # Key, value, lifetime
//! Key (ASCII, no spaces, < 120 bytes):
//! `pdnsha1.SITE.GEN.EPOCH.TARGET.FAMILY.NET.LEN`, where SITE is a digest of
//! the topology (nodes with their database ids, services, pools, named
//! networks, policy settings), GEN and EPOCH are the database's `generation`
//! (bumped by `apply` and by drains) and `health_epoch` (bumped by health
//! changes), TARGET is `s` or `p` and a hash of the service or pool name,
//! and FAMILY/NET/LEN are the client network of [`DecisionKey`].
//!
//! Value: `v1 KEYHASH GEN EPOCH CREATED_MS SCOPE FAILED_OPEN ID:TIER:WEIGHT,...`
//! with the node's database id. Read back, it is checked field by field (see
//! [`decode`]) and a [`Decision`] is rebuilt from the site's own nodes: a
//! value can reorder or select among a target's own candidates, never add a
//! name, an address or a line. It must then agree with this server's node
//! states ([`crate::policy::disagreement`]): another DNS server's database
//! counts its own generation and health epoch, which may equal this one's
//! while a node is down in one and up in the other.
//!
//! Lifetime: a value older than `2000 - decision_cache_ms` ms is refused on
//! read, so that with the in-process cache in front a metric change shows in
//! at most 2 s. memcached's own expiry, [`EXPTIME_S`], only frees the memory:
//! its clock ticks in whole seconds, so an item set with an expiry of N s
//! lives between N - 1 and N s (1.2 to 1.8 s seen with N = 2); N is chosen
//! so that the age check, not that tick, ends a value's life.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

use super::{CacheStats, DecisionKey, SharedCache};
use crate::bounded::Scratch;
use crate::policy::{Decision, NodeView, Ranked, Reason};
use crate::site::Policy;
use crate::store::Store;
use crate::topology::Target;
use crate::topology::Topology;

/// Default bound of one memcached operation (connect + write + read).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3);
/// Default time a server is not asked after an error.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(5);
/// memcached item lifetime, seconds (see the module doc).
pub const EXPTIME_S: u32 = 3;
/// A metric change shows in at most this long (memcached age + in-process).
const STALENESS_MS: i64 = 2000;
// The shortest life memcached gives an item covers the longest age read.
const _: () = assert!((EXPTIME_S as i64 - 1) * 1000 >= STALENESS_MS);
/// A value stamped this far in the future (another server's clock) is
/// still accepted.
const FUTURE_SKEW_MS: i64 = 250;
/// Largest value read; a larger one is refused without being read.
pub const MAX_VALUE: usize = 8192;
/// The read buffer of a connection holds at most this much before a read
/// (a value, its `VALUE` line and `END`; more is a protocol error), so at
/// most this plus one read (4 KiB).
const READ_MAX: usize = MAX_VALUE + 1024;
/// The read buffer's first allocation: an answer to `get` is a `VALUE` line,
/// a value of about 100 bytes and `END`.
const READ_INITIAL: usize = 512;
/// The read buffer keeps its allocation up to this size; after a larger
/// answer (a value near [`MAX_VALUE`]) it goes back to [`READ_INITIAL`].
const READ_KEEP: usize = 2048;
/// Points per server on the hash ring.
const RING_POINTS: usize = 160;
/// Process counters in the database count for `status` this long.
const STATS_LIVE_S: i64 = 60;

/// Tunables of the client.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub timeout: Duration,
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: DEFAULT_TIMEOUT,
            backoff: DEFAULT_BACKOFF,
        }
    }
}

/// A client for `servers` (`HOST:PORT[,HOST:PORT...]`) with the default
/// options. Never connects here: fails only on a malformed list.
pub fn connect(servers: &str) -> Result<Box<dyn SharedCache>> {
    connect_with(servers, Options::default())
}

/// [`connect`] with options.
pub fn connect_with(servers: &str, opts: Options) -> Result<Box<dyn SharedCache>> {
    Ok(Box::new(Memcached::new(servers, opts)?))
}

/// The counters of every coprocess that wrote them in the last minute,
/// summed; None when no coprocess uses memcached.
pub fn stats_from_store(store: &Store) -> Result<Option<CacheStats>> {
    let now = crate::metrics::now();
    store.cache_stats_since(now - STATS_LIVE_S, now)
}

enum Addr {
    Ready(Vec<SocketAddr>),
    /// A host name being resolved by a background thread (resolving can
    /// block for seconds, and may even ask this very DNS server).
    Resolving(mpsc::Receiver<Vec<SocketAddr>>),
}

struct Conn {
    stream: TcpStream,
    buf: Scratch,
}

struct Server {
    label: String,
    addr: Addr,
    conn: Option<Conn>,
    down_until: Option<Instant>,
    /// An error happened since the last success (for the recovery log).
    failed: bool,
    /// When a failure was last logged as a warning.
    warned: Option<Instant>,
}

/// What a `get` found.
enum Found {
    Miss,
    Value(Vec<u8>),
    /// Announced larger than [`MAX_VALUE`]: not read, connection dropped.
    TooBig(usize),
}

enum OpError {
    /// The server's address is not resolved yet: not an error of memcached.
    NotReady,
    Io(io::Error),
}

impl From<io::Error> for OpError {
    fn from(e: io::Error) -> Self {
        OpError::Io(e)
    }
}

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Server {
    fn parse(spec: &str, opts: Options) -> Result<Server> {
        let spec = spec.trim();
        if let Ok(a) = spec.parse::<SocketAddr>() {
            return Ok(Server::with(spec, Addr::Ready(vec![a])));
        }
        let Some((host, port)) = spec.rsplit_once(':') else {
            bail!("--memcached: \"{spec}\" is not HOST:PORT");
        };
        let Ok(port) = port.parse::<u16>() else {
            bail!("--memcached: \"{spec}\": bad port \"{port}\"");
        };
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if host.is_empty() || !host.chars().all(ok) {
            bail!("--memcached: \"{spec}\": bad host \"{host}\"");
        }
        if host.eq_ignore_ascii_case("localhost") {
            let a = SocketAddr::from(([127, 0, 0, 1], port));
            return Ok(Server::with(spec, Addr::Ready(vec![a])));
        }
        let (tx, rx) = mpsc::channel();
        let host = host.to_string();
        let retry = opts.backoff;
        std::thread::Builder::new()
            .name("memcached-resolve".into())
            .spawn(move || {
                loop {
                    match (host.as_str(), port).to_socket_addrs() {
                        Ok(a) => {
                            let a: Vec<SocketAddr> = a.collect();
                            if !a.is_empty() {
                                let _ = tx.send(a);
                                return;
                            }
                            log::warn!("memcached {host}: no address; trying again");
                        }
                        Err(e) => log::warn!("memcached {host}: {e}; trying again"),
                    }
                    std::thread::sleep(retry);
                }
            })?;
        Ok(Server::with(spec, Addr::Resolving(rx)))
    }

    fn with(label: &str, addr: Addr) -> Server {
        Server {
            label: label.to_string(),
            addr,
            conn: None,
            down_until: None,
            failed: false,
            warned: None,
        }
    }

    fn conn(&mut self, deadline: Instant) -> Result<&mut Conn, OpError> {
        if self.conn.is_none() {
            if let Addr::Resolving(rx) = &self.addr {
                match rx.try_recv() {
                    Ok(a) => self.addr = Addr::Ready(a),
                    Err(_) => return Err(OpError::NotReady),
                }
            }
            let Addr::Ready(addrs) = &self.addr else {
                return Err(OpError::NotReady);
            };
            let stream = TcpStream::connect_timeout(&addrs[0], remaining(deadline)?)?;
            stream.set_nodelay(true)?;
            self.conn = Some(Conn {
                stream,
                buf: Scratch::new(READ_INITIAL, READ_KEEP),
            });
        }
        Ok(self.conn.as_mut().expect("connected"))
    }

    fn get(&mut self, key: &str, deadline: Instant) -> Result<Found, OpError> {
        let conn = self.conn(deadline)?;
        let mut req = Vec::with_capacity(key.len() + 6);
        req.extend_from_slice(b"get ");
        req.extend_from_slice(key.as_bytes());
        req.extend_from_slice(b"\r\n");
        conn.write(&req, deadline)?;
        let found = conn.read_get(key, deadline)?;
        if matches!(found, Found::TooBig(_)) {
            self.conn = None;
        } else {
            // Empty after a whole answer (`finish`).
            conn.buf.reset();
        }
        Ok(found)
    }

    fn set(&mut self, key: &str, value: &[u8], deadline: Instant) -> Result<(), OpError> {
        let conn = self.conn(deadline)?;
        let mut req = Vec::with_capacity(key.len() + value.len() + 48);
        let _ = write!(req, "set {key} 0 {EXPTIME_S} {} noreply\r\n", value.len());
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        conn.write(&req, deadline)?;
        Ok(())
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let r = deadline.saturating_duration_since(Instant::now());
    if r.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    } else {
        Ok(r)
    }
}

impl Conn {
    fn write(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        let mut off = 0;
        while off < data.len() {
            self.stream.set_write_timeout(Some(remaining(deadline)?))?;
            match self.stream.write(&data[off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn fill(&mut self, deadline: Instant) -> io::Result<()> {
        if self.buf.len() > READ_MAX {
            return Err(protocol_error("answer too long"));
        }
        let mut tmp = [0u8; 4096];
        loop {
            self.stream.set_read_timeout(Some(remaining(deadline)?))?;
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one line (without CRLF) from the buffer, filling it as needed.
    fn line(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            self.fill(deadline)?;
        }
    }

    fn read_get(&mut self, key: &str, deadline: Instant) -> io::Result<Found> {
        loop {
            let line = self.line(deadline)?;
            if line == b"END" {
                return self.finish(Found::Miss);
            }
            // Errors of earlier `noreply` sets (memcached reports some of
            // them anyway): not the answer to this get.
            if line == b"ERROR"
                || line.starts_with(b"SERVER_ERROR")
                || line.starts_with(b"CLIENT_ERROR")
            {
                continue;
            }
            let text = std::str::from_utf8(&line).map_err(|_| protocol_error("not text"))?;
            let f: Vec<&str> = text.split(' ').collect();
            let len = match f.as_slice() {
                ["VALUE", k, _flags, len] | ["VALUE", k, _flags, len, _] if *k == key => len
                    .parse::<usize>()
                    .map_err(|_| protocol_error("bad VALUE length"))?,
                _ => {
                    return Err(protocol_error(format!(
                        "unexpected answer \"{}\"",
                        text.escape_debug()
                    )));
                }
            };
            if len > MAX_VALUE {
                return Ok(Found::TooBig(len));
            }
            while self.buf.len() < len + 2 {
                self.fill(deadline)?;
            }
            if &self.buf[len..len + 2] != b"\r\n" {
                return Err(protocol_error("value not followed by CRLF"));
            }
            let value = self.buf[..len].to_vec();
            self.buf.drain(..len + 2);
            if self.line(deadline)? != b"END" {
                return Err(protocol_error("more than one value"));
            }
            return self.finish(Found::Value(value));
        }
    }

    fn finish(&mut self, f: Found) -> io::Result<Found> {
        if self.buf.is_empty() {
            Ok(f)
        } else {
            Err(protocol_error("unexpected bytes after END"))
        }
    }
}

/// The shared cache on one or more memcached servers.
pub struct Memcached {
    servers: Vec<Server>,
    /// (point, server index), sorted by point.
    ring: Vec<(u64, usize)>,
    opts: Options,
    stats: CacheStats,
    /// (topology address, generation) -> site digest.
    site: Option<(usize, i64, String)>,
}

impl Memcached {
    pub fn new(servers: &str, opts: Options) -> Result<Memcached> {
        let servers = servers
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Server::parse(s, opts))
            .collect::<Result<Vec<_>>>()?;
        if servers.is_empty() {
            bail!("--memcached: no server given");
        }
        let mut ring = Vec::with_capacity(servers.len() * RING_POINTS);
        for (i, s) in servers.iter().enumerate() {
            for p in 0..RING_POINTS {
                ring.push((hash64(format!("{}-{p}", s.label).as_bytes()), i));
            }
        }
        ring.sort_unstable();
        Ok(Memcached {
            servers,
            ring,
            opts,
            stats: CacheStats::default(),
            site: None,
        })
    }

    fn server_for(&self, key: &str) -> usize {
        if self.servers.len() == 1 {
            return 0;
        }
        let h = hash64(key.as_bytes());
        let i = self.ring.partition_point(|&(p, _)| p < h);
        self.ring[i % self.ring.len()].1
    }

    fn site_digest(&mut self, topo: &Topology) -> &str {
        let id = (topo as *const Topology as usize, topo.generation);
        if self.site.as_ref().is_none_or(|s| (s.0, s.1) != id) {
            self.site = Some((id.0, id.1, site_digest(topo)));
        }
        &self.site.as_ref().expect("set").2
    }

    /// Every server is backing off: nothing to do, not even a key to build.
    fn all_down(&self) -> bool {
        let now = Instant::now();
        self.servers
            .iter()
            .all(|s| s.down_until.is_some_and(|u| now < u))
    }

    /// The server for `key` if it may be asked now.
    fn usable(&mut self, key: &str) -> Option<usize> {
        let s = self.server_for(key);
        let server = &mut self.servers[s];
        if let Some(until) = server.down_until {
            if Instant::now() < until {
                return None;
            }
            server.down_until = None;
        }
        Some(s)
    }

    fn failed(&mut self, s: usize, what: &str, e: io::Error) {
        self.stats.errors += 1;
        let now = Instant::now();
        let server = &mut self.servers[s];
        server.conn = None;
        server.down_until = Some(now + self.opts.backoff);
        // A server that stays down is logged once a minute, not at every retry.
        let level = if server.failed
            && server
                .warned
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        {
            log::Level::Debug
        } else {
            server.warned = Some(now);
            log::Level::Warn
        };
        server.failed = true;
        log::log!(
            level,
            "memcached {}: {what} failed: {e}; answering without it, next try in {} ms",
            server.label,
            self.opts.backoff.as_millis()
        );
    }

    fn succeeded(&mut self, s: usize) {
        let server = &mut self.servers[s];
        if server.failed {
            server.failed = false;
            log::info!("memcached {}: answering again", server.label);
        }
    }
}

impl SharedCache for Memcached {
    fn get(
        &mut self,
        key: &DecisionKey,
        version: (i64, i64),
        topo: &Topology,
        views: &[NodeView],
    ) -> Option<Decision> {
        if self.all_down() {
            return None;
        }
        let k = key_string(self.site_digest(topo), key, version, topo);
        let s = self.usable(&k)?;
        let deadline = Instant::now() + self.opts.timeout;
        match self.servers[s].get(&k, deadline) {
            Ok(Found::Miss) => {
                self.succeeded(s);
                self.stats.misses += 1;
                None
            }
            Ok(Found::Value(v)) => {
                self.succeeded(s);
                let (_, _, policy, cands) = target_parts(topo, key.target);
                let checked = decode(&v, &k, key, version, topo, now_ms()).and_then(|d| {
                    match crate::policy::disagreement(&d, policy, cands, views) {
                        None => Ok(d),
                        Some(why) => Err(format!("this server's node states disagree: {why}")),
                    }
                });
                match checked {
                    Ok(d) => {
                        self.stats.hits += 1;
                        Some(d)
                    }
                    // Expired by age (memcached's own expiry is in whole
                    // seconds): an ordinary miss.
                    Err(why) if why == STALE => {
                        self.stats.misses += 1;
                        None
                    }
                    Err(why) => {
                        self.stats.rejected += 1;
                        log::debug!("memcached value under {k} refused: {why}");
                        None
                    }
                }
            }
            Ok(Found::TooBig(n)) => {
                self.succeeded(s);
                self.stats.rejected += 1;
                log::debug!("memcached value under {k} refused: {n} bytes");
                None
            }
            Err(OpError::NotReady) => None,
            Err(OpError::Io(e)) => {
                self.failed(s, "get", e);
                None
            }
        }
    }

    fn put(&mut self, key: &DecisionKey, version: (i64, i64), topo: &Topology, d: &Decision) {
        if self.all_down() {
            return;
        }
        let k = key_string(self.site_digest(topo), key, version, topo);
        let Some(v) = encode(&k, version, topo, d, now_ms()) else {
            return;
        };
        let Some(s) = self.usable(&k) else { return };
        let deadline = Instant::now() + self.opts.timeout;
        match self.servers[s].set(&k, v.as_bytes(), deadline) {
            Ok(()) | Err(OpError::NotReady) => {}
            Err(OpError::Io(e)) => self.failed(s, "set", e),
        }
    }

    fn stats(&self) -> CacheStats {
        let now = Instant::now();
        let left = self
            .servers
            .iter()
            .filter_map(|s| s.down_until)
            .filter(|&u| u > now)
            .map(|u| u - now)
            .max();
        CacheStats {
            backing_off: left.is_some(),
            backoff_until: left.map_or(0, |d| {
                crate::metrics::now() + d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0)
            }),
            ..self.stats
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// FNV-1a 64 with a final mix: stable across processes, builds and hosts
/// (every DNS server must pick the same memcached server for a key).
pub fn hash64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A digest of everything a decision's meaning depends on in the topology:
/// node ids and names, services and pools with their candidates, named
/// networks and the policy settings. Two DNS servers with the same site
/// share keys; two different sites on one memcached never do.
pub fn site_digest(topo: &Topology) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(1024);
    for n in &topo.nodes {
        let _ = write!(
            s,
            "n{} {} {} {:?};",
            n.id, n.def.name, n.def.host, n.def.max_sessions
        );
    }
    let cands = |s: &mut String, c: &[crate::policy::Candidate]| {
        for c in c {
            let _ = write!(s, "{}/{}/{},", c.node, c.priority, c.weight);
        }
    };
    for v in &topo.services {
        let _ = write!(s, "s{} {};", v.name, v.policy.as_str());
        cands(&mut s, &v.candidates);
    }
    for p in &topo.pools {
        let _ = write!(s, "p{} {} {};", p.name, p.policy.as_str(), p.answers);
        cands(&mut s, &p.candidates);
    }
    for n in &topo.networks {
        let _ = write!(s, "w{} {} {:?} {:?};", n.id, n.name, n.prefixes, n.prefer);
    }
    let _ = write!(
        s,
        "{}",
        serde_json::to_string(&topo.policy).unwrap_or_default()
    );
    format!("{:012x}", hash64(s.as_bytes()) >> 16)
}

fn target_parts(topo: &Topology, t: Target) -> (char, &str, Policy, &[crate::policy::Candidate]) {
    match t {
        Target::Service(i) => {
            let s = &topo.services[i];
            ('s', &s.name, s.policy, &s.candidates)
        }
        Target::Pool(i) => {
            let p = &topo.pools[i];
            ('p', &p.name, p.policy, &p.candidates)
        }
    }
}

/// The memcached key of a decision: ASCII letters, digits and dots only,
/// at most ~110 bytes.
pub fn key_string(site: &str, key: &DecisionKey, version: (i64, i64), topo: &Topology) -> String {
    let (kind, name, _, _) = target_parts(topo, key.target);
    format!(
        "pdnsha1.{site}.{}.{}.{kind}{:016x}.{}.{:x}.{}",
        version.0,
        version.1,
        hash64(name.as_bytes()),
        key.family,
        key.net as u64,
        key.len
    )
}

/// The value stored for a decision, or None if it is not worth sharing.
pub fn encode(
    key: &str,
    version: (i64, i64),
    topo: &Topology,
    d: &Decision,
    now_ms: i64,
) -> Option<String> {
    use std::fmt::Write as _;
    if d.ranked.is_empty() {
        return None;
    }
    let mut v = format!(
        "v1 {:016x} {} {} {now_ms} {} {} ",
        hash64(key.as_bytes()),
        version.0,
        version.1,
        d.scope,
        u8::from(d.failed_open)
    );
    for (i, r) in d.ranked.iter().enumerate() {
        let id = topo.nodes.get(r.node)?.id;
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(v, "{sep}{id}:{}:{}", r.tier, r.weight);
    }
    (v.len() <= MAX_VALUE).then_some(v)
}

/// The refusal of [`decode`] for a value that is only too old.
pub const STALE: &str = "too old";

/// Parses and checks a value read under `k` (the key string of `key`):
/// format and version; the key it was written for; its age; the scope (0
/// for static, at most the key's length); failed-open 0/1; every node a
/// distinct candidate of the target; tiers in answer order and weights as
/// the policy makes them (site priority and weight for static and fail open,
/// the site weight or 1..=1000 for load, tiers at most the number of
/// candidates otherwise); fail open only with every candidate.
pub fn decode(
    value: &[u8],
    k: &str,
    key: &DecisionKey,
    version: (i64, i64),
    topo: &Topology,
    now_ms: i64,
) -> Result<Decision, String> {
    let text = std::str::from_utf8(value).map_err(|_| "not UTF-8".to_string())?;
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err("control or non-ASCII characters".into());
    }
    let f: Vec<&str> = text.split(' ').collect();
    let [
        tag,
        keyhash,
        generation,
        epoch,
        created,
        scope,
        failed_open,
        list,
    ] = f.as_slice()
    else {
        return Err("wrong number of fields".into());
    };
    if *tag != "v1" {
        return Err(format!("format {tag}"));
    }
    if *keyhash != format!("{:016x}", hash64(k.as_bytes())) {
        return Err("written for another key".into());
    }
    let num = |s: &str, what: &str| -> Result<i64, String> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(format!("bad {what}"));
        }
        s.parse::<i64>().map_err(|_| format!("bad {what}"))
    };
    if (num(generation, "generation")?, num(epoch, "health epoch")?) != version {
        return Err("another version".into());
    }
    let age = now_ms - num(created, "time")?;
    let max_age = (STALENESS_MS - topo.policy.decision_cache_ms as i64).max(0);
    if age > max_age {
        return Err(STALE.into());
    }
    if age < -FUTURE_SKEW_MS {
        return Err(format!("stamped {} ms in the future", -age));
    }
    let (_, _, policy, cands) = target_parts(topo, key.target);
    let scope = num(scope, "scope")?;
    let max_scope = if policy == Policy::Static { 0 } else { key.len };
    if !(0..=max_scope as i64).contains(&scope) {
        return Err(format!("scope {scope} out of range"));
    }
    let failed_open = match *failed_open {
        "0" => false,
        "1" => true,
        _ => return Err("bad failed-open flag".into()),
    };
    let mut ranked: Vec<Ranked> = Vec::with_capacity(cands.len());
    let mut used = vec![false; cands.len()];
    let mut last_tier = 0u16;
    for item in list.split(',') {
        let mut p = item.split(':');
        let (Some(id), Some(tier), Some(weight), None) = (p.next(), p.next(), p.next(), p.next())
        else {
            return Err(format!("bad node entry \"{item}\""));
        };
        let id = num(id, "node id")?;
        let tier = u16::try_from(num(tier, "tier")?).map_err(|_| "tier out of range")?;
        let weight = u16::try_from(num(weight, "weight")?).map_err(|_| "weight out of range")?;
        let node = *topo
            .node_index
            .get(&id)
            .ok_or_else(|| format!("node id {id} is not in the site"))?;
        let ci = cands
            .iter()
            .position(|c| c.node == node)
            .ok_or_else(|| format!("node id {id} is not a candidate"))?;
        if std::mem::replace(&mut used[ci], true) {
            return Err(format!("node id {id} twice"));
        }
        let c = cands[ci];
        if tier < last_tier {
            return Err("tiers out of order".into());
        }
        last_tier = tier;
        let ok = if policy == Policy::Static || failed_open {
            tier == c.priority && weight == c.weight
        } else {
            usize::from(tier) <= cands.len()
                && (weight == c.weight || (policy == Policy::Load && (1..=1000).contains(&weight)))
        };
        if !ok {
            return Err(format!(
                "tier/weight {tier}/{weight} impossible for node id {id}"
            ));
        }
        ranked.push(Ranked {
            node,
            tier,
            weight,
            reason: Reason::Shared,
        });
    }
    if failed_open && ranked.len() != cands.len() {
        return Err("fail open without every node".into());
    }
    Ok(Decision {
        ranked,
        left_out: Vec::new(),
        scope: scope as u8,
        failed_open,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Prefix;
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
nodes = ["a", "b"]
[service."_sip._tcp.voip.example.com"]
policy = "static"
port = 5060
nodes = [{ node = "a", priority = 10, weight = 60 }, { node = "b", priority = 20, weight = 5 }]
[pool."sip.voip.example.com"]
policy = "load"
nodes = ["a", "b", "c"]
[service."_sips._tcp.voip.example.com"]
policy = "quality"
port = 5061
nodes = ["a", "b", "c"]
"#;

    fn topo() -> Topology {
        let site = crate::site::parse("test.toml", SITE).expect("site");
        let ids = Ids {
            zones: vec![1],
            nodes: (0..site.nodes.len() as i64).map(|i| 100 + i).collect(),
            networks: vec![],
        };
        Topology::build(site, &ids, 7)
    }

    fn svc(t: &Topology, name: &str) -> Target {
        Target::Service(t.services.iter().position(|s| s.name == name).unwrap())
    }

    fn client() -> Prefix {
        "10.1.2.0/24".parse().unwrap()
    }

    fn ranked(node: usize, tier: u16, weight: u16) -> Ranked {
        Ranked {
            node,
            tier,
            weight,
            reason: Reason::Measured(1.0),
        }
    }

    #[test]
    fn a_decision_survives_the_round_trip_and_keys_are_safe() {
        let t = topo();
        let target = svc(&t, "_sip._udp.voip.example.com");
        let key = DecisionKey::new(target, Policy::Latency, &client());
        let site = site_digest(&t);
        let k = key_string(&site, &key, (7, 3), &t);
        assert!(k.len() <= 250 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        assert!(k.contains(".7.3."), "{k}");
        let d = Decision {
            ranked: vec![ranked(1, 0, 100), ranked(0, 1, 100)],
            left_out: vec![],
            scope: 16,
            failed_open: false,
        };
        let v = encode(&k, (7, 3), &t, &d, 1_000_000).unwrap();
        let back = decode(v.as_bytes(), &k, &key, (7, 3), &t, 1_000_100).unwrap();
        assert_eq!(
            back.ranked
                .iter()
                .map(|r| (r.node, r.tier, r.weight))
                .collect::<Vec<_>>(),
            [(1, 0, 100), (0, 1, 100)]
        );
        assert_eq!(back.scope, 16);
        assert!(back.ranked.iter().all(|r| r.reason == Reason::Shared));
        // Other version, other key, too old, from the future: refused.
        assert!(decode(v.as_bytes(), &k, &key, (7, 4), &t, 1_000_100).is_err());
        assert!(decode(v.as_bytes(), &k, &key, (8, 3), &t, 1_000_100).is_err());
        let other = DecisionKey::new(target, Policy::Latency, &"10.9.9.0/24".parse().unwrap());
        let k2 = key_string(&site, &other, (7, 3), &t);
        assert_ne!(k, k2);
        assert!(decode(v.as_bytes(), &k2, &other, (7, 3), &t, 1_000_100).is_err());
        assert_eq!(
            decode(v.as_bytes(), &k, &key, (7, 3), &t, 1_002_000).unwrap_err(),
            STALE
        );
        // decision_cache_ms is 1000 by default: 1000 ms old is the limit.
        assert!(decode(v.as_bytes(), &k, &key, (7, 3), &t, 1_001_000).is_ok());
        assert!(decode(v.as_bytes(), &k, &key, (7, 3), &t, 1_001_001).is_err());
        assert!(decode(v.as_bytes(), &k, &key, (7, 3), &t, 999_000).is_err());
    }

    #[test]
    fn a_quality_decision_is_shared_per_client_network_with_site_weights() {
        let t = topo();
        let target = svc(&t, "_sips._tcp.voip.example.com");
        let key = DecisionKey::new(target, Policy::Quality, &client());
        let other = DecisionKey::new(target, Policy::Quality, &"10.9.9.0/24".parse().unwrap());
        assert_ne!(key, other, "keyed by the client network, as latency");
        let site = site_digest(&t);
        let k = key_string(&site, &key, (7, 3), &t);
        // Two nodes sharing the best tier (near-equal MOS), one after.
        let d = Decision {
            ranked: vec![ranked(2, 0, 100), ranked(0, 0, 100), ranked(1, 1, 100)],
            left_out: vec![],
            scope: 24,
            failed_open: false,
        };
        let v = encode(&k, (7, 3), &t, &d, 1_000_000).unwrap();
        let back = decode(v.as_bytes(), &k, &key, (7, 3), &t, 1_000_100).unwrap();
        let places: Vec<_> = back
            .ranked
            .iter()
            .map(|r| (r.node, r.tier, r.weight))
            .collect();
        assert_eq!(places, [(2, 0, 100), (0, 0, 100), (1, 1, 100)]);
        // A weight the quality policy cannot make (it keeps the site's).
        let h = format!("{:016x}", hash64(k.as_bytes()));
        let forged = format!("v1 {h} 7 3 1000000 24 0 102:0:500,100:1:100");
        assert!(decode(forged.as_bytes(), &k, &key, (7, 3), &t, 1_000_100).is_err());
    }

    #[test]
    fn forged_values_are_refused() {
        let t = topo();
        let target = svc(&t, "_sip._udp.voip.example.com");
        let key = DecisionKey::new(target, Policy::Latency, &client());
        let k = key_string(&site_digest(&t), &key, (7, 3), &t);
        let h = format!("{:016x}", hash64(k.as_bytes()));
        let now = 5_000_000;
        let ok = format!("v1 {h} 7 3 {now} 24 0 101:0:100,100:1:100");
        assert!(decode(ok.as_bytes(), &k, &key, (7, 3), &t, now).is_ok());
        for bad in [
            String::new(),
            "garbage".into(),
            format!("v2 {h} 7 3 {now} 24 0 101:0:100"),
            format!("v1 {h} 7 3 {now} 25 0 101:0:100"), // scope > key's /24
            format!("v1 {h} 7 3 {now} 24 2 101:0:100"),
            format!("v1 {h} 7 3 {now} 24 0 999:0:100"), // not in the site
            format!("v1 {h} 7 3 {now} 24 0 102:0:100"), // not a candidate
            format!("v1 {h} 7 3 {now} 24 0 101:0:100,101:1:100"), // twice
            format!("v1 {h} 7 3 {now} 24 0 101:1:100,100:0:100"), // tier order
            format!("v1 {h} 7 3 {now} 24 0 101:0:7"),   // not its weight
            format!("v1 {h} 7 3 {now} 24 0 101:70000:100"),
            format!("v1 {h} 7 3 {now} 24 0 101:9:100"), // tier > candidates
            format!("v1 {h} 7 3 {now} 24 1 101:0:100"), // fail open, not all
            format!("v1 {h} 7 3 {now} 24 0 101:0:100\n"),
            format!("v1 {h} 7 3 {now} 24 0 101:0:100\nDATA\tx"),
            format!("v1 {h} 7 3 {now} 24 0 101:0:100 extra"),
            format!("v1 {h} 7 3 {now} 24 0 101:0:100:5"),
            format!("v1 {h} 7 3 {now} -1 0 101:0:100"),
            format!("v1 {h} 7 3 {now} 24 0 "),
        ] {
            assert!(
                decode(bad.as_bytes(), &k, &key, (7, 3), &t, now).is_err(),
                "accepted {bad:?}"
            );
        }
        assert!(decode(&[0xff, 0xfe], &k, &key, (7, 3), &t, now).is_err());
    }

    #[test]
    fn static_and_load_rules() {
        let t = topo();
        let st = svc(&t, "_sip._tcp.voip.example.com");
        let key = DecisionKey::new(st, Policy::Static, &client());
        let k = key_string(&site_digest(&t), &key, (7, 3), &t);
        let h = format!("{:016x}", hash64(k.as_bytes()));
        let now = 5_000_000;
        let ok = format!("v1 {h} 7 3 {now} 0 0 100:10:60,101:20:5");
        assert!(decode(ok.as_bytes(), &k, &key, (7, 3), &t, now).is_ok());
        let bad = format!("v1 {h} 7 3 {now} 24 0 100:10:60"); // static scope is 0
        assert!(decode(bad.as_bytes(), &k, &key, (7, 3), &t, now).is_err());
        let bad = format!("v1 {h} 7 3 {now} 0 0 100:0:60"); // not its priority
        assert!(decode(bad.as_bytes(), &k, &key, (7, 3), &t, now).is_err());
        let pool = Target::Pool(0);
        let key = DecisionKey::new(pool, Policy::Load, &client());
        let k = key_string(&site_digest(&t), &key, (7, 3), &t);
        let h = format!("{:016x}", hash64(k.as_bytes()));
        let ok = format!("v1 {h} 7 3 {now} 24 0 102:0:514,100:0:486,101:1:100");
        assert!(decode(ok.as_bytes(), &k, &key, (7, 3), &t, now).is_ok());
        let bad = format!("v1 {h} 7 3 {now} 24 0 102:0:1001");
        assert!(decode(bad.as_bytes(), &k, &key, (7, 3), &t, now).is_err());
    }

    #[test]
    fn the_read_buffer_gives_back_what_a_large_value_took() {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A fake memcached: a value of MAX_VALUE bytes, then a small one.
        let fake = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            for len in [MAX_VALUE, 100] {
                let mut req = String::new();
                r.read_line(&mut req).unwrap();
                let key = req.trim_end().strip_prefix("get ").unwrap().to_string();
                let value = "x".repeat(len);
                write!(w, "VALUE {key} 0 {len}\r\n{value}\r\nEND\r\n").unwrap();
            }
        });
        let mut server = Server::with("fake", Addr::Ready(vec![addr]));
        for len in [MAX_VALUE, 100] {
            let deadline = Instant::now() + Duration::from_secs(5);
            let Ok(Found::Value(v)) = server.get("k", deadline) else {
                panic!("no value")
            };
            assert_eq!(v.len(), len);
            let buf = &server.conn.as_ref().unwrap().buf;
            assert!(buf.is_empty());
            assert!(buf.capacity() <= READ_KEEP, "{}", buf.capacity());
        }
        fake.join().unwrap();
    }

    #[test]
    fn servers_are_spread_by_key_and_parsed_strictly() {
        let m = Memcached::new("127.0.0.1:1,127.0.0.1:2,localhost:3", Options::default()).unwrap();
        let mut count = [0usize; 3];
        for i in 0..3000 {
            count[m.server_for(&format!("pdnsha1.x.{i}"))] += 1;
        }
        assert!(count.iter().all(|&c| c > 600), "{count:?}");
        // Stable: the same key always goes to the same server.
        assert_eq!(m.server_for("pdnsha1.k"), m.server_for("pdnsha1.k"));
        for bad in ["", "nohost", "127.0.0.1:x", "a b:1", ":11211"] {
            assert!(Memcached::new(bad, Options::default()).is_err(), "{bad}");
        }
        assert!(Memcached::new("[::1]:11211", Options::default()).is_ok());
    }
}
