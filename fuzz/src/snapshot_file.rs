//! Feeds `snapshot::View` (the latency and call quality snapshot file a
//! coprocess maps) with files made from the bytes.
//!
//! The first byte chooses the mode:
//! - raw: the other bytes are the file, given the header of a real
//!   snapshot when they are too short to have one of their own;
//! - built: rows of both kinds (latency and call quality) are read from
//!   the bytes, put in the store's order, written with `Builder`; every
//!   aggregate must give back exactly its rows, of its own kind only, and
//!   an absent one nothing; then a slice of the file past the header, at an
//!   offset given by a byte, is overwritten with the other bytes.
//!
//! Invariants on every file `View::from_bytes` accepts: no lookup of either
//! kind panics, each reports as many entries as it calls back with, never
//! more than the header's count of its kind, in node id order when the file
//! is undamaged; an unknown loss or jitter comes back as none.

use std::collections::BTreeMap;
use std::io::Cursor;

use pdns_ha::snapshot::{Builder, QualityEntry, View};

/// Reads the bytes one at a time; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
}

/// An aggregate as the store keys it: (kind, family, net, plen); kind 0 is
/// latency, 1 call quality.
type Agg = (u8, u8, i64, u8);

/// The families and levels a store writes.
const LEVELS: [(u8, u8); 6] = [(4, 8), (4, 16), (4, 24), (6, 32), (6, 48), (0, 0)];

fn net_of(b: &mut Bytes) -> i64 {
    // Few distinct nets, negative and positive, so that aggregates share
    // blocks and lookups hit and miss.
    (i64::from(b.u8() % 64) - 32) * 256
}

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 2 {
        0 => raw(rest),
        _ => built(rest),
    }
}

fn raw(data: &[u8]) {
    let file = if data.len() < 4096 {
        // A real header (and table) with the bytes as the rest.
        let mut f = empty_with_one_row();
        f.truncate(4096);
        f.extend_from_slice(data);
        f
    } else {
        data.to_vec()
    };
    if let Ok(v) = View::from_bytes(file) {
        look_everywhere(&v, false);
    }
}

fn empty_with_one_row() -> Vec<u8> {
    let mut b = Builder::new(Cursor::new(Vec::new())).expect("in memory");
    b.push(4, 0, 24, 1, 1.0, 1).expect("a row");
    b.finish(1, 1, 1).expect("in memory").0.into_inner()
}

/// Every aggregate the rows could name, of both kinds: checks the counts.
fn look_everywhere(v: &View<Vec<u8>, Vec<u8>>, ordered: bool) {
    let h = v.header();
    for (family, plen) in LEVELS {
        for k in -33..33i64 {
            let net = k * 256;
            let mut last = -1i64;
            let mut seen = 0usize;
            let n = v.entries(family, net, plen, |e| {
                assert!(!ordered || e.node_id > last, "node order");
                last = e.node_id;
                seen += 1;
            });
            assert_eq!(n, seen);
            if ordered {
                assert!(n as u64 <= h.entries);
            }
            let (mut last, mut seen) = (-1i64, 0usize);
            let n = v.quality(family, net, plen, |e| {
                assert!(!ordered || e.node_id > last, "node order");
                assert!(e.loss_pct.is_none_or(|l| !l.is_nan()));
                assert!(e.jitter_ms.is_none_or(|j| !j.is_nan()));
                assert!(e.calls >= 0);
                last = e.node_id;
                seen += 1;
            });
            assert_eq!(n, seen);
            if ordered {
                assert!(n as u64 <= h.quality_entries);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Row {
    Latency { avg_ms: f64, updated: i64 },
    Quality(QualityEntry),
}

fn built(data: &[u8]) {
    let mut b = Bytes(data);
    let count = usize::from(b.u16() % 2048);
    let mut rows: BTreeMap<(Agg, i64), Row> = BTreeMap::new();
    for _ in 0..count {
        let kind = b.u8() % 2;
        let (family, plen) = LEVELS[usize::from(b.u8()) % LEVELS.len()];
        let net = net_of(&mut b);
        let node = i64::from(b.u8() % 200) + 1;
        let x = f64::from(b.u16()) / 100.0;
        let updated = i64::from(b.u16()) * 1000;
        let row = if kind == 0 {
            Row::Latency { avg_ms: x, updated }
        } else {
            let flags = b.u8();
            Row::Quality(QualityEntry {
                node_id: node,
                mos: x,
                mos_dev: x / 7.0,
                loss_pct: (flags & 1 != 0).then_some(f64::from(flags) / 3.0),
                jitter_ms: (flags & 2 != 0).then_some(x * 3.0),
                calls: i64::from(b.u16()),
                updated,
            })
        };
        rows.insert(((kind, family, net, plen), node), row);
    }
    // The store's order: kind by kind, then (family, net, plen, node).
    let mut builder = Builder::new(Cursor::new(Vec::new())).expect("in memory");
    for (&((_, family, net, plen), node), row) in &rows {
        match row {
            Row::Latency { avg_ms, updated } => builder
                .push(family, net, plen, node, *avg_ms, *updated)
                .expect("rows in order"),
            Row::Quality(q) => builder
                .push_quality(family, net, plen, q)
                .expect("rows in order"),
        }
    }
    let (out, header) = builder.finish(7, 1, 1).expect("in memory");
    let file = out.into_inner();
    let v = View::from_bytes(file.clone()).expect("a file just built");
    assert_eq!(v.header(), header);
    assert_eq!(
        header.entries + header.quality_entries,
        rows.len() as u64,
        "every row counted"
    );
    // Each aggregate gives back its rows, of its kind only.
    for (family, plen) in LEVELS {
        for k in -33..33i64 {
            let net = k * 256;
            let mut got = Vec::new();
            v.entries(family, net, plen, |e| {
                got.push((
                    e.node_id,
                    Row::Latency {
                        avg_ms: e.avg_ms,
                        updated: e.updated,
                    },
                ))
            });
            v.quality(family, net, plen, |e| {
                got.push((e.node_id, Row::Quality(e)))
            });
            let want: Vec<(i64, Row)> = rows
                .range(((0, family, net, plen), 0)..=((0, family, net, plen), i64::MAX))
                .chain(rows.range(((1, family, net, plen), 0)..=((1, family, net, plen), i64::MAX)))
                .map(|((_, node), r)| (*node, *r))
                .collect();
            assert_eq!(got, want, "{family} {net} {plen}");
        }
    }
    look_everywhere(&v, true);
    // Damage past the header: no panic, counts still agree.
    let at = 4096 + usize::from(b.u16()) * 16;
    let rest = b.0;
    if at < file.len() && !rest.is_empty() {
        let mut bad = file;
        let end = (at + rest.len()).min(bad.len());
        bad[at..end].copy_from_slice(&rest[..end - at]);
        if let Ok(v) = View::from_bytes(bad) {
            look_everywhere(&v, false);
        }
    }
}
