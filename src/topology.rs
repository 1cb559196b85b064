//! The in-memory topology a coprocess answers from: every name of every zone
//! indexed for one hash lookup per question. Built from a stored [`Site`]
//! when `apply` changes it; small (it grows with the site file, never with
//! metrics).

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use crate::dnsname;
use crate::net::Prefix;
use crate::policy::Candidate;
use crate::site::{Policy, PolicyConfig, Site};
use crate::store::Ids;

/// What a dynamic name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Service(usize),
    Pool(usize),
}

/// Where a name stands against a delegation of its zone (a static NS
/// record below the apex: a zone cut). PowerDNS treats data at and below a
/// cut as not authoritative (the backend's `auth` field): it refers there,
/// and in a signed zone it signs only the DS at the cut, never the
/// delegation's NS records or glue (RFC 4035, section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The name of the cut itself: only its DS is authoritative.
    At,
    /// Below a cut (glue, or data hidden by the delegation).
    Below,
}

/// What exists at a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The apex of zone N (SOA and NS).
    Apex(usize),
    /// The host name of node N (A/AAAA).
    Host(usize),
    Service(usize),
    Pool(usize),
    /// Static record N.
    Record(usize),
    /// An empty non-terminal in zone N.
    Ent(usize),
}

pub struct Zone {
    pub id: i64,
    pub def: crate::site::Zone,
    /// `mname rname serial refresh retry expire minimum`.
    pub soa: String,
}

pub struct Node {
    pub id: i64,
    pub def: crate::site::Node,
}

pub struct Service {
    pub zone: usize,
    pub name: String,
    pub policy: Policy,
    pub port: u16,
    pub ttl: u32,
    pub candidates: Vec<Candidate>,
}

pub struct Pool {
    pub zone: usize,
    pub name: String,
    pub policy: Policy,
    pub ttl: u32,
    pub answers: u16,
    pub candidates: Vec<Candidate>,
}

pub struct Record {
    pub zone: usize,
    pub def: crate::site::Record,
    /// For MX and SRV: the priority, sent as its own field.
    pub prio: Option<u16>,
    /// The content without the priority.
    pub rest: String,
}

pub struct Network {
    pub id: i64,
    pub name: String,
    pub prefixes: Vec<Prefix>,
    /// Node indexes.
    pub prefer: Vec<usize>,
}

/// A whole site, indexed.
#[derive(Default)]
pub struct Topology {
    pub zones: Vec<Zone>,
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    pub pools: Vec<Pool>,
    pub records: Vec<Record>,
    pub networks: Vec<Network>,
    pub policy: PolicyConfig,
    /// Lower-case name -> what is there.
    pub names: FxHashMap<String, Vec<Entry>>,
    /// The names of `names` at or below a zone cut; empty (and never
    /// looked up) when no zone delegates.
    pub cuts: FxHashMap<String, Cut>,
    /// node id -> node index.
    pub node_index: FxHashMap<i64, usize>,
    /// The `generation` this was built from (also the SOA serial).
    pub generation: i64,
}

/// The names among `names` at or below a zone cut: a static NS record whose
/// name is not its zone's apex delegates that name and everything below it,
/// within the same zone (a zone of the site at or below the cut is answered
/// as its own zone, not as data of the parent).
fn cuts_of<'a>(
    zones: &[Zone],
    records: &[Record],
    zone_defs: &[crate::site::Zone],
    names: impl Iterator<Item = &'a String>,
) -> FxHashMap<String, Cut> {
    let delegations: FxHashMap<&str, usize> = records
        .iter()
        .filter(|r| r.def.rtype == "NS" && r.def.name != zones[r.zone].def.name)
        .map(|r| (r.def.name.as_str(), r.zone))
        .collect();
    let mut cuts = FxHashMap::default();
    if delegations.is_empty() {
        return cuts;
    }
    // Each name and its ancestors up to its apex: one lookup per label.
    for name in names {
        let Some(zone) = crate::site::site_zone_of(zone_defs, name) else {
            continue;
        };
        let apex_len = zone_defs[zone].name.len();
        let mut at = None;
        let mut cur = Some(name.as_str());
        while let Some(n) = cur {
            if n.len() <= apex_len {
                break;
            }
            if delegations.get(n) == Some(&zone) {
                if n.len() < name.len() {
                    at = Some(Cut::Below);
                    break;
                }
                at = Some(Cut::At);
            }
            cur = dnsname::parent(n);
        }
        if let Some(c) = at {
            cuts.insert(name.clone(), c);
        }
    }
    cuts
}

impl Topology {
    pub fn build(site: Site, ids: &Ids, generation: i64) -> Topology {
        let mut t = Topology {
            policy: site.policy.clone(),
            generation,
            ..Topology::default()
        };
        let serial = generation.clamp(1, u32::MAX as i64);
        for (z, &id) in site.zones.into_iter().zip(&ids.zones) {
            let soa = format!(
                "{} {} {serial} {} {} {} {}",
                z.ns[0], z.hostmaster, z.refresh, z.retry, z.expire, z.minimum
            );
            t.zones.push(Zone { id, def: z, soa });
        }
        let zone_defs: Vec<crate::site::Zone> = t.zones.iter().map(|z| z.def.clone()).collect();
        let zone_of = |name: &str| crate::site::site_zone_of(&zone_defs, name);
        for (n, &id) in site.nodes.into_iter().zip(&ids.nodes) {
            t.node_index.insert(id, t.nodes.len());
            t.nodes.push(Node { id, def: n });
        }
        let by_name: HashMap<String, usize> = t
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.def.name.clone(), i))
            .collect();
        let cands = |m: &[crate::site::Member]| -> Vec<Candidate> {
            m.iter()
                .filter_map(|m| {
                    by_name.get(&m.node).map(|&node| Candidate {
                        node,
                        priority: m.priority,
                        weight: m.weight,
                    })
                })
                .collect()
        };
        for s in site.services {
            let Some(zone) = zone_of(&s.name) else {
                continue;
            };
            t.services.push(Service {
                zone,
                candidates: cands(&s.nodes),
                name: s.name,
                policy: s.policy,
                port: s.port,
                ttl: s.ttl,
            });
        }
        for p in site.pools {
            let Some(zone) = zone_of(&p.name) else {
                continue;
            };
            t.pools.push(Pool {
                zone,
                candidates: cands(&p.nodes),
                name: p.name,
                policy: p.policy,
                ttl: p.ttl,
                answers: p.answers,
            });
        }
        for r in site.records {
            let Some(zone) = zone_of(&r.name) else {
                continue;
            };
            let (prio, rest) = match r.rtype.as_str() {
                "MX" | "SRV" => match r.content.split_once(' ') {
                    Some((p, rest)) => (p.parse().ok(), rest.to_string()),
                    None => (None, r.content.clone()),
                },
                _ => (None, r.content.clone()),
            };
            t.records.push(Record {
                zone,
                def: r,
                prio,
                rest,
            });
        }
        for (n, &id) in site.networks.into_iter().zip(&ids.networks) {
            let prefer = n
                .prefer
                .iter()
                .filter_map(|p| by_name.get(p).copied())
                .collect();
            t.networks.push(Network {
                id,
                name: n.name,
                prefixes: n.prefixes,
                prefer,
            });
        }
        t.index();
        t
    }

    fn index(&mut self) {
        let mut names: FxHashMap<String, Vec<Entry>> = FxHashMap::default();
        for (i, z) in self.zones.iter().enumerate() {
            names
                .entry(z.def.name.clone())
                .or_default()
                .push(Entry::Apex(i));
        }
        let zone_defs: Vec<crate::site::Zone> = self.zones.iter().map(|z| z.def.clone()).collect();
        let mut owned: Vec<(String, usize)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(z) = crate::site::site_zone_of(&zone_defs, &n.def.host) {
                names
                    .entry(n.def.host.clone())
                    .or_default()
                    .push(Entry::Host(i));
                owned.push((n.def.host.clone(), z));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            names
                .entry(s.name.clone())
                .or_default()
                .push(Entry::Service(i));
            owned.push((s.name.clone(), s.zone));
        }
        for (i, p) in self.pools.iter().enumerate() {
            names
                .entry(p.name.clone())
                .or_default()
                .push(Entry::Pool(i));
            owned.push((p.name.clone(), p.zone));
        }
        for (i, r) in self.records.iter().enumerate() {
            names
                .entry(r.def.name.clone())
                .or_default()
                .push(Entry::Record(i));
            owned.push((r.def.name.clone(), r.zone));
        }
        // Empty non-terminals: every name between an owned name and its apex.
        for (name, zone) in owned {
            let apex = &self.zones[zone].def.name;
            let mut cur = dnsname::parent(&name);
            while let Some(p) = cur {
                if p.len() <= apex.len() {
                    break;
                }
                names
                    .entry(p.to_string())
                    .or_insert_with(|| vec![Entry::Ent(zone)]);
                cur = dnsname::parent(p);
            }
        }
        self.cuts = cuts_of(&self.zones, &self.records, &zone_defs, names.keys());
        self.names = names;
    }

    /// Whether the records of `name` (lower case) are authoritative: false
    /// at or below a zone cut, except for a DS at the cut.
    pub fn auth(&self, name: &str, rtype: &str) -> bool {
        if self.cuts.is_empty() {
            return true;
        }
        match self.cuts.get(name) {
            None => true,
            Some(Cut::At) => rtype == "DS",
            Some(Cut::Below) => false,
        }
    }

    /// The zone whose apex is `name` or contains it (`name` lower case).
    pub fn zone_of(&self, name: &str) -> Option<usize> {
        let mut cur = Some(name);
        while let Some(n) = cur {
            if let Some(entries) = self.names.get(n) {
                for e in entries {
                    if let Entry::Apex(z) = e {
                        return Some(*z);
                    }
                }
            }
            cur = dnsname::parent(n);
        }
        None
    }

    /// Named networks containing the client, with the length of the prefix
    /// that matched (the most specific of the network's prefixes).
    pub fn networks_of<'a>(&'a self, client: &'a Prefix) -> impl Iterator<Item = (usize, u8)> + 'a {
        self.networks.iter().enumerate().filter_map(move |(i, n)| {
            n.prefixes
                .iter()
                .filter(|p| p.contains(client))
                .map(|p| p.len)
                .max()
                .map(|l| (i, l))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(site: &str) -> Topology {
        let site = crate::site::parse("site.toml", site).expect("a valid site");
        let ids = Ids {
            zones: (1..=site.zones.len() as i64).collect(),
            nodes: (1..=site.nodes.len() as i64).collect(),
            networks: (1..=site.networks.len() as i64).collect(),
        };
        Topology::build(site, &ids, 1)
    }

    const ZONES: &str = r#"
[zone."voip.example.com"]
ns = ["ns1.voip.example.com"]
hostmaster = "hostmaster.example.com"
[zone."own.voip.example.com"]
ns = ["ns1.voip.example.com"]
hostmaster = "hostmaster.example.com"
[node.a]
host = "a.voip.example.com"
ipv4 = ["192.0.2.1"]
[node.glue]
host = "ns.sub.voip.example.com"
ipv4 = ["192.0.2.2"]
[[record]]
name = "voip.example.com"
type = "NS"
content = "ns2.example.net."
"#;

    fn rec(name: &str, rtype: &str, content: &str) -> String {
        format!("[[record]]\nname = \"{name}\"\ntype = \"{rtype}\"\ncontent = \"{content}\"\n")
    }

    #[test]
    fn a_site_without_delegations_is_authoritative_everywhere() {
        let t = topology(ZONES);
        assert!(t.cuts.is_empty());
        for (name, rtype) in [
            ("voip.example.com", "NS"),
            ("a.voip.example.com", "A"),
            ("ns.sub.voip.example.com", "A"),
            ("sub.voip.example.com", "TYPE65534"),
        ] {
            assert!(t.auth(name, rtype), "{name} {rtype}");
        }
    }

    #[test]
    fn data_at_and_below_a_delegation_is_not_authoritative_but_its_ds_is() {
        let site = [
            ZONES,
            &rec("sub.voip.example.com", "NS", "ns.sub.voip.example.com."),
            &rec(
                "sub.voip.example.com",
                "DS",
                "60485 13 1 2BB183AF5F22588179A53B0A98631FAD1A292118",
            ),
            &rec("deep.ns.sub.voip.example.com", "TXT", "\\\"x\\\""),
            // A delegation to a zone of the site stays that zone's.
            &rec("own.voip.example.com", "NS", "ns1.voip.example.com."),
            &rec("x.own.voip.example.com", "A", "192.0.2.9"),
        ]
        .concat();
        let t = topology(&site);
        assert_eq!(t.cuts.get("sub.voip.example.com"), Some(&Cut::At));
        assert_eq!(t.cuts.get("ns.sub.voip.example.com"), Some(&Cut::Below));
        assert_eq!(
            t.cuts.get("deep.ns.sub.voip.example.com"),
            Some(&Cut::Below)
        );
        assert_eq!(t.cuts.len(), 3, "{:?}", t.cuts);
        assert!(!t.auth("sub.voip.example.com", "NS"));
        assert!(t.auth("sub.voip.example.com", "DS"));
        assert!(!t.auth("ns.sub.voip.example.com", "A"), "glue");
        assert!(!t.auth("deep.ns.sub.voip.example.com", "TXT"));
        assert!(
            !t.auth("ns.sub.voip.example.com", "DS"),
            "a DS below the cut"
        );
        assert!(t.auth("voip.example.com", "NS"), "the apex NS");
        assert!(t.auth("a.voip.example.com", "A"));
        assert!(t.auth("own.voip.example.com", "NS"));
        assert!(t.auth("x.own.voip.example.com", "A"));
        assert!(t.auth("other.voip.example.com", "A"));
    }

    #[test]
    fn a_cut_below_a_cut_is_below() {
        let site = [
            ZONES,
            &rec("sub.voip.example.com", "NS", "ns.example.net."),
            &rec("in.sub.voip.example.com", "NS", "ns.example.net."),
        ]
        .concat();
        let t = topology(&site);
        assert_eq!(t.cuts.get("sub.voip.example.com"), Some(&Cut::At));
        assert_eq!(t.cuts.get("in.sub.voip.example.com"), Some(&Cut::Below));
        assert!(!t.auth("in.sub.voip.example.com", "DS"));
    }
}
