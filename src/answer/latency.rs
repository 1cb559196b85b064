//! The latency and call quality entries of one decision: for each
//! candidate node, the most specific fresh entry that contains the client,
//! read from the store. The aggregates are tried most specific first (the
//! client's /24, a named network's prefix by its length, /16, /8; IPv6 /48,
//! /32), and reading stops once every candidate has its entry
//! ([`first_entries`], shared by both). Both are read from the published
//! snapshot when there is one, else through SQLite, with the same rules
//! (freshness, and for call quality the minimum of calls); call quality
//! only for services and pools with the quality policy.

use anyhow::Result;

use crate::net::Prefix;
use crate::policy::{Candidate, Latency, Quality};
use crate::snapshot::Mapped;
use crate::store::{QualityRow, Store};
use crate::topology::Topology;

/// Where latency and call quality entries are read from: the published
/// snapshot (mapped fences, one `pread` per aggregate), or SQLite while
/// there is none.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Snapshot(&'a Mapped),
    Store(&'a Store),
}

impl Source<'_> {
    /// Calls `f(node_id, avg_ms, updated)` for each entry of the aggregate
    /// updated at or after `fresh_after`.
    fn each(
        &self,
        a: &Aggregate,
        fresh_after: i64,
        mut f: impl FnMut(i64, f64, i64),
    ) -> Result<()> {
        match self {
            Source::Snapshot(m) => {
                m.entries(a.family as u8, a.net, a.plen, |e| {
                    if e.updated >= fresh_after {
                        f(e.node_id, e.avg_ms, e.updated)
                    }
                });
                Ok(())
            }
            Source::Store(s) => s.latency_at(a.family, a.net, a.plen, fresh_after, |r| {
                f(r.node_id, r.avg_ms, r.updated)
            }),
        }
    }

    /// Calls `f` for each call quality entry of the aggregate updated at or
    /// after `fresh_after` with at least `min_calls` calls.
    fn each_quality(
        &self,
        a: &Aggregate,
        fresh_after: i64,
        min_calls: u32,
        mut f: impl FnMut(QualityRow),
    ) -> Result<()> {
        match self {
            Source::Snapshot(m) => {
                m.quality(a.family as u8, a.net, a.plen, |e| {
                    if e.updated >= fresh_after && e.calls >= i64::from(min_calls) {
                        f(e)
                    }
                });
                Ok(())
            }
            Source::Store(s) => s.quality_at(a.family, a.net, a.plen, fresh_after, min_calls, f),
        }
    }
}

/// Which stored aggregate a latency entry came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EntryLabel {
    Prefix(Prefix),
    /// A named network (index in the topology).
    Network(usize),
}

impl EntryLabel {
    pub fn describe(&self, topo: &Topology) -> String {
        match self {
            EntryLabel::Prefix(p) => p.to_string(),
            EntryLabel::Network(i) => format!("network {}", topo.networks[*i].name),
        }
    }
}

/// The latency entry a decision used for one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyEntry {
    pub latency: Latency,
    pub label: EntryLabel,
    pub age_s: i64,
}

/// The call quality entry a decision used for one node, with the figures
/// `explain` shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityEntry {
    pub quality: Quality,
    pub mos_dev: f64,
    pub loss_pct: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub calls: i64,
    pub label: EntryLabel,
    pub age_s: i64,
}

/// One aggregate to read: as stored (`family` 4/6 with a prefix, or 0 with
/// a named network's id and `plen` 0), and the prefix length it stands for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregate {
    pub family: i64,
    pub net: i64,
    pub plen: u8,
    pub len: u8,
    pub label: EntryLabel,
}

/// The aggregates that contain `client`, most specific first, and the
/// most specific named network that has a `prefer` order (its index).
pub fn aggregates(topo: &Topology, client: &Prefix) -> (Vec<Aggregate>, Option<usize>) {
    let mut out = Vec::new();
    let named = aggregates_into(topo, client, &mut out);
    (out, named)
}

/// [`aggregates`] into a buffer the caller keeps (no allocation per
/// question once it has grown).
pub fn aggregates_into(
    topo: &Topology,
    client: &Prefix,
    out: &mut Vec<Aggregate>,
) -> Option<usize> {
    out.clear();
    out.extend(client.levels().map(|p| Aggregate {
        family: p.family().code(),
        net: p.net_key(),
        plen: p.len,
        len: p.len,
        label: EntryLabel::Prefix(p),
    }));
    let mut best_named: Option<(u8, usize)> = None;
    for (ni, len) in topo.networks_of(client) {
        let net = &topo.networks[ni];
        out.push(Aggregate {
            family: 0,
            net: net.id,
            plen: 0,
            len,
            label: EntryLabel::Network(ni),
        });
        if !net.prefer.is_empty() && best_named.is_none_or(|(l, _)| len > l) {
            best_named = Some((len, ni));
        }
    }
    // Stable: at equal lengths a prefix level comes before a named network.
    out.sort_by_key(|a| std::cmp::Reverse(a.len));
    best_named.map(|(_, ni)| ni)
}

/// For each candidate (in order), the first fresh entry (updated at or
/// after `fresh_after`) found in `aggregates`.
pub fn read(
    source: Source,
    topo: &Topology,
    candidates: &[Candidate],
    aggregates: &[Aggregate],
    fresh_after: i64,
    now: i64,
) -> Result<Vec<Option<LatencyEntry>>> {
    let mut entries = Vec::new();
    read_into(
        source,
        topo,
        candidates,
        aggregates,
        fresh_after,
        now,
        &mut entries,
    )?;
    Ok(entries)
}

/// [`read`] into a buffer the caller keeps: one entry per candidate.
pub fn read_into(
    source: Source,
    topo: &Topology,
    candidates: &[Candidate],
    aggregates: &[Aggregate],
    fresh_after: i64,
    now: i64,
    entries: &mut Vec<Option<LatencyEntry>>,
) -> Result<()> {
    first_entries(topo, candidates, aggregates, entries, |a, found| {
        source.each(a, fresh_after, |node_id, avg_ms, updated| {
            found(
                node_id,
                LatencyEntry {
                    latency: Latency {
                        ms: avg_ms,
                        prefix_len: a.len,
                    },
                    label: a.label,
                    age_s: now - updated,
                },
            )
        })
    })
}

/// For each candidate, the first call quality entry (updated at or after
/// `fresh_after`, with at least `min_calls` calls) found in `aggregates`,
/// into a buffer the caller keeps.
#[allow(clippy::too_many_arguments)]
pub fn read_quality_into(
    source: Source,
    topo: &Topology,
    candidates: &[Candidate],
    aggregates: &[Aggregate],
    fresh_after: i64,
    min_calls: u32,
    now: i64,
    entries: &mut Vec<Option<QualityEntry>>,
) -> Result<()> {
    first_entries(topo, candidates, aggregates, entries, |a, found| {
        source.each_quality(a, fresh_after, min_calls, |r| {
            found(
                r.node_id,
                QualityEntry {
                    quality: Quality {
                        mos: r.mos,
                        prefix_len: a.len,
                    },
                    mos_dev: r.mos_dev,
                    loss_pct: r.loss_pct,
                    jitter_ms: r.jitter_ms,
                    calls: r.calls,
                    label: a.label,
                    age_s: now - r.updated,
                },
            )
        })
    })
}

/// One entry per candidate: the first that `each` reports for its node,
/// aggregate by aggregate, until every candidate has one. `each(a, found)`
/// calls `found(node_id, entry)` for the entries of aggregate `a`.
fn first_entries<T: Copy>(
    topo: &Topology,
    candidates: &[Candidate],
    aggregates: &[Aggregate],
    entries: &mut Vec<Option<T>>,
    mut each: impl FnMut(&Aggregate, &mut dyn FnMut(i64, T)) -> Result<()>,
) -> Result<()> {
    entries.clear();
    entries.resize(candidates.len(), None);
    let mut missing = candidates.len();
    for a in aggregates {
        if missing == 0 {
            break;
        }
        each(a, &mut |node_id, entry| {
            let Some(&n) = topo.node_index.get(&node_id) else {
                return;
            };
            let Some(i) = candidates.iter().position(|c| c.node == n) else {
                return;
            };
            if entries[i].is_none() {
                missing -= 1;
                entries[i] = Some(entry);
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TempDb;

    const SITE: &str = r#"
[zone."voip.test"]
ns = ["ns1.voip.test"]
hostmaster = "hostmaster.voip.test"
[node.a]
host = "a.voip.test"
ipv4 = ["192.0.2.1"]
[node.b]
host = "b.voip.test"
ipv4 = ["192.0.2.2"]
[node.c]
host = "c.voip.test"
ipv4 = ["192.0.2.3"]
[node.d]
host = "d.voip.test"
ipv4 = ["192.0.2.4"]
[service."_sip._udp.voip.test"]
policy = "latency"
port = 5060
nodes = ["a", "b", "c", "d"]
[network.city]
prefixes = ["198.51.0.0/20"]
prefer = ["c"]
"#;

    fn setup(tag: &str, lines: &str) -> (TempDb, Store, Topology) {
        let db = TempDb::new(tag);
        let mut s = db.apply(SITE);
        let now = crate::metrics::now();
        let batch: Vec<_> = lines
            .lines()
            .filter_map(|l| crate::metrics::parse_line(l, now).unwrap())
            .collect();
        s.write_metrics(&batch, "test", None, now).unwrap();
        let (site, ids) = s.load_site().unwrap();
        let topo = Topology::build(site, &ids, 1);
        (db, s, topo)
    }

    #[test]
    fn aggregates_go_from_the_most_specific_with_named_networks_by_length() {
        let (_db, _s, topo) = setup("aggregates", "");
        let client: Prefix = "198.51.7.0/24".parse().unwrap();
        let (aggs, prefer) = aggregates(&topo, &client);
        let lens: Vec<u8> = aggs.iter().map(|a| a.len).collect();
        assert_eq!(lens, [24, 20, 16, 8]);
        assert_eq!(aggs[1].label, EntryLabel::Network(0));
        assert_eq!((aggs[1].family, aggs[1].plen), (0, 0));
        assert_eq!(prefer, Some(0));
        let (aggs, prefer) = aggregates(&topo, &"203.0.113.0/24".parse().unwrap());
        assert_eq!(aggs.len(), 3);
        assert_eq!(prefer, None);
    }

    /// The published snapshot of the database, mapped.
    fn mapped(db: &TempDb, s: &mut Store) -> Mapped {
        let p = s.publish_snapshot(crate::metrics::now()).unwrap().unwrap();
        Mapped::open(&crate::store::snapshot::path_of(&db.path), p.header.token).unwrap()
    }

    #[test]
    fn each_node_gets_its_most_specific_fresh_entry_from_either_source() {
        // For the client 198.51.7.0/24: a has its /24 (and a /16); b only
        // the /16; c a sample in another /24 of the named network (198.51.0.0/20),
        // which comes before its /16; d nothing.
        let (db, mut s, topo) = setup(
            "read",
            "latency a 198.51.7.1 10\n\
             latency a 198.51.200.1 90\n\
             latency b 198.51.200.1 30\n\
             latency c 198.51.9.1 20\n",
        );
        let m = mapped(&db, &mut s);
        let now = crate::metrics::now();
        let client: Prefix = "198.51.7.0/24".parse().unwrap();
        let (aggs, _) = aggregates(&topo, &client);
        let cands = &topo.services[0].candidates;
        for source in [Source::Store(&s), Source::Snapshot(&m)] {
            let e = read(source, &topo, cands, &aggs, now - 900, now).unwrap();
            let got: Vec<Option<(u8, f64)>> = e
                .iter()
                .map(|x| x.map(|x| (x.latency.prefix_len, x.latency.ms)))
                .collect();
            assert_eq!(got[0], Some((24, 10.0)), "a: its /24");
            assert_eq!(got[1], Some((16, 30.0)), "b: the /16");
            assert_eq!(
                got[2],
                Some((20, 20.0)),
                "c: the named network, before the /16"
            );
            assert_eq!(e[2].unwrap().label, EntryLabel::Network(0));
            assert_eq!(got[3], None, "d: no data");
            // Entries older than `fresh_after` count as none.
            let e = read(source, &topo, cands, &aggs, now + 1, now).unwrap();
            assert!(e.iter().all(Option::is_none));
        }
    }

    #[test]
    fn the_snapshot_and_sqlite_give_the_same_entries_for_any_client() {
        // Random samples over IPv4 and IPv6, some in the named network, some
        // too old to count, averaged by repeated samples; then random
        // clients (most near the data) read through both sources.
        let mut rng = crate::test_rng::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut rnd = move |n: u64| rng.below(n);
        let now = crate::metrics::now();
        let mut lines = String::new();
        for _ in 0..3000 {
            let node = ["a", "b", "c", "d"][rnd(4) as usize];
            let ms = rnd(2000) as f64 / 10.0;
            let age = if rnd(10) == 0 { 2000 } else { rnd(600) };
            let ip = match rnd(3) {
                0 => format!("198.51.{}.{}", rnd(32), rnd(256)),
                1 => format!("10.{}.{}.{}", rnd(4), rnd(256), rnd(256)),
                _ => format!("2001:db8:{:x}:{:x}::1", rnd(3), rnd(64)),
            };
            lines.push_str(&format!("latency {node} {ip} {ms} {}\n", now - age as i64));
        }
        let db = TempDb::new("read-same");
        let mut s = db.apply(SITE);
        let batch: Vec<_> = lines
            .lines()
            .filter_map(|l| crate::metrics::parse_line(l, now).ok().flatten())
            .collect();
        assert!(batch.len() > 2500);
        s.write_metrics(&batch, "test", None, now).unwrap();
        let (site, ids) = s.load_site().unwrap();
        let topo = Topology::build(site, &ids, 1);
        let m = mapped(&db, &mut s);
        assert!(m.header().entries > 500, "{:?}", m.header());
        let cands = &topo.services[0].candidates;
        let mut found = 0;
        for i in 0..3000 {
            let client: Prefix = match i % 3 {
                0 => format!("198.51.{}.0/24", rnd(40)),
                1 => format!("10.{}.{}.0/24", rnd(6), rnd(256)),
                _ => format!("2001:db8:{:x}:{:x}::/64", rnd(4), rnd(70)),
            }
            .parse()
            .unwrap();
            let client = client.truncate(client.family().fine());
            let (aggs, _) = aggregates(&topo, &client);
            let fresh_after = now - 900;
            let a = read(Source::Store(&s), &topo, cands, &aggs, fresh_after, now).unwrap();
            let b = read(Source::Snapshot(&m), &topo, cands, &aggs, fresh_after, now).unwrap();
            assert_eq!(a, b, "client {client}");
            found += a.iter().flatten().count();
        }
        assert!(found > 3000, "the clients hit the data ({found} entries)");
    }

    #[test]
    fn quality_entries_come_from_the_most_specific_aggregate_with_enough_calls() {
        // For the client 198.51.7.0/24 with 3 calls needed: a has 3 calls in
        // its /24; b 1 call in the /24 (too few) and 3 in the /16; c 3 calls
        // in the named network (another /24); d none. The same from either
        // source.
        let mut lines = String::new();
        for _ in 0..3 {
            lines.push_str("quality a 198.51.7.1 4.4 0.5 3\n");
            lines.push_str("quality b 198.51.200.1 3.0\n");
            lines.push_str("quality c 198.51.9.1 3.5\n");
        }
        lines.push_str("quality b 198.51.7.9 1.5\n");
        let (db, mut s, topo) = setup("read-quality", &lines);
        let m = mapped(&db, &mut s);
        assert!(m.header().quality_entries > 0, "{:?}", m.header());
        let now = crate::metrics::now();
        let (aggs, _) = aggregates(&topo, &"198.51.7.0/24".parse().unwrap());
        let cands = &topo.services[0].candidates;
        for source in [Source::Store(&s), Source::Snapshot(&m)] {
            let mut e = Vec::new();
            read_quality_into(source, &topo, cands, &aggs, now - 3600, 3, now, &mut e).unwrap();
            let got: Vec<Option<(u8, f64, i64)>> = e
                .iter()
                .map(|x| x.map(|x| (x.quality.prefix_len, x.quality.mos, x.calls)))
                .collect();
            assert_eq!(got[0], Some((24, 4.4, 3)));
            assert_eq!(e[0].unwrap().loss_pct, Some(0.5));
            assert_eq!(e[0].unwrap().jitter_ms, Some(3.0));
            assert_eq!(e[1].unwrap().loss_pct, None, "b never had a loss");
            let b = got[1].unwrap();
            assert_eq!((b.0, b.2), (16, 4), "b: the /16 ({b:?})");
            assert_eq!(got[2], Some((20, 3.5, 3)), "c: the named network");
            assert_eq!(e[2].unwrap().label, EntryLabel::Network(0));
            assert_eq!(got[3], None);
            // One call is enough: b's own /24.
            read_quality_into(source, &topo, cands, &aggs, now - 3600, 1, now, &mut e).unwrap();
            assert_eq!(e[1].unwrap().quality.prefix_len, 24);
            // Too old: none.
            read_quality_into(source, &topo, cands, &aggs, now + 1, 1, now, &mut e).unwrap();
            assert!(e.iter().all(Option::is_none));
        }
    }

    #[test]
    fn the_snapshot_and_sqlite_give_the_same_quality_entries_for_any_client() {
        // Random call quality samples (with and without loss and jitter,
        // some too old for the freshness limit used), averaged per
        // aggregate; then random clients read through both sources with
        // several minimums of calls and freshness limits.
        let mut rng = crate::test_rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut rnd = move |n: u64| rng.below(n);
        let now = crate::metrics::now();
        let mut lines = String::new();
        for _ in 0..3000 {
            let node = ["a", "b", "c", "d"][rnd(4) as usize];
            let mos = 1.0 + rnd(350) as f64 / 100.0;
            let age = rnd(7200);
            let ip = match rnd(3) {
                0 => format!("198.51.{}.{}", rnd(32), rnd(256)),
                1 => format!("10.{}.{}.{}", rnd(4), rnd(64), rnd(256)),
                _ => format!("2001:db8:{:x}:{:x}::1", rnd(3), rnd(64)),
            };
            let extra = match rnd(3) {
                0 => String::new(),
                1 => format!(" {}", rnd(100) as f64 / 10.0),
                _ => format!(" {} {}", rnd(100) as f64 / 10.0, rnd(500) as f64 / 10.0),
            };
            let ts = if extra.matches(' ').count() == 2 {
                format!(" {}", now - age as i64)
            } else {
                String::new()
            };
            lines.push_str(&format!("quality {node} {ip} {mos}{extra}{ts}\n"));
        }
        let db = TempDb::new("read-same-quality");
        let mut s = db.apply(SITE);
        let batch: Vec<_> = lines
            .lines()
            .filter_map(|l| crate::metrics::parse_line(l, now).ok().flatten())
            .collect();
        assert!(batch.len() > 2500, "{}", batch.len());
        s.write_metrics(&batch, "test", None, now).unwrap();
        let (site, ids) = s.load_site().unwrap();
        let topo = Topology::build(site, &ids, 1);
        let m = mapped(&db, &mut s);
        assert!(m.header().quality_entries > 500, "{:?}", m.header());
        let cands = &topo.services[0].candidates;
        let (mut found, mut filtered) = (0, 0);
        let (mut a, mut b, mut loose) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..3000 {
            let client: Prefix = match i % 3 {
                0 => format!("198.51.{}.0/24", rnd(40)),
                1 => format!("10.{}.{}.0/24", rnd(6), rnd(70)),
                _ => format!("2001:db8:{:x}:{:x}::/64", rnd(4), rnd(70)),
            }
            .parse()
            .unwrap();
            let client = client.truncate(client.family().fine());
            let (aggs, _) = aggregates(&topo, &client);
            let fresh_after = now - [600, 3600, 7200][i % 3];
            let min_calls = [1, 2, 5][i / 3 % 3];
            read_quality_into(
                Source::Store(&s),
                &topo,
                cands,
                &aggs,
                fresh_after,
                min_calls,
                now,
                &mut a,
            )
            .unwrap();
            read_quality_into(
                Source::Snapshot(&m),
                &topo,
                cands,
                &aggs,
                fresh_after,
                min_calls,
                now,
                &mut b,
            )
            .unwrap();
            assert_eq!(a, b, "client {client}, {fresh_after} {min_calls}");
            found += a.iter().flatten().count();
            // The rules matter: without them more entries would be used.
            read_quality_into(
                Source::Snapshot(&m),
                &topo,
                cands,
                &aggs,
                0,
                0,
                now,
                &mut loose,
            )
            .unwrap();
            filtered += usize::from(loose != a);
        }
        assert!(found > 3000, "the clients hit the data ({found} entries)");
        assert!(
            filtered > 300,
            "freshness and calls filter ({filtered} clients)"
        );
    }
}
