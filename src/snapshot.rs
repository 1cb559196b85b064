//! The snapshot: a read-only file beside the database (`DB-latency`)
//! holding every latency entry (aggregate, node, average, last update) and
//! every call quality entry (aggregate, node, MOS with its deviation, loss,
//! jitter, calls, last update), laid out so that a coprocess finds one
//! aggregate's entries with one 4 KiB read and no SQLite. This module owns
//! the file format: [`Builder`] writes it from rows in the store's order,
//! [`View`] checks it and finds an aggregate's entries of either kind
//! ([`Mapped`]: a view of the file).
//!
//! The store publishes a snapshot (`store::snapshot`); a file is never
//! written in place: a new one is written beside it and renamed over it, so
//! an open file never changes under a reader.
//!
//! Layout (little endian, every field aligned to its size):
//!
//! ```text
//! 0      header (128 bytes): magic, format, section count, token, built at,
//!        data version, file length, latency entry count, key count, fence
//!        region offset, quality entry count, check (FNV-1a of the header
//!        and the section table)
//! 128    section table: MAX_SECTIONS x 32 bytes, one per (kind, family,
//!        plen): family, plen, kind, key count, fences offset, block count
//! 4096   blocks, each 4096 bytes (more for an aggregate with hundreds of
//!        nodes) and 4096-aligned, each holding whole aggregates of one
//!        section: n u32, length u32, keys [u64; n] sorted, ends [u32; n]
//!        (cumulative entry counts), entries in node id order: latency 16
//!        bytes (node id u32, updated u32, avg_ms f64), quality 48 bytes
//!        (node id u32, updated u32, calls u64, mos, mos_dev, loss_pct,
//!        jitter_ms f64; NaN for an unknown loss or jitter)
//! F      fences (page aligned): per section, (first key u64, offset u64)
//!        of each block; then the magic again (a cut file fails the check)
//! ```
//!
//! A reader maps only the fences (16 bytes per block of ~60 aggregates:
//! ~250 KiB for a million client networks, shared by every process) and
//! reads one block with `pread` into a buffer it keeps: its resident
//! memory does not grow with the data or the questions, and the blocks stay
//! in the OS page cache, shared. Keys are the store's `net` (an i64) with
//! the sign bit flipped, so unsigned order is the store's order.
//!
//! Format 1 (latency only) is refused by this build and format 2 by older
//! ones: a reader then falls back to SQLite until a writer of its own
//! build publishes again.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

const MAGIC: &[u8; 8] = b"PDNSHAls";
/// The format this build writes and reads (2: call quality sections).
pub const FORMAT: u32 = 2;
const HEADER: usize = 128;
const SECTION: usize = 32;
/// Sections one file can hold: a build has up to six per kind (IPv4 /24
/// /16 /8, IPv6 /48 /32, named networks); the rest is room for new levels.
const MAX_SECTIONS: usize = 32;
/// The unit of blocks and of reads.
pub const BLOCK: usize = 4096;
/// The largest block: one aggregate with ~65,000 nodes (~21,000 for call
/// quality).
const MAX_BLOCK: usize = 1 << 20;
const BLOCK_HEAD: usize = 8;
const FENCE: usize = 16;

const _: () = assert!(BLOCK >= HEADER + MAX_SECTIONS * SECTION);

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Latency = 0,
    Quality = 1,
}

impl Kind {
    fn of(code: u8) -> Option<Kind> {
        match code {
            0 => Some(Kind::Latency),
            1 => Some(Kind::Quality),
            _ => None,
        }
    }

    /// The bytes of one entry.
    const fn entry_len(self) -> usize {
        match self {
            Kind::Latency => 16,
            Kind::Quality => 48,
        }
    }
}

/// One latency entry as stored in the snapshot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub node_id: i64,
    pub avg_ms: f64,
    pub updated: i64,
}

/// One call quality entry as stored in the snapshot (the store's
/// `quality` row).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityEntry {
    pub node_id: i64,
    pub mos: f64,
    pub mos_dev: f64,
    pub loss_pct: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub calls: i64,
    pub updated: i64,
}

/// What a snapshot says about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Random, also written in the database's `meta` by the transaction
    /// that published the file: a reader uses the file only if they match.
    pub token: u64,
    pub built_at: i64,
    /// The database's `latency_version` the snapshot reflects (bumped by
    /// latency and call quality writes).
    pub latency_version: i64,
    /// Latency entries.
    pub entries: u64,
    /// Call quality entries.
    pub quality_entries: u64,
    /// Aggregates of both kinds (client networks at every level, named
    /// networks).
    pub keys: u64,
    pub file_len: u64,
    /// Where the fences start (the part a reader maps).
    pub fences_off: u64,
}

fn key_of(net: i64) -> u64 {
    (net as u64) ^ (1 << 63)
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;
fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn f64_at(b: &[u8], at: usize) -> f64 {
    f64::from_bits(u64_at(b, at).unwrap_or(0))
}

/// The bytes a block of `keys` aggregates with `entry_bytes` of entries
/// takes.
fn block_bytes(keys: usize, entry_bytes: usize) -> usize {
    (BLOCK_HEAD + keys * 12).next_multiple_of(8) + entry_bytes
}

struct SectionBuild {
    kind: Kind,
    family: u8,
    plen: u8,
    keys: u64,
    /// The open block: its keys and entry ends, and entries.
    block_keys: Vec<u64>,
    block_ends: Vec<u32>,
    block_entries: Vec<u8>,
    fences: Vec<(u64, u64)>,
}

/// Writes a snapshot from rows given in the store's primary-key order,
/// kind by kind: grouped by (family, net, plen), nets ascending within a
/// family, nodes ascending within an aggregate.
pub struct Builder<W: Write + Seek> {
    out: W,
    pos: u64,
    sections: Vec<SectionBuild>,
    entries: u64,
    quality_entries: u64,
    /// The aggregate being read: (kind, family, net, plen), its entries.
    current: Option<(Kind, u8, i64, u8)>,
    current_entries: Vec<u8>,
    last_node: i64,
}

fn clamp_u32(t: i64) -> u32 {
    t.clamp(0, i64::from(u32::MAX)) as u32
}

impl<W: Write + Seek> Builder<W> {
    pub fn new(mut out: W) -> Result<Builder<W>> {
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&[0u8; BLOCK])?;
        Ok(Builder {
            out,
            pos: BLOCK as u64,
            sections: Vec::new(),
            entries: 0,
            quality_entries: 0,
            current: None,
            current_entries: Vec::new(),
            last_node: i64::MIN,
        })
    }

    /// Adds one latency row. An error if the rows are out of order or do
    /// not fit the format (a node id beyond u32): the caller keeps the old
    /// file.
    pub fn push(
        &mut self,
        family: u8,
        net: i64,
        plen: u8,
        node_id: i64,
        avg_ms: f64,
        updated: i64,
    ) -> Result<()> {
        let node = self.start_entry(Kind::Latency, family, net, plen, node_id)?;
        let e = &mut self.current_entries;
        e.extend_from_slice(&node.to_le_bytes());
        e.extend_from_slice(&clamp_u32(updated).to_le_bytes());
        e.extend_from_slice(&avg_ms.to_le_bytes());
        Ok(())
    }

    /// Adds one call quality row (after every latency row), as
    /// [`Builder::push`] does.
    pub fn push_quality(&mut self, family: u8, net: i64, plen: u8, q: &QualityEntry) -> Result<()> {
        let node = self.start_entry(Kind::Quality, family, net, plen, q.node_id)?;
        let e = &mut self.current_entries;
        e.extend_from_slice(&node.to_le_bytes());
        e.extend_from_slice(&clamp_u32(q.updated).to_le_bytes());
        e.extend_from_slice(&(q.calls.max(0) as u64).to_le_bytes());
        for v in [
            q.mos,
            q.mos_dev,
            q.loss_pct.unwrap_or(f64::NAN),
            q.jitter_ms.unwrap_or(f64::NAN),
        ] {
            e.extend_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }

    /// Checks the row's order, closes the previous aggregate if this row
    /// starts another; returns the node id as stored.
    fn start_entry(
        &mut self,
        kind: Kind,
        family: u8,
        net: i64,
        plen: u8,
        node_id: i64,
    ) -> Result<u32> {
        let node = u32::try_from(node_id)
            .with_context(|| format!("node id {node_id} does not fit the snapshot"))?;
        let agg = (kind, family, net, plen);
        if self.current == Some(agg) {
            ensure!(node_id > self.last_node, "snapshot rows out of order");
        } else {
            self.close_aggregate()?;
            self.current = Some(agg);
        }
        self.last_node = node_id;
        Ok(node)
    }

    /// Puts the aggregate read so far into its section's open block.
    fn close_aggregate(&mut self) -> Result<()> {
        let Some((kind, family, net, plen)) = self.current.take() else {
            return Ok(());
        };
        let si = match self
            .sections
            .iter()
            .position(|s| s.kind == kind && s.family == family && s.plen == plen)
        {
            Some(si) => si,
            None => {
                ensure!(
                    self.sections.len() < MAX_SECTIONS,
                    "more than {MAX_SECTIONS} aggregate levels"
                );
                self.sections.push(SectionBuild {
                    kind,
                    family,
                    plen,
                    keys: 0,
                    block_keys: Vec::new(),
                    block_ends: Vec::new(),
                    block_entries: Vec::new(),
                    fences: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        let key = key_of(net);
        let s = &self.sections[si];
        // A flushed block leaves the open one with the next key at once, so
        // the open block always holds the section's last key.
        ensure!(
            s.block_keys.last().is_none_or(|&k| k < key),
            "snapshot rows out of order"
        );
        let fits = block_bytes(
            s.block_keys.len() + 1,
            s.block_entries.len() + self.current_entries.len(),
        ) <= BLOCK;
        if !fits && !s.block_keys.is_empty() {
            self.flush_block(si)?;
        }
        let n = (self.current_entries.len() / kind.entry_len()) as u64;
        let s = &mut self.sections[si];
        s.block_keys.push(key);
        s.block_entries.append(&mut self.current_entries);
        s.block_ends
            .push((s.block_entries.len() / kind.entry_len()) as u32);
        s.keys += 1;
        match kind {
            Kind::Latency => self.entries += n,
            Kind::Quality => self.quality_entries += n,
        }
        Ok(())
    }

    /// Writes a section's open block at the end of the file.
    fn flush_block(&mut self, si: usize) -> Result<()> {
        let s = &mut self.sections[si];
        if s.block_keys.is_empty() {
            return Ok(());
        }
        let n = s.block_keys.len();
        let len = block_bytes(n, s.block_entries.len()).next_multiple_of(BLOCK);
        ensure!(
            len <= MAX_BLOCK,
            "an aggregate with more nodes than a snapshot holds"
        );
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&(n as u32).to_le_bytes());
        b.extend_from_slice(
            &u32::try_from(len)
                .context("an aggregate too large")?
                .to_le_bytes(),
        );
        for k in &s.block_keys {
            b.extend_from_slice(&k.to_le_bytes());
        }
        for e in &s.block_ends {
            b.extend_from_slice(&e.to_le_bytes());
        }
        b.resize(b.len().next_multiple_of(8), 0);
        b.extend_from_slice(&s.block_entries);
        b.resize(len, 0);
        self.out.write_all(&b)?;
        s.fences.push((s.block_keys[0], self.pos));
        self.pos += len as u64;
        s.block_keys.clear();
        s.block_ends.clear();
        s.block_entries.clear();
        Ok(())
    }

    /// Writes the last blocks, the fences and the header; returns the output
    /// and what the header says.
    pub fn finish(
        mut self,
        token: u64,
        built_at: i64,
        latency_version: i64,
    ) -> Result<(W, Header)> {
        self.close_aggregate()?;
        for si in 0..self.sections.len() {
            self.flush_block(si)?;
        }
        let fences_off = self.pos;
        let mut table = Vec::with_capacity(MAX_SECTIONS * SECTION);
        let mut fences = Vec::new();
        let mut keys = 0u64;
        for s in &self.sections {
            let mut t = [0u8; SECTION];
            t[0] = s.family;
            t[1] = s.plen;
            t[2] = s.kind as u8;
            t[8..16].copy_from_slice(&s.keys.to_le_bytes());
            t[16..24].copy_from_slice(&(fences_off + fences.len() as u64).to_le_bytes());
            t[24..32].copy_from_slice(&(s.fences.len() as u64).to_le_bytes());
            table.extend_from_slice(&t);
            for (k, off) in &s.fences {
                fences.extend_from_slice(&k.to_le_bytes());
                fences.extend_from_slice(&off.to_le_bytes());
            }
            keys += s.keys;
        }
        fences.extend_from_slice(MAGIC);
        self.out.write_all(&fences)?;
        let file_len = fences_off + fences.len() as u64;
        let mut h = [0u8; HEADER];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        h[12..16].copy_from_slice(&(self.sections.len() as u32).to_le_bytes());
        h[16..24].copy_from_slice(&token.to_le_bytes());
        h[24..32].copy_from_slice(&built_at.to_le_bytes());
        h[32..40].copy_from_slice(&latency_version.to_le_bytes());
        h[40..48].copy_from_slice(&file_len.to_le_bytes());
        h[48..56].copy_from_slice(&self.entries.to_le_bytes());
        h[56..64].copy_from_slice(&keys.to_le_bytes());
        h[64..72].copy_from_slice(&fences_off.to_le_bytes());
        h[72..80].copy_from_slice(&self.quality_entries.to_le_bytes());
        let check = fnv(fnv(FNV_START, &h[0..HEADER - 8]), &table);
        h[HEADER - 8..].copy_from_slice(&check.to_le_bytes());
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&h)?;
        self.out.write_all(&table)?;
        self.out.flush()?;
        Ok((
            self.out,
            Header {
                token,
                built_at,
                latency_version,
                entries: self.entries,
                quality_entries: self.quality_entries,
                keys,
                file_len,
                fences_off,
            },
        ))
    }
}

/// Reading the blocks: a file (`pread`), or bytes in tests.
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, off)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
        let src = usize::try_from(off)
            .ok()
            .and_then(|o| self.get(o..))
            .unwrap_or(&[]);
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
}

#[derive(Clone, Copy, Debug)]
struct Section {
    kind: Kind,
    family: u8,
    plen: u8,
    /// Fences, relative to the start of the fence region.
    fences: usize,
    blocks: usize,
}

/// A checked snapshot: blocks read from `src`, fences from `fences` (the
/// fence region: a map of the end of the file, or bytes in tests).
pub struct View<R: ReadAt, F: AsRef<[u8]>> {
    src: R,
    fences: F,
    header: Header,
    sections: Vec<Section>,
    /// The block read last (one block, kept: no allocation nor zeroing per
    /// lookup).
    buf: std::cell::RefCell<Box<[u8; BLOCK]>>,
}

/// The header and section table, checked against the file's length.
fn parse_head(head: &[u8], file_len: u64) -> Result<(Header, Vec<Section>)> {
    ensure!(
        head.len() >= BLOCK && file_len >= BLOCK as u64,
        "too short ({file_len} bytes)"
    );
    ensure!(&head[0..8] == MAGIC, "not a pdns-ha snapshot");
    let at32 = |at| u32_at(head, at).expect("in the header");
    let at64 = |at| u64_at(head, at).expect("in the header");
    let format = at32(8);
    ensure!(
        format == FORMAT,
        "format {format}, this build reads {FORMAT}"
    );
    let n = at32(12) as usize;
    ensure!(n <= MAX_SECTIONS, "{n} sections");
    let table = &head[HEADER..HEADER + n * SECTION];
    let check = fnv(fnv(FNV_START, &head[0..HEADER - 8]), table);
    ensure!(check == at64(HEADER - 8), "the header is damaged");
    let header = Header {
        token: at64(16),
        built_at: at64(24) as i64,
        latency_version: at64(32) as i64,
        file_len: at64(40),
        entries: at64(48),
        keys: at64(56),
        fences_off: at64(64),
        quality_entries: at64(72),
    };
    ensure!(
        header.file_len == file_len,
        "{file_len} bytes where the header says {} (cut short?)",
        header.file_len
    );
    ensure!(
        header.fences_off >= BLOCK as u64
            && header.fences_off.is_multiple_of(BLOCK as u64)
            && header.fences_off + MAGIC.len() as u64 <= file_len,
        "the fences are outside the file"
    );
    let region = file_len - header.fences_off;
    let mut sections = Vec::with_capacity(n);
    for i in 0..n {
        let t = &table[i * SECTION..(i + 1) * SECTION];
        let off = u64_at(t, 16).expect("in the table");
        let blocks = u64_at(t, 24).expect("in the table");
        let rel = off.checked_sub(header.fences_off);
        let end = rel.and_then(|r| blocks.checked_mul(FENCE as u64)?.checked_add(r));
        let (Some(rel), Some(end)) = (rel, end) else {
            bail!("section {i} is outside the file");
        };
        ensure!(end <= region, "section {i} is outside the file");
        let kind = Kind::of(t[2]).with_context(|| format!("section {i} is of kind {}", t[2]))?;
        sections.push(Section {
            kind,
            family: t[0],
            plen: t[1],
            fences: rel as usize,
            blocks: blocks as usize,
        });
    }
    Ok((header, sections))
}

impl<R: ReadAt, F: AsRef<[u8]>> View<R, F> {
    pub fn header(&self) -> Header {
        self.header
    }

    /// Calls `f` for every latency entry of the aggregate (family, net,
    /// plen), in node id order; returns how many. A block that cannot be
    /// read or makes no sense (a damaged file) counts as no entries.
    pub fn entries(&self, family: u8, net: i64, plen: u8, mut f: impl FnMut(Entry)) -> usize {
        self.each(Kind::Latency, family, net, plen, &mut |e: &[u8]| {
            f(Entry {
                node_id: i64::from(u32_at(e, 0).unwrap_or(0)),
                updated: i64::from(u32_at(e, 4).unwrap_or(0)),
                avg_ms: f64_at(e, 8),
            })
        })
    }

    /// Calls `f` for every call quality entry of the aggregate, as
    /// [`View::entries`] does.
    pub fn quality(
        &self,
        family: u8,
        net: i64,
        plen: u8,
        mut f: impl FnMut(QualityEntry),
    ) -> usize {
        let opt = |v: f64| (!v.is_nan()).then_some(v);
        self.each(Kind::Quality, family, net, plen, &mut |e: &[u8]| {
            f(QualityEntry {
                node_id: i64::from(u32_at(e, 0).unwrap_or(0)),
                updated: i64::from(u32_at(e, 4).unwrap_or(0)),
                calls: u64_at(e, 8).unwrap_or(0).min(i64::MAX as u64) as i64,
                mos: f64_at(e, 16),
                mos_dev: f64_at(e, 24),
                loss_pct: opt(f64_at(e, 32)),
                jitter_ms: opt(f64_at(e, 40)),
            })
        })
    }

    /// Calls `f` with the bytes of each entry of the aggregate in the
    /// section of `kind`.
    fn each(&self, kind: Kind, family: u8, net: i64, plen: u8, f: &mut impl FnMut(&[u8])) -> usize {
        let Some(s) = self
            .sections
            .iter()
            .find(|s| s.kind == kind && s.family == family && s.plen == plen)
        else {
            return 0;
        };
        let key = key_of(net);
        let fences = self.fences.as_ref();
        let fence_key = |i: usize| u64_at(fences, s.fences + i * FENCE).unwrap_or(u64::MAX);
        // The last block whose first key is at or below the key.
        let (mut lo, mut hi) = (0usize, s.blocks);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if fence_key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return 0;
        }
        let Some(off) = u64_at(fences, s.fences + (lo - 1) * FENCE + 8) else {
            return 0;
        };
        let mut buf = self.buf.borrow_mut();
        let buf = &mut **buf;
        match self.src.read_at(buf, off) {
            Ok(n) if n == BLOCK => {}
            _ => return 0,
        }
        let (Some(n), Some(len)) = (u32_at(buf, 0), u32_at(buf, 4)) else {
            return 0;
        };
        let (n, len) = (n as usize, len as usize);
        let size = kind.entry_len();
        if len > BLOCK {
            // An aggregate with hundreds of nodes: read the whole block.
            if len > MAX_BLOCK || len as u64 > self.header.file_len.saturating_sub(off) {
                return 0;
            }
            let mut big = vec![0u8; len];
            match self.src.read_at(&mut big, off) {
                Ok(r) if r == len => search(&big, n, key, size, f),
                _ => 0,
            }
        } else {
            search(&buf[..len.max(BLOCK_HEAD)], n, key, size, f)
        }
    }
}

/// Finds `key` in a block of `n` aggregates with entries of `size` bytes.
fn search(b: &[u8], n: usize, key: u64, size: usize, f: &mut impl FnMut(&[u8])) -> usize {
    if block_bytes(n, 0) > b.len() {
        return 0;
    }
    let key_at = |i: usize| u64_at(b, BLOCK_HEAD + i * 8).unwrap_or(u64::MAX);
    let ends = BLOCK_HEAD + n * 8;
    let end_at = |i: usize| u32_at(b, ends + i * 4).map(|e| e as usize);
    let entries = block_bytes(n, 0);
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let k = key_at(mid);
        if k < key {
            lo = mid + 1;
        } else if k > key {
            hi = mid;
        } else {
            let first = if mid == 0 { Some(0) } else { end_at(mid - 1) };
            let (Some(first), Some(last)) = (first, end_at(mid)) else {
                return 0;
            };
            if first > last || entries + last * size > b.len() {
                return 0;
            }
            for e in first..last {
                let at = entries + e * size;
                f(&b[at..at + size]);
            }
            return last - first;
        }
    }
    0
}

impl View<Vec<u8>, Vec<u8>> {
    /// A view of a snapshot held in memory (tests, tools).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let mut head = vec![0u8; BLOCK];
        bytes.read_at(&mut head, 0)?;
        let (header, sections) = parse_head(&head, bytes.len() as u64)?;
        let fences = bytes[header.fences_off as usize..].to_vec();
        Ok(View {
            src: bytes,
            fences,
            header,
            sections,
            buf: std::cell::RefCell::new(Box::new([0u8; BLOCK])),
        })
    }
}

/// A snapshot file open for reading: blocks read with `pread`, fences
/// mapped read-only (shared with every other process that maps them).
pub type Mapped = View<File, memmap2::Mmap>;

impl Mapped {
    /// Opens the file at `path` and checks it; `token` is the one the
    /// database names (a file with another token is not this database's
    /// current snapshot).
    pub fn open(path: &Path, token: u64) -> Result<Mapped> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file.metadata()?.len();
        let mut head = vec![0u8; BLOCK];
        let n = FileExt::read_at(&file, &mut head, 0)?;
        ensure!(n == BLOCK, "{} is too short", path.display());
        let (header, sections) =
            parse_head(&head, len).with_context(|| format!("{} is unusable", path.display()))?;
        if header.token != token {
            bail!(
                "{} is not the snapshot the database names (another was published since)",
                path.display()
            );
        }
        // SAFETY: the file is published by rename and never written in
        // place (module doc), so the mapped bytes do not change; they are
        // only read through bounds-checked slices.
        let fences = unsafe {
            memmap2::MmapOptions::new()
                .offset(header.fences_off)
                .len((len - header.fences_off) as usize)
                .map(&file)
        }
        .with_context(|| format!("cannot map {}", path.display()))?;
        ensure!(
            fences.ends_with(MAGIC),
            "{} does not end as a snapshot does",
            path.display()
        );
        Ok(View {
            src: file,
            fences,
            header,
            sections,
            buf: std::cell::RefCell::new(Box::new([0u8; BLOCK])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    type Row = (u8, i64, u8, i64, f64, i64);

    fn build(rows: &[Row], token: u64) -> Vec<u8> {
        let mut b = Builder::new(Cursor::new(Vec::new())).unwrap();
        for &(f, n, p, node, ms, t) in rows {
            b.push(f, n, p, node, ms, t).unwrap();
        }
        let (c, h) = b.finish(token, 1000, 7).unwrap();
        let bytes = c.into_inner();
        assert_eq!(h.file_len, bytes.len() as u64);
        bytes
    }

    fn get<R: ReadAt, F: AsRef<[u8]>>(
        v: &View<R, F>,
        f: u8,
        net: i64,
        p: u8,
    ) -> Vec<(i64, f64, i64)> {
        let mut out = Vec::new();
        let n = v.entries(f, net, p, |e| out.push((e.node_id, e.avg_ms, e.updated)));
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn finds_each_aggregate_and_nothing_else() {
        // Store order: family, net, plen, node. IPv6 keys with the sign bit
        // set come first (negative), as SQLite orders them.
        let rows: Vec<Row> = vec![
            (0, 3, 0, 1, 9.5, 100),
            (4, 0x0a00_0000, 8, 1, 30.0, 100),
            (4, 0x0a00_0000, 16, 1, 20.0, 100),
            (4, 0x0a00_0000, 24, 1, 10.0, 101),
            (4, 0x0a00_0000, 24, 2, 11.0, 102),
            (4, 0x0a00_0100, 24, 2, 12.0, 103),
            (6, -0x0300_0000_0000_0000, 32, 1, 40.0, 104),
            (6, 0x2001_0db8_0000_0000, 32, 1, 41.0, 105),
            (6, 0x2001_0db8_0001_0000, 48, 1, 42.0, 106),
        ];
        let v = View::from_bytes(build(&rows, 42)).unwrap();
        let h = v.header();
        assert_eq!((h.token, h.built_at, h.latency_version), (42, 1000, 7));
        assert_eq!((h.entries, h.keys), (9, 8));
        assert_eq!(
            get(&v, 4, 0x0a00_0000, 24),
            [(1, 10.0, 101), (2, 11.0, 102)]
        );
        assert_eq!(get(&v, 4, 0x0a00_0100, 24), [(2, 12.0, 103)]);
        assert_eq!(get(&v, 4, 0x0a00_0000, 16), [(1, 20.0, 100)]);
        assert_eq!(get(&v, 0, 3, 0), [(1, 9.5, 100)]);
        assert_eq!(get(&v, 6, -0x0300_0000_0000_0000, 32), [(1, 40.0, 104)]);
        assert_eq!(get(&v, 6, 0x2001_0db8_0000_0000, 32), [(1, 41.0, 105)]);
        assert_eq!(get(&v, 6, 0x2001_0db8_0001_0000, 48), [(1, 42.0, 106)]);
        // Absent nets, levels and families.
        assert!(get(&v, 4, 0x0a00_0200, 24).is_empty());
        assert!(get(&v, 4, 0x0900_0000, 24).is_empty());
        assert!(get(&v, 4, 0x0a00_0000, 20).is_empty());
        assert!(get(&v, 0, 4, 0).is_empty());
        assert!(get(&v, 6, 0x0a00_0000, 24).is_empty());
    }

    #[test]
    fn many_keys_across_blocks_and_an_aggregate_larger_than_a_block() {
        // Thousands of aggregates (dozens of blocks), one to three nodes each,
        // some nets missing, negative and positive keys; and one aggregate
        // with 600 nodes (a block of its own, larger than 4 KiB).
        let mut nets: Vec<i64> = (0..5000i64)
            .map(|k| (0x0a00_0000 + k * 256) * if k % 2 == 0 { 1 } else { -1 })
            .collect();
        nets.sort();
        let mut rows = Vec::new();
        for &n in &nets {
            for node in 1..=(1 + (n.unsigned_abs() / 256) % 3) as i64 {
                rows.push((4, n, 24, node * 7, n as f64 + node as f64, node));
            }
        }
        let big = nets[2500] + 1;
        let pos = rows.iter().position(|r| r.1 > big).unwrap();
        let wide: Vec<Row> = (1..=600)
            .map(|node| (4, big, 24, node, node as f64, 5))
            .collect();
        rows.splice(pos..pos, wide);
        let v = View::from_bytes(build(&rows, 1)).unwrap();
        assert_eq!(v.header().keys, 5001);
        for &n in &nets {
            let want: Vec<(i64, f64, i64)> = (1..=(1 + (n.unsigned_abs() / 256) % 3) as i64)
                .map(|node| (node * 7, n as f64 + node as f64, node))
                .collect();
            assert_eq!(get(&v, 4, n, 24), want, "net {n}");
            assert!(get(&v, 4, n + 2, 24).is_empty());
        }
        let wide = get(&v, 4, big, 24);
        assert_eq!(wide.len(), 600);
        assert_eq!(wide[599], (600, 600.0, 5));
        assert!(get(&v, 4, i64::MIN, 24).is_empty());
        assert!(get(&v, 4, i64::MAX, 24).is_empty());
    }

    #[test]
    fn rows_out_of_order_or_ids_too_big_are_refused() {
        let out_of_order = |rows: &[Row]| {
            let mut b = Builder::new(Cursor::new(Vec::new())).unwrap();
            let mut r = Ok(());
            for &(f, n, p, node, ms, t) in rows {
                r = r.and_then(|_| b.push(f, n, p, node, ms, t));
            }
            r.and_then(|_| b.finish(1, 1, 1).map(|_| ())).is_err()
        };
        assert!(out_of_order(&[
            (4, 10, 24, 1, 1.0, 1),
            (4, 9, 24, 1, 1.0, 1)
        ]));
        assert!(out_of_order(&[
            (4, 10, 24, 2, 1.0, 1),
            (4, 10, 24, 2, 1.0, 1)
        ]));
        assert!(out_of_order(&[
            (4, 10, 24, 1, 1.0, 1),
            (4, 11, 24, 1, 1.0, 1),
            (4, 10, 24, 1, 1.0, 1)
        ]));
        assert!(out_of_order(&[(4, 10, 24, 1 << 40, 1.0, 1)]));
        assert!(!out_of_order(&[
            (4, 10, 16, 1, 1.0, 1),
            (4, 10, 24, 1, 1.0, 1),
            (4, 11, 24, 1, 1.0, 1)
        ]));
        // Timestamps outside u32 are clamped, not wrapped.
        let v = View::from_bytes(build(
            &[(4, 1, 24, 1, 1.0, -5), (4, 2, 24, 1, 1.0, 1 << 40)],
            1,
        ))
        .unwrap();
        assert_eq!(get(&v, 4, 1, 24)[0].2, 0);
        assert_eq!(get(&v, 4, 2, 24)[0].2, i64::from(u32::MAX));
    }

    fn q(node_id: i64, mos: f64, calls: i64, updated: i64) -> QualityEntry {
        QualityEntry {
            node_id,
            mos,
            mos_dev: mos / 10.0,
            loss_pct: (node_id % 2 == 0).then_some(mos / 4.0),
            jitter_ms: (node_id % 3 == 0).then_some(mos * 2.0),
            calls,
            updated,
        }
    }

    fn get_quality<R: ReadAt, F: AsRef<[u8]>>(
        v: &View<R, F>,
        f: u8,
        net: i64,
        p: u8,
    ) -> Vec<QualityEntry> {
        let mut out = Vec::new();
        let n = v.quality(f, net, p, |e| out.push(e));
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn quality_sections_sit_beside_latency_ones_and_keep_every_field() {
        // The same aggregates in both kinds, different nodes and values;
        // thousands of quality aggregates (many blocks: an entry is three
        // times a latency one), one with 200 nodes (a block larger than
        // 4 KiB), unknown loss and jitter, calls beyond u32.
        let mut b = Builder::new(Cursor::new(Vec::new())).unwrap();
        b.push(4, 0x0a00_0000, 24, 1, 10.0, 100).unwrap();
        b.push(0, 3, 0, 2, 9.5, 100).unwrap();
        let nets: Vec<i64> = (-1500..1500i64).map(|k| k * 256).collect();
        let mut want = Vec::new();
        for &n in &nets {
            let nodes = if n == 0 {
                200
            } else {
                1 + n.unsigned_abs() as i64 / 256 % 4
            };
            let row: Vec<QualityEntry> = (1..=nodes)
                .map(|node| {
                    q(
                        node,
                        1.0 + (n + node) as f64 / 1e4,
                        node + (1 << 33),
                        50 + node,
                    )
                })
                .collect();
            for e in &row {
                b.push_quality(4, n, 24, e).unwrap();
            }
            want.push(row);
        }
        b.push_quality(6, 7, 48, &q(3, 4.1, 9, 77)).unwrap();
        let (c, h) = b.finish(5, 1000, 7).unwrap();
        assert_eq!(
            (h.entries, h.quality_entries),
            (2, want.iter().map(Vec::len).sum::<usize>() as u64 + 1)
        );
        let v = View::from_bytes(c.into_inner()).unwrap();
        assert_eq!(v.header(), h);
        for (n, row) in nets.iter().zip(&want) {
            assert_eq!(&get_quality(&v, 4, *n, 24), row, "net {n}");
            assert!(get_quality(&v, 4, n + 1, 24).is_empty());
        }
        assert_eq!(get_quality(&v, 4, 0, 24).len(), 200);
        assert_eq!(get_quality(&v, 6, 7, 48), [q(3, 4.1, 9, 77)]);
        // Each kind finds only its own entries.
        assert_eq!(get(&v, 4, 0x0a00_0000, 24), [(1, 10.0, 100)]);
        assert!(get_quality(&v, 4, 0x0a00_0000, 24).is_empty());
        assert!(get_quality(&v, 0, 3, 0).is_empty());
        assert!(get(&v, 4, 256, 24).is_empty());
        let mut b = Builder::new(Cursor::new(Vec::new())).unwrap();
        b.push_quality(4, 10, 24, &q(2, 1.0, 1, 1)).unwrap();
        assert!(b.push_quality(4, 10, 24, &q(1, 1.0, 1, 1)).is_err());
        // Damage in the blocks of both kinds: no lookup panics or reads
        // outside the file.
        let mut b = Builder::new(Cursor::new(Vec::new())).unwrap();
        for k in 0..400 {
            b.push(4, k * 256, 24, 1, 1.0, 1).unwrap();
        }
        for k in 0..400 {
            for node in 1..=3 {
                b.push_quality(4, k * 256, 24, &q(node, 3.0, 2, 1)).unwrap();
            }
        }
        let good = b.finish(1, 1, 1).unwrap().0.into_inner();
        let mut rng = crate::test_rng::XorShift::new(0x2545_f491_4f6c_dd1d);
        for round in 0..200 {
            let v = View::from_bytes(damaged_past_header(&good, &mut rng)).unwrap();
            for k in 0..450 {
                v.quality(4, k * 256 + round % 2, 24, |_| {});
                v.entries(4, k * 256, 24, |_| {});
            }
        }
    }

    /// `good` with 8 random bytes overwritten past the header block (damage
    /// the header's check does not cover).
    fn damaged_past_header(good: &[u8], rng: &mut crate::test_rng::XorShift) -> Vec<u8> {
        let mut bad = good.to_vec();
        for _ in 0..8 {
            let x = rng.next_u64();
            let at = BLOCK + (x as usize % (bad.len() - BLOCK));
            bad[at] = (x >> 32) as u8;
        }
        bad
    }

    #[test]
    fn an_empty_snapshot_is_valid_and_finds_nothing() {
        let v = View::from_bytes(build(&[], 3)).unwrap();
        assert_eq!((v.header().entries, v.header().keys), (0, 0));
        assert!(get(&v, 4, 0, 24).is_empty());
    }

    #[test]
    fn damaged_or_foreign_files_are_refused_and_never_read_out_of_bounds() {
        let rows: Vec<Row> = (0..600)
            .map(|k| (4u8, k * 256, 24u8, 1i64, 1.0f64, 1i64))
            .collect();
        let good = build(&rows, 9);
        assert!(View::from_bytes(good.clone()).is_ok());
        assert!(
            View::from_bytes(good[..good.len() - 1].to_vec()).is_err(),
            "cut short"
        );
        assert!(View::from_bytes(b"SQLite format 3\0".to_vec()).is_err());
        assert!(View::from_bytes(vec![0u8; 8192]).is_err());
        let mut bad = good.clone();
        bad[16] ^= 1; // the token: the check catches it
        assert!(View::from_bytes(bad).is_err());
        let mut bad = good.clone();
        bad[8] = 1; // the older format (latency only), check redone
        let table = u32_at(&bad, 12).unwrap() as usize * SECTION;
        let check = fnv(
            fnv(FNV_START, &bad[0..HEADER - 8]),
            &bad[HEADER..HEADER + table],
        );
        bad[HEADER - 8..HEADER].copy_from_slice(&check.to_le_bytes());
        let e = View::from_bytes(bad).err().unwrap().to_string();
        assert!(e.contains("format 1"), "{e}");
        let mut bad = good.clone();
        bad[HEADER + 2] = 9; // a section of a kind this build does not know
        let check = fnv(
            fnv(FNV_START, &bad[0..HEADER - 8]),
            &bad[HEADER..HEADER + SECTION],
        );
        bad[HEADER - 8..HEADER].copy_from_slice(&check.to_le_bytes());
        assert!(View::from_bytes(bad).is_err());
        // Damage past the header is not detected, but no lookup panics or
        // reads outside the file: flip bytes all over and look things up.
        let mut rng = crate::test_rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let v = View::from_bytes(damaged_past_header(&good, &mut rng)).unwrap();
            for k in 0..700 {
                v.entries(4, k * 256 + round % 2, 24, |_| {});
            }
        }
    }

    #[test]
    fn a_file_is_used_only_with_its_token() {
        let dir = std::env::temp_dir().join(format!("pdns-ha-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db-latency");
        let rows: Vec<Row> = (0..5000)
            .map(|k| (4u8, k * 256, 24u8, 1i64, k as f64, 1i64))
            .collect();
        std::fs::write(&path, build(&rows, 77)).unwrap();
        assert!(Mapped::open(&path, 76).is_err());
        let m = Mapped::open(&path, 77).unwrap();
        for k in 0..5000 {
            assert_eq!(get(&m, 4, k * 256, 24), [(1, k as f64, 1)]);
        }
        assert!(Mapped::open(&dir.join("missing"), 77).is_err());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        assert!(Mapped::open(&path, 77).is_err(), "cut short");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
