//! Feeds `cache::memcached::decode` values read from memcached for a small
//! topology (four nodes, a latency and a static service, a load and a
//! latency pool; node ids 100..=103), built once.
//!
//! The first byte chooses the mode and the target (a service or a pool);
//! the next bytes the client network (family, address, length), the
//! version (generation, health epoch), the time `now` and the value's age.
//! Modes:
//! - raw: the other bytes are the value;
//! - header: a correct `v1 KEYHASH GEN EPOCH CREATED ` followed by the other
//!   bytes (scope, fail-open flag, node list);
//! - encoded: a decision the policy could make is built from the bytes and
//!   encoded with `encode`; it must decode to itself (the round trip); then
//!   a slice of the value, at an offset given by a byte, is overwritten with
//!   the other bytes, and the result decoded;
//! - policy: `policy::rank` decides for node states, latency entries and a
//!   named network's preferences taken from the bytes (as the engine gives
//!   them: entries no more specific than the client's network); its
//!   decision, encoded, must decode to itself: what one process decides,
//!   another accepts.
//!
//! Invariants on every accepted value, checked here without `decode`'s
//! code: at least one node, each a candidate of the target, none twice;
//! tiers never decrease; tier and weight as a policy makes them (the site
//! priority and weight for static and for fail open; else a tier at most
//! the number of candidates, and the site weight, or for load a weight in
//! 1..=1000); fail open only with every candidate; the scope 0 for static,
//! else at most the key's prefix length; every reason `Shared`, nothing
//! left out. Encoding the accepted decision again and decoding it gives
//! the same decision. `key_string` is a valid memcached key (ASCII
//! letters, digits and dots, at most 250 bytes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pdns_ha::cache::DecisionKey;
use pdns_ha::cache::memcached::{decode, encode, hash64, key_string, site_digest};
use pdns_ha::metrics::Health;
use pdns_ha::net::Prefix;
use pdns_ha::policy::{self, Candidate, Decision, Latency, Load, NodeView, Ranked, Reason};
use pdns_ha::site::Policy;
use pdns_ha::store::Ids;
use pdns_ha::topology::{Target, Topology};

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

[node.d]
host = "d.voip.example.com"
ipv4 = ["192.0.2.4"]

[service."_sip._udp.voip.example.com"]
policy = "latency"
port = 5060
nodes = ["a", "b"]

[service."_sip._tcp.voip.example.com"]
policy = "static"
port = 5060
nodes = [
  { node = "a", priority = 10, weight = 60 },
  { node = "b", priority = 20, weight = 5 },
  { node = "c", priority = 10, weight = 40 },
]

[pool."sip.voip.example.com"]
policy = "load"
nodes = ["a", "b", "c"]

[pool."near.voip.example.com"]
policy = "latency"
nodes = ["c", "a"]
"#;

/// Database id of the first node; the others follow.
const FIRST_ID: i64 = 100;

fn topology() -> Topology {
    let site = pdns_ha::site::parse("site.toml", SITE).expect("site");
    let ids = Ids {
        zones: vec![1],
        nodes: (0..site.nodes.len() as i64).map(|i| FIRST_ID + i).collect(),
        networks: vec![],
    };
    Topology::build(site, &ids, 7)
}

thread_local! {
    static TOPOLOGY: (Topology, String) = {
        let t = topology();
        let digest = site_digest(&t);
        (t, digest)
    };
}

/// The input, a byte at a time (0 once it is used up).
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        for b in &mut a {
            *b = self.byte();
        }
        a
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// Every target of the topology with its policy and candidates.
fn targets(t: &Topology) -> Vec<(Target, Policy, &[Candidate])> {
    let services = t
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (Target::Service(i), s.policy, &s.candidates[..]));
    let pools = t
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| (Target::Pool(i), p.policy, &p.candidates[..]));
    services.chain(pools).collect()
}

/// The client network at the fine level: IPv4 or IPv6, any length.
fn client(input: &mut Input) -> Prefix {
    let kind = input.byte();
    let len = input.byte();
    if kind & 1 == 0 {
        Prefix::new(IpAddr::V4(Ipv4Addr::from(input.bytes::<4>())), len % 33)
    } else {
        let mut a = [0; 16];
        a[..8].copy_from_slice(&input.bytes::<8>());
        Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), len % 129)
    }
}

/// A counter of the database (`generation`, `health_epoch`: they start at
/// 0 and only grow): small, or the largest.
fn counter(b: u8) -> i64 {
    match b {
        0xff => i64::MAX,
        _ => i64::from(b),
    }
}

/// The time of the check: mostly today's clock, sometimes any time a
/// clock gives (milliseconds since 1970, before the year 146 million).
fn now_ms(input: &mut Input) -> i64 {
    let b = input.byte();
    if b < 0xf0 {
        1_800_000_000_000 + i64::from(b) * 7_919
    } else {
        i64::from_le_bytes(input.bytes::<8>()) & (i64::MAX >> 1)
    }
}

/// A decision the policy could make for a target, from the input: some of
/// its candidates (all of them on fail open), tiers that never decrease
/// (the site priorities, in order, for static and fail open), weights as
/// the policy gives them, a scope within the key's.
fn decision(input: &mut Input, policy: Policy, cands: &[Candidate], key: &DecisionKey) -> Decision {
    let failed_open = input.byte() & 1 == 1;
    let mut left: Vec<Candidate> = cands.to_vec();
    let mut picked = Vec::new();
    while !left.is_empty() {
        let b = input.byte();
        if !picked.is_empty() && !failed_open && b == 0 {
            break;
        }
        picked.push(left.remove(usize::from(b) % left.len()));
    }
    let by_site = policy == Policy::Static || failed_open;
    if by_site {
        picked.sort_by_key(|c| c.priority);
    }
    let mut tier = 0u16;
    let ranked = picked
        .iter()
        .map(|c| {
            let b = input.byte();
            let (t, weight) = if by_site {
                (c.priority, c.weight)
            } else {
                tier = (tier + u16::from(b & 1)).min(cands.len() as u16);
                let weight = if policy == Policy::Load && b & 2 == 2 {
                    1 + u16::from_le_bytes(input.bytes::<2>()) % 1000
                } else {
                    c.weight
                };
                (tier, weight)
            };
            Ranked {
                node: c.node,
                tier: t,
                weight,
                reason: Reason::Shared,
            }
        })
        .collect();
    let scope = if policy == Policy::Static {
        0
    } else {
        input.byte() % (key.len + 1)
    };
    Decision {
        ranked,
        left_out: Vec::new(),
        scope,
        failed_open,
    }
}

/// The decision of `policy::rank` for node states, latency entries and
/// preferences from the input, as the engine would compute it for `key`.
fn ranked_by_policy(
    input: &mut Input,
    topo: &Topology,
    policy: Policy,
    cands: &[Candidate],
    key: &DecisionKey,
) -> Decision {
    let views: Vec<NodeView> = topo
        .nodes
        .iter()
        .map(|_| {
            let b = input.byte();
            let load = (b & 8 == 8).then(|| Load {
                sessions: u32::from(input.byte()) * 7,
                max_sessions: u32::from(input.byte()),
                idle_cpu: (b & 16 == 16).then(|| f64::from(input.byte() % 101)),
            });
            NodeView {
                health: match (b >> 1) & 3 {
                    0 => None,
                    1 => Some(Health::Up),
                    2 => Some(Health::Down),
                    _ => Some(Health::Overloaded),
                },
                drained: b & 1 == 1,
                load,
                site_max_sessions: (b & 32 == 32).then(|| 1 + u32::from(input.byte())),
            }
        })
        .collect();
    let latency: Vec<Option<Latency>> = cands
        .iter()
        .map(|_| {
            let b = input.byte();
            (b & 1 == 1).then(|| Latency {
                ms: f64::from(b >> 1) * 3.7,
                prefix_len: input.byte() % (key.len + 1),
            })
        })
        .collect();
    // Only a quality target reads bytes for it: the seeds of the other
    // targets decode as before.
    let quality: Vec<Option<policy::Quality>> = if policy == Policy::Quality {
        cands
            .iter()
            .map(|_| {
                let b = input.byte();
                (b & 1 == 1).then(|| policy::Quality {
                    mos: 1.0 + f64::from(b >> 1) * 3.5 / 127.0,
                    prefix_len: input.byte() % (key.len + 1),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let wanted = input.byte();
    let prefer: Vec<usize> = (0..topo.nodes.len())
        .filter(|i| wanted & (1 << i) != 0)
        .collect();
    policy::rank(&policy::Input {
        policy,
        config: &topo.policy,
        candidates: cands,
        views: &views,
        latency: &latency,
        quality: &quality,
        prefer: &prefer,
        fine_scope: key.len,
    })
}

/// The invariants of an accepted decision, checked independently of
/// `decode`.
fn check_accepted(
    d: &Decision,
    policy: Policy,
    cands: &[Candidate],
    key: &DecisionKey,
    value: &[u8],
) {
    let show = String::from_utf8_lossy(value);
    assert!(!d.ranked.is_empty(), "no node from {show:?}");
    assert!(d.left_out.is_empty(), "{show:?}");
    let mut seen = vec![false; cands.len()];
    let mut last_tier = 0;
    for r in &d.ranked {
        assert_eq!(r.reason, Reason::Shared, "{show:?}");
        let Some(i) = cands.iter().position(|c| c.node == r.node) else {
            panic!("node {} is no candidate, from {show:?}", r.node);
        };
        assert!(!seen[i], "node {} twice from {show:?}", r.node);
        seen[i] = true;
        assert!(r.tier >= last_tier, "tiers decrease in {show:?}");
        last_tier = r.tier;
        let c = cands[i];
        let possible = if policy == Policy::Static || d.failed_open {
            (r.tier, r.weight) == (c.priority, c.weight)
        } else {
            let weight_ok = match policy {
                Policy::Load => r.weight == c.weight || (1..=1000).contains(&r.weight),
                _ => r.weight == c.weight,
            };
            usize::from(r.tier) <= cands.len() && weight_ok
        };
        assert!(
            possible,
            "tier/weight {}/{} for node {} from {show:?}",
            r.tier, r.weight, r.node
        );
    }
    if d.failed_open {
        assert!(
            seen.iter().all(|&s| s),
            "fail open without every node: {show:?}"
        );
    }
    let max_scope = if policy == Policy::Static { 0 } else { key.len };
    assert!(d.scope <= max_scope, "scope {} from {show:?}", d.scope);
}

/// What a decision says, reasons aside.
fn places(d: &Decision) -> (Vec<(usize, u16, u16)>, u8, bool) {
    let ranked = d
        .ranked
        .iter()
        .map(|r| (r.node, r.tier, r.weight))
        .collect();
    (ranked, d.scope, d.failed_open)
}

/// The invariants above, for one input.
pub fn check(data: &[u8]) {
    TOPOLOGY.with(|(topo, site)| check_with(topo, site, data));
}

/// Checks one input; true if its value was accepted.
fn check_with(topo: &Topology, site: &str, data: &[u8]) -> bool {
    let mut input = Input(data);
    let first = input.byte();
    let all = targets(topo);
    let (target, policy, cands) = all[usize::from(first / 4) % all.len()];
    let key = DecisionKey::new(target, policy, &client(&mut input));
    let version = (counter(input.byte()), counter(input.byte()));
    let now = now_ms(&mut input);
    let age = i64::from(input.byte()) * 8;
    let k = key_string(site, &key, version, topo);
    assert!(
        k.len() <= 250 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'),
        "bad key {k:?}"
    );

    let value = match first % 4 {
        0 => input.rest().to_vec(),
        1 => {
            let mut v = format!(
                "v1 {:016x} {} {} {} ",
                hash64(k.as_bytes()),
                version.0,
                version.1,
                now.saturating_sub(age)
            )
            .into_bytes();
            v.extend_from_slice(input.rest());
            v
        }
        2 => {
            let d = decision(&mut input, policy, cands, &key);
            let created = now.saturating_sub(age);
            let v = encode(&k, version, topo, &d, created).expect("a decision encodes");
            let back = decode(v.as_bytes(), &k, &key, version, topo, now);
            // The value is refused only for its age, which is the input's.
            if age <= 2000 - topo.policy.decision_cache_ms as i64
                && now.checked_sub(age) == Some(created)
            {
                let back = back.unwrap_or_else(|e| panic!("{v:?} of {d:?} refused: {e}"));
                assert_eq!(places(&back), places(&d), "{v:?}");
            }
            let mut v = v.into_bytes();
            let at = usize::from(input.byte()) % (v.len() + 1);
            let with = input.rest();
            let end = at + with.len();
            if end > v.len() {
                v.resize(end, b' ');
            }
            v[at..end].copy_from_slice(with);
            v
        }
        _ => {
            let d = ranked_by_policy(&mut input, topo, policy, cands, &key);
            let v = encode(&k, version, topo, &d, now).expect("a decision encodes");
            let back = decode(v.as_bytes(), &k, &key, version, topo, now)
                .unwrap_or_else(|e| panic!("{v:?} of the policy's {d:?} refused: {e}"));
            assert_eq!(places(&back), places(&d), "{v:?}");
            v.into_bytes()
        }
    };

    let Ok(d) = decode(&value, &k, &key, version, topo, now) else {
        return false;
    };
    check_accepted(&d, policy, cands, &key, &value);
    let again = encode(&k, version, topo, &d, now).expect("an accepted decision encodes");
    let back = decode(again.as_bytes(), &k, &key, version, topo, now)
        .unwrap_or_else(|e| panic!("{again:?} (from {value:?}) refused: {e}"));
    assert_eq!(places(&back), places(&d), "{again:?}");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_reach_accepted_values() {
        let t = topology();
        let site = site_digest(&t);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/memcached_value");
        for (seed, accepted) in [
            ("seed-raw", false),
            ("seed-header-latency", true),
            ("seed-header-static", true),
            ("seed-header-load", true),
            ("seed-header-failopen", true),
            ("seed-encoded-latency", false),
            ("seed-encoded-load", true),
            ("seed-encoded-static-v6", true),
            ("seed-encoded-failopen", true),
            ("seed-policy-load", true),
            ("seed-policy-latency", true),
            ("seed-policy-near-down", true),
            ("seed-policy-static", true),
        ] {
            let data = std::fs::read(dir.join(seed)).expect("seed");
            assert_eq!(check_with(&t, &site, &data), accepted, "{seed}");
        }
    }

    #[test]
    fn the_site_has_every_kind_of_target() {
        let t = topology();
        let policies: Vec<Policy> = targets(&t).iter().map(|t| t.1).collect();
        // In name order: the seeds name targets by their index.
        assert_eq!(
            policies,
            [
                Policy::Static,
                Policy::Latency,
                Policy::Latency,
                Policy::Load
            ]
        );
    }
}
