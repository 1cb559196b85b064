//! What a coprocess answered for dynamic names, counted in memory and
//! written to the store in batches: the client networks ([`SeenCounter`],
//! `status` shows the busiest) and the node each answer put first
//! ([`FirstCounter`], `pdns_ha_answers_total`). Bounded: at most
//! [`SEEN_MAX`] networks and [`FIRST_MAX`] nodes between two flushes; more
//! are counted as dropped, not queued.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::bounded::BoundedMap;
use crate::net::Prefix;
use crate::site::Policy;

/// How often seen client networks are written.
pub const SEEN_FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Client networks counted between two flushes (every 5 s): the busiest
/// networks ask within the first seconds of each interval, and `status`
/// shows the ten busiest; more networks are dropped (and counted as such),
/// not queued.
pub const SEEN_MAX: usize = 1792;
/// Budget of the counter: its table (34 KiB: 2048 slots of a network as one
/// integer, a count and a control byte; entries own no heap).
pub const SEEN_BYTES: usize = 36 * 1024;

pub struct SeenCounter {
    /// Per network ([`key`]), its count.
    counts: BoundedMap<u64, u32>,
    /// Networks not counted since the last flush (the counter was full).
    pub dropped: u64,
    last_flush: Instant,
}

impl Default for SeenCounter {
    fn default() -> Self {
        SeenCounter {
            counts: BoundedMap::new(SEEN_BYTES, SEEN_MAX),
            dropped: 0,
            last_flush: Instant::now(),
        }
    }
}

impl SeenCounter {
    /// Counts a question from `client` for a name of `policy`: static names
    /// and questions without a client (the SOA walk, AXFR) are not counted.
    /// The network is kept at the fine level (/24, /48).
    pub fn note(&mut self, client: &Prefix, policy: Policy) {
        if policy == Policy::Static || client.addr.is_unspecified() {
            return;
        }
        let key = key(&client.truncate(client.family().fine()));
        if !self.counts.upsert(key, |n| *n += 1, || 1) {
            self.dropped += 1;
        }
    }

    /// True once [`SEEN_FLUSH_EVERY`] has passed, at `now`, since the last
    /// [`take`].
    ///
    /// [`take`]: SeenCounter::take
    pub fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_flush) >= SEEN_FLUSH_EVERY
    }

    /// The counts since the last call, emptied; starts a new interval.
    pub fn take(&mut self) -> Vec<(Prefix, u32)> {
        self.last_flush = Instant::now();
        self.counts.drain().map(|(k, n)| (prefix(k), n)).collect()
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.counts.bytes()
    }
}

/// Nodes counted between two flushes (a site has tens).
pub const FIRST_MAX: usize = 448;
/// Budget of the node counter: 512 slots of a node id, a count and a
/// control byte.
pub const FIRST_BYTES: usize = 9 * 1024;

/// How many answers put each node first, by node id (the store's), since
/// the last flush.
pub struct FirstCounter {
    counts: BoundedMap<i64, u32>,
    pub dropped: u64,
}

impl Default for FirstCounter {
    fn default() -> Self {
        FirstCounter {
            counts: BoundedMap::new(FIRST_BYTES, FIRST_MAX),
            dropped: 0,
        }
    }
}

impl FirstCounter {
    pub fn note(&mut self, node_id: i64) {
        if !self
            .counts
            .upsert(node_id, |n| *n = n.saturating_add(1), || 1)
        {
            self.dropped += 1;
        }
    }

    /// The counts since the last call, emptied.
    pub fn take(&mut self) -> Vec<(i64, u32)> {
        self.counts.drain().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.counts.bytes()
    }
}

/// A network of at most 48 bits (IPv6) or 24 (IPv4) as one integer: the
/// address's first 64 bits (an IPv4 address in the high 32), whose low 16
/// are then zero, hold the family (bit 8) and the length (bits 0-7).
fn key(p: &Prefix) -> u64 {
    debug_assert!(p.len <= p.family().fine());
    match p.addr {
        IpAddr::V4(a) => u64::from(u32::from(a)) << 32 | u64::from(p.len),
        IpAddr::V6(a) => (u128::from(a) >> 64) as u64 | 1 << 8 | u64::from(p.len),
    }
}

/// The network of a [`key`].
fn prefix(key: u64) -> Prefix {
    let len = key as u8;
    let addr = if key & 1 << 8 == 0 {
        IpAddr::V4(Ipv4Addr::from((key >> 32) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(u128::from(key & !0xffff) << 64))
    };
    Prefix::new(addr, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_fine_network_and_skips_static_and_clientless_questions() {
        let mut s = SeenCounter::default();
        s.note(&p("198.51.100.7"), Policy::Latency);
        s.note(&p("198.51.100.200/32"), Policy::Load);
        s.note(&p("198.51.100.0/24"), Policy::Latency);
        s.note(&p("2001:db8:1:2::1"), Policy::Latency);
        s.note(&p("192.0.2.1"), Policy::Static);
        s.note(&p("0.0.0.0/0"), Policy::Latency);
        let mut got = s.take();
        got.sort_by_key(|(p, _)| p.to_string());
        assert_eq!(
            got,
            vec![(p("198.51.100.0/24"), 3), (p("2001:db8:1::/48"), 1)]
        );
        assert!(s.is_empty());
        assert!(!s.due(Instant::now()), "take starts a new interval");
        assert!(s.due(Instant::now() + SEEN_FLUSH_EVERY));
    }

    #[test]
    fn a_full_counter_drops_new_networks_and_says_how_many() {
        let mut s = SeenCounter::default();
        for i in 0..(SEEN_MAX + 100) {
            s.note(
                &p(&format!("10.{}.{}.0/24", i / 256, i % 256)),
                Policy::Latency,
            );
        }
        assert_eq!(s.len(), SEEN_MAX);
        assert_eq!(s.dropped, 100);
        assert!(s.bytes() <= SEEN_BYTES);
        // A network already counted is still counted.
        s.note(&p("10.0.0.9"), Policy::Latency);
        let got = s.take();
        assert_eq!(
            got.iter().find(|(n, _)| *n == p("10.0.0.0/24")).unwrap().1,
            2
        );
    }

    #[test]
    fn first_nodes_are_counted_per_node_and_bounded() {
        let mut f = FirstCounter::default();
        for id in [7, 7, 3, 7] {
            f.note(id);
        }
        let mut got = f.take();
        got.sort();
        assert_eq!(got, [(3, 1), (7, 3)]);
        assert!(f.is_empty());
        for id in 0..(FIRST_MAX as i64 + 10) {
            f.note(id);
        }
        assert_eq!(f.dropped, 10);
        assert!(f.bytes() <= FIRST_BYTES);
        assert_eq!(f.take().len(), FIRST_MAX);
    }

    #[test]
    fn a_network_is_kept_as_one_integer_and_read_back_whole() {
        for net in [
            "198.51.100.0/24",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "255.255.255.0/24",
            "2001:db8:1::/48",
            "ffff:ffff:ffff::/48",
            "2001:db8::/32",
            "::/0",
        ] {
            assert_eq!(prefix(key(&p(net))), p(net), "{net}");
        }
        assert_ne!(key(&p("0.0.0.0/0")), key(&p("::/0")));
        assert_ne!(key(&p("10.0.0.0/8")), key(&p("10.0.0.0/16")));
    }
}
