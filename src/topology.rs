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
    /// node id -> node index.
    pub node_index: FxHashMap<i64, usize>,
    /// The `generation` this was built from (also the SOA serial).
    pub generation: i64,
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
        self.names = names;
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
