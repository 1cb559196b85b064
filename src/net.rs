//! Client networks: addresses, prefixes and the aggregation levels latency is
//! kept at. Pure arithmetic, no I/O.
//!
//! A prefix is stored in the database as `(family, net, plen)` where `net` is
//! an integer: the masked IPv4 address, or the masked top 64 bits of an IPv6
//! address (every IPv6 level is /64 or shorter).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::text::quote;

/// IPv4 levels, most specific first: the fine level, then coarser ones.
pub const V4_LEVELS: [u8; 3] = [24, 16, 8];
/// IPv6 levels, most specific first.
pub const V6_LEVELS: [u8; 2] = [48, 32];

/// An address family tag as stored in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4 = 4,
    V6 = 6,
}

impl Family {
    pub fn levels(self) -> &'static [u8] {
        match self {
            Family::V4 => &V4_LEVELS,
            Family::V6 => &V6_LEVELS,
        }
    }

    /// The fine level: the most specific one latency is kept at.
    pub fn fine(self) -> u8 {
        self.levels()[0]
    }

    pub fn max_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub fn code(self) -> i64 {
        self as i64
    }
}

/// An IP prefix (address with host bits cleared, and a length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Builds a prefix, clearing the host bits. `len` is capped at the
    /// family's maximum.
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        let len = len.min(family(addr).max_len());
        Prefix {
            addr: mask(addr, len),
            len,
        }
    }

    pub fn host(addr: IpAddr) -> Prefix {
        Prefix::new(addr, family(addr).max_len())
    }

    pub fn family(&self) -> Family {
        family(self.addr)
    }

    /// True if `other` lies inside this prefix (or is equal to it).
    pub fn contains(&self, other: &Prefix) -> bool {
        self.family() == other.family()
            && other.len >= self.len
            && mask(other.addr, self.len) == self.addr
    }

    /// This prefix shortened to `len` (no-op when already shorter).
    pub fn truncate(&self, len: u8) -> Prefix {
        Prefix::new(self.addr, len.min(self.len))
    }

    /// The integer stored in the database for this prefix (see module doc).
    pub fn net_key(&self) -> i64 {
        match self.addr {
            IpAddr::V4(a) => u32::from(a) as i64,
            IpAddr::V6(a) => (u128::from(a) >> 64) as u64 as i64,
        }
    }

    /// Inverse of [`Prefix::net_key`].
    pub fn from_key(family: Family, net: i64, len: u8) -> Prefix {
        let addr = match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(net as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(((net as u64) as u128) << 64)),
        };
        Prefix::new(addr, len)
    }

    /// The levels (most specific first) at which a sample for this prefix is
    /// aggregated: only levels no more specific than the prefix itself.
    pub fn levels(&self) -> impl Iterator<Item = Prefix> + '_ {
        self.family()
            .levels()
            .iter()
            .filter(move |&&l| l <= self.len)
            .map(move |&l| self.truncate(l))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    /// Parses `ADDR` or `ADDR/LEN`. Host bits are cleared.
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{} is not an IPv4 or IPv6 address", quote(a)))?;
        let max = family(addr).max_len();
        let len = match l {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "{} is not a prefix length from 0 to {max}",
                        quote(l)
                    ));
                }
            },
        };
        Ok(Prefix::new(addr, len))
    }
}

pub fn family(addr: IpAddr) -> Family {
    match addr {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_masks() {
        assert_eq!(p("203.0.113.77/24").to_string(), "203.0.113.0/24");
        assert_eq!(p("203.0.113.77").len, 32);
        assert_eq!(
            p("2001:db8:1234:5678::1/48").to_string(),
            "2001:db8:1234::/48"
        );
        assert_eq!(p("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nope".parse::<Prefix>().is_err());
        assert!("::1/129".parse::<Prefix>().is_err());
    }

    #[test]
    fn containment() {
        assert!(p("24.64.0.0/13").contains(&p("24.70.1.0/24")));
        assert!(!p("24.64.0.0/13").contains(&p("24.72.1.0/24")));
        assert!(!p("24.64.0.0/13").contains(&p("24.0.0.0/8")));
        assert!(!p("24.64.0.0/13").contains(&p("2001:db8::/48")));
        assert!(p("::/0").contains(&p("2001:db8::1")));
    }

    #[test]
    fn levels_respect_the_source_length() {
        let l: Vec<String> = p("10.1.2.3").levels().map(|x| x.to_string()).collect();
        assert_eq!(l, ["10.1.2.0/24", "10.1.0.0/16", "10.0.0.0/8"]);
        let l: Vec<String> = p("10.1.2.0/20").levels().map(|x| x.to_string()).collect();
        assert_eq!(l, ["10.1.0.0/16", "10.0.0.0/8"]);
        let l: Vec<String> = p("2001:db8:1:2::5")
            .levels()
            .map(|x| x.to_string())
            .collect();
        assert_eq!(l, ["2001:db8:1::/48", "2001:db8::/32"]);
    }

    #[test]
    fn keys_round_trip() {
        for s in ["10.1.2.0/24", "2001:db8:1::/48", "ffff:ffff::/32"] {
            let x = p(s);
            assert_eq!(Prefix::from_key(x.family(), x.net_key(), x.len), x);
        }
    }
}
