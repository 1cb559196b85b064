//! Memory that lives across questions, bounded in bytes: a cache table of
//! fixed sets whose new entries replace old ones (the coprocess's caches), a
//! hash map that refuses entries once full (the seen-networks counter), a
//! ring of byte strings written over oldest first (the rendered answers),
//! and a reusable buffer that gives its allocation back after a use that
//! grew it (the answer buffer, memcached's read buffer). Pure; no I/O.
//!
//! Sizes are what the allocator really takes: [`alloc_size`] models glibc's
//! malloc (an 8-byte header, 16-byte rounding, 32 bytes at least), so a
//! budget holds for resident memory, not only for lengths.

use std::hash::{BuildHasher, Hash};
use std::ops::{Deref, DerefMut};

use rustc_hash::{FxBuildHasher, FxHashMap};

/// What glibc's malloc takes for a request of `n` bytes (0: no allocation):
/// `n` plus an 8-byte header, rounded up to 16, at least 32.
pub fn alloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// The bytes a value owns on the heap (not its inline size), counted with
/// [`alloc_size`].
pub trait HeapSize {
    fn heap_size(&self) -> usize;
}

macro_rules! no_heap {
    ($($t:ty),*) => { $(impl HeapSize for $t { fn heap_size(&self) -> usize { 0 } })* };
}
no_heap!(u8, u32, u64, i64, usize, crate::net::Prefix);

impl HeapSize for Box<str> {
    fn heap_size(&self) -> usize {
        alloc_size(self.len())
    }
}

impl HeapSize for Box<[u8]> {
    fn heap_size(&self) -> usize {
        alloc_size(self.len())
    }
}

/// A hash map bounded in entries and in bytes that refuses new entries once
/// full (a counter between two flushes).
///
/// The table is allocated once, for `max_entries`, and never grows (entries
/// are only added, changed or all taken out: no tombstones ever make the
/// table rehash into a larger one); its size counts in `budget`, and what is
/// left of the budget bounds the heap bytes the entries own ([`HeapSize`]).
/// An entry that alone would take more than an eighth of the budget is not
/// kept.
pub struct BoundedMap<K, V> {
    map: FxHashMap<K, V>,
    /// Heap bytes owned by the entries.
    heap: usize,
    /// Budget for `heap`: the whole budget less the table.
    heap_budget: usize,
    budget: usize,
    max_entries: usize,
}

impl<K: Hash + Eq + HeapSize, V: HeapSize> BoundedMap<K, V> {
    /// A map of at most `max_entries` entries and `budget` bytes in all.
    /// Panics if the table alone does not fit in the budget (a wrong const).
    /// `max_entries` is best 7/8 of a power of two: the table then has no
    /// slot it can never use.
    pub fn new(budget: usize, max_entries: usize) -> Self {
        let map = FxHashMap::with_capacity_and_hasher(max_entries, Default::default());
        let table = table_bytes::<K, V>(map.capacity());
        assert!(
            table < budget,
            "a table of {max_entries} entries ({table} bytes) does not fit in {budget} bytes"
        );
        BoundedMap {
            map,
            heap: 0,
            heap_budget: budget - table,
            budget,
            max_entries,
        }
    }

    fn cost(k: &K, v: &V) -> usize {
        k.heap_size() + v.heap_size()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    /// Changes an entry in place (its heap size is counted again).
    /// Returns false if there is no entry for `k`.
    pub fn update(&mut self, k: &K, f: impl FnOnce(&mut V)) -> bool {
        let Some(v) = self.map.get_mut(k) else {
            return false;
        };
        let before = v.heap_size();
        f(v);
        self.heap = self.heap - before + v.heap_size();
        if self.heap > self.heap_budget {
            self.clear();
        }
        true
    }

    /// Changes the entry for `k` in place, or inserts `new()` if it fits
    /// without dropping others: one lookup. Returns false if there was no
    /// entry for `k` and none was inserted.
    pub fn upsert(&mut self, k: K, f: impl FnOnce(&mut V), new: impl FnOnce() -> V) -> bool {
        // Full: a vacant entry would make the table reserve room (grow).
        if self.map.len() >= self.max_entries {
            return self.update(&k, f);
        }
        match self.map.entry(k) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let before = e.get().heap_size();
                f(e.get_mut());
                self.heap = self.heap - before + e.get().heap_size();
                if self.heap > self.heap_budget {
                    self.clear();
                }
                true
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let v = new();
                let cost = e.key().heap_size() + v.heap_size();
                if self.heap + cost > self.heap_budget || cost > self.heap_budget / 8 {
                    return false;
                }
                self.heap += cost;
                e.insert(v);
                true
            }
        }
    }

    /// Inserts only if the entry fits without dropping others. Returns
    /// whether it was inserted.
    pub fn try_insert(&mut self, k: K, v: V) -> bool {
        let cost = Self::cost(&k, &v);
        if self.map.contains_key(&k) || !self.fits(cost) || cost > self.heap_budget / 8 {
            return false;
        }
        self.heap += cost;
        self.map.insert(k, v);
        true
    }

    fn fits(&self, cost: usize) -> bool {
        self.map.len() < self.max_entries && self.heap + cost <= self.heap_budget
    }

    /// Drops every entry (the table stays allocated).
    pub fn clear(&mut self) {
        self.map.clear();
        self.heap = 0;
    }

    /// Takes every entry out.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.heap = 0;
        self.map.drain()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes in use: the table and what the entries own. At most
    /// [`BoundedMap::budget`].
    pub fn bytes(&self) -> usize {
        table_bytes::<K, V>(self.map.capacity()) + self.heap
    }

    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// The allocation of a hash table (hashbrown, as in std) that holds
/// `capacity` entries: 8 slots for every 7 entries of capacity (fewer than 8
/// slots: one more than the capacity), each slot the key and value inline
/// plus one control byte, and 16 control bytes more; with [`alloc_size`].
fn table_bytes<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let slots = if capacity < 8 {
        capacity + 1
    } else {
        capacity.div_ceil(7) * 8
    };
    alloc_size(slots * (size_of::<(K, V)>() + 1) + 16)
}

/// Entries per set of a [`SetCache`].
pub const WAYS: usize = 4;

/// A cache bounded in entries and in bytes, for values that live across
/// questions for a short time.
///
/// Its table is allocated once, at the first insert (a coprocess that is
/// never asked a dynamic name has no decision table), for `max_entries`
/// slots in sets of [`WAYS`]: a key can only be in its set (by its hash). Each set has a head
/// of one cache line with a tag (some bits of the hash) and a rank per
/// slot, so a lookup reads one line, and one slot only when its tag
/// matches; a new entry replaces, in its set, the one of least rank (the
/// engine's rank is the expiry: the expired go first, then the one that
/// expires first). Nothing else is ever dropped, moved or rehashed. The table
/// counts in `budget`; what is left bounds the heap bytes the entries own
/// ([`HeapSize`]): an entry over an eighth of that is not kept, and an entry
/// that does not fit in what is left drops all the others.
pub struct SetCache<K, V> {
    /// Empty until the first insert, then one per set.
    heads: Box<[Head]>,
    /// Empty until the first insert, then `max_entries`.
    slots: Box<[Option<(K, V)>]>,
    max_entries: usize,
    /// Shift that turns a 64-bit hash into a set number.
    shift: u32,
    len: usize,
    /// Heap bytes owned by the entries.
    heap: usize,
    heap_budget: usize,
    budget: usize,
}

/// The tags (0: empty slot), heap costs and ranks of a set's slots, in one
/// cache line: replacing an entry that needs no drop reads no slot.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Head {
    tags: [u32; WAYS],
    costs: [u32; WAYS],
    ranks: [u64; WAYS],
}

impl<K: Hash + Eq + HeapSize, V: HeapSize> SetCache<K, V> {
    /// A cache of `max_entries` slots ([`WAYS`] times a power of two) and
    /// `budget` bytes in all. Panics on a wrong const: another count of
    /// slots, or a table that alone does not fit in the budget.
    pub fn new(budget: usize, max_entries: usize) -> Self {
        let sets = max_entries / WAYS;
        assert!(
            sets.is_power_of_two() && sets * WAYS == max_entries,
            "{max_entries} slots are not {WAYS} times a power of two"
        );
        let table = Self::table(max_entries);
        assert!(
            table < budget,
            "a table of {max_entries} entries ({table} bytes) does not fit in {budget} bytes"
        );
        SetCache {
            heads: Box::default(),
            slots: Box::default(),
            max_entries,
            shift: 64 - sets.trailing_zeros(),
            len: 0,
            heap: 0,
            heap_budget: budget - table,
            budget,
        }
    }

    /// What the table of `slots` slots takes: the slots, and the heads
    /// (aligned to a cache line: up to a line more).
    fn table(slots: usize) -> usize {
        alloc_size(slots * size_of::<Option<(K, V)>>())
            + alloc_size(slots / WAYS * size_of::<Head>() + size_of::<Head>())
    }

    /// `k`'s set and tag.
    fn locate(&self, k: &K) -> (usize, u32) {
        // FxHash is fast but weak on keys that differ in a few bits (client
        // networks): mixed (MurmurHash3's finalizer), its high bits pick the
        // set and its low bits are the tag.
        let mut h = FxBuildHasher.hash_one(k);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        (
            h.checked_shr(self.shift).unwrap_or(0) as usize,
            h as u32 | 1,
        )
    }

    /// The slot of `k` in set `set`, if there.
    fn find(&self, set: usize, tag: u32, k: &K) -> Option<usize> {
        let head = self.heads.get(set)?;
        (0..WAYS).find(|&i| {
            head.tags[i] == tag
                && self.slots[set * WAYS + i]
                    .as_ref()
                    .is_some_and(|(key, _)| key == k)
        })
    }

    /// The value for `k` and its rank.
    pub fn get(&self, k: &K) -> Option<(&V, u64)> {
        let (set, tag) = self.locate(k);
        let i = self.find(set, tag, k)?;
        let (_, v) = self.slots[set * WAYS + i].as_ref()?;
        Some((v, self.heads[set].ranks[i]))
    }

    /// Inserts (or replaces) an entry, in place of the entry of least rank
    /// when its set is full. Returns false, and keeps nothing for `k`, if
    /// the entry alone is too big.
    pub fn insert(&mut self, k: K, v: V, rank: u64) -> bool {
        if self.heads.is_empty() {
            self.heads = vec![Head::default(); self.max_entries / WAYS].into_boxed_slice();
            self.slots = (0..self.max_entries).map(|_| None).collect();
        }
        let (set, tag) = self.locate(&k);
        let head = &self.heads[set];
        let i = self
            .find(set, tag, &k)
            .or_else(|| head.tags.iter().position(|&t| t == 0))
            .unwrap_or_else(|| {
                (0..WAYS)
                    .min_by_key(|&i| head.ranks[i])
                    .expect("a set has slots")
            });
        let at = set * WAYS + i;
        let head = &mut self.heads[set];
        if head.tags[i] != 0 {
            self.heap -= head.costs[i] as usize;
            self.len -= 1;
            head.tags[i] = 0;
        }
        let cost = k_v_cost(&k, &v);
        if cost > self.heap_budget / 8 {
            self.slots[at] = None;
            return false;
        }
        if self.heap + cost > self.heap_budget {
            self.clear();
        }
        self.heap += cost;
        self.len += 1;
        // Drops the entry replaced, if any.
        self.slots[at] = Some((k, v));
        let head = &mut self.heads[set];
        head.tags[i] = tag;
        head.costs[i] = cost as u32;
        head.ranks[i] = rank;
        true
    }

    /// Drops every entry (the table stays allocated).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|e| *e = None);
        self.heads.iter_mut().for_each(|h| *h = Head::default());
        self.len = 0;
        self.heap = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes in use: the table and what the entries own. At most
    /// [`SetCache::budget`].
    pub fn bytes(&self) -> usize {
        self.table_bytes() + self.heap
    }

    /// Bytes the table takes alone (counted before it is allocated).
    pub fn table_bytes(&self) -> usize {
        Self::table(self.max_entries)
    }

    pub fn budget(&self) -> usize {
        self.budget
    }
}

fn k_v_cost<K: HeapSize, V: HeapSize>(k: &K, v: &V) -> usize {
    k.heap_size() + v.heap_size()
}

/// Byte strings written one after the other into one buffer allocated once:
/// when the buffer is full, writing goes on from its start, over the oldest
/// strings (first in, first out, with no allocation per string). A [`Span`]
/// says where a string was written; it reads back only while nothing was
/// written over it. A string over an eighth of the buffer is refused, so one
/// cannot wipe out the others.
pub struct ByteRing {
    /// Allocated once, for `cap` bytes, not zeroed: it grows within its
    /// allocation as the first round is written (pages are resident only
    /// once written).
    buf: Vec<u8>,
    cap: usize,
    /// Bytes written since the start: positions count from the start, not
    /// modulo the buffer's length.
    head: u64,
}

/// Where a string was written in a [`ByteRing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pos: u64,
    len: u32,
}

impl ByteRing {
    /// A ring of `capacity` bytes (at least 8: a wrong const is a bug).
    pub fn new(capacity: usize) -> ByteRing {
        assert!(capacity >= 8, "a ring of {capacity} bytes");
        ByteRing {
            buf: Vec::with_capacity(capacity),
            cap: capacity,
            head: 0,
        }
    }

    /// Writes the concatenation of `parts`, contiguous (the end of the
    /// buffer is skipped if it does not fit there). None if longer than an
    /// eighth of the buffer.
    pub fn push(&mut self, parts: &[&[u8]]) -> Option<Span> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let cap = self.cap;
        if len > cap / 8 {
            return None;
        }
        let mut off = (self.head % cap as u64) as usize;
        if off + len > cap {
            self.head += (cap - off) as u64;
            off = 0;
        }
        let span = Span {
            pos: self.head,
            len: len as u32,
        };
        if off + len > self.buf.len() {
            // The first round: within the allocation.
            self.buf.resize(off + len, 0);
        }
        for p in parts {
            self.buf[off..off + p.len()].copy_from_slice(p);
            off += p.len();
        }
        self.head += len as u64;
        Some(span)
    }

    /// True while nothing was written over the string at `s`: the writing
    /// reaches its first byte again only after a whole buffer more.
    pub fn is_live(&self, s: Span) -> bool {
        self.head - s.pos <= self.cap as u64
    }

    /// The string written at `s`, unless it was written over.
    pub fn get(&self, s: Span) -> Option<&[u8]> {
        if !self.is_live(s) {
            return None;
        }
        let off = (s.pos % self.cap as u64) as usize;
        Some(&self.buf[off..off + s.len as usize])
    }

    /// Makes every string written so far unreadable.
    pub fn clear(&mut self) {
        self.head += self.cap as u64 + 1;
    }

    /// The buffer's length.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// What the buffer takes, as allocated.
    pub fn bytes(&self) -> usize {
        alloc_size(self.cap)
    }
}

/// A byte buffer reused from one question to the next. It keeps its
/// allocation while that stays at most `keep` bytes, so the hot path does
/// not allocate; after a use that grew it beyond (one huge answer), it goes
/// back to `initial` bytes.
pub struct Scratch {
    buf: Vec<u8>,
    initial: usize,
    keep: usize,
}

impl Scratch {
    pub fn new(initial: usize, keep: usize) -> Scratch {
        debug_assert!(initial <= keep);
        Scratch {
            buf: Vec::with_capacity(initial),
            initial,
            keep,
        }
    }

    /// Empties the buffer, and gives its allocation back if it grew beyond
    /// `keep`.
    pub fn reset(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > self.keep {
            self.buf = Vec::with_capacity(self.initial);
        }
    }
}

impl Deref for Scratch {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_size_is_glibc_malloc() {
        assert_eq!(alloc_size(0), 0);
        assert_eq!(alloc_size(1), 32);
        assert_eq!(alloc_size(24), 32);
        assert_eq!(alloc_size(25), 48);
        assert_eq!(alloc_size(1000), 1008);
        assert_eq!(alloc_size(1 << 20), (1 << 20) + 16);
        assert_eq!("x".repeat(100).into_boxed_str().heap_size(), 112);
    }

    /// `i`, padded to `len` bytes.
    fn name(i: usize, len: usize) -> Box<str> {
        let mut s = i.to_string();
        s.extend(std::iter::repeat_n('-', len.saturating_sub(s.len())));
        s.into_boxed_str()
    }

    #[test]
    fn a_set_cache_stays_within_its_budget_whatever_the_entry_sizes() {
        let mut m: SetCache<Box<str>, Box<[u8]>> = SetCache::new(64 * 1024, 128);
        let table = m.bytes();
        assert_eq!(table, m.table_bytes());
        assert!((128 * (16 + 32)..64 * 1024).contains(&table), "{table}");
        for i in 0..5000 {
            // From 1 byte to 2 KiB, and now and then one too big to keep.
            let len = 1 + (i * 7919) % 2048;
            let len = if i % 97 == 0 { 100_000 } else { len };
            let kept = m.insert(name(i, 8), vec![0u8; len].into(), i as u64);
            assert_eq!(kept, len < 100_000);
            assert_eq!(m.get(&name(i, 8)).map(|(_, r)| r), kept.then_some(i as u64));
            assert!(m.bytes() <= m.budget(), "{} > {}", m.bytes(), m.budget());
            assert!(m.len() <= 128);
        }
        // Keys are counted too: 1 MB keys are refused, 5 KiB ones fit few.
        assert!(!m.insert(name(1, 1 << 20), Box::default(), 0));
        for i in 0..100 {
            m.insert(name(i, 5000), Box::default(), 0);
            assert!(m.bytes() <= m.budget());
        }
        assert!(m.len() < 13, "{}", m.len());
        m.clear();
        assert!(m.is_empty() && m.get(&name(99, 5000)).is_none());
        assert_eq!(m.bytes(), table);
    }

    #[test]
    fn a_set_cache_allocates_its_table_at_the_first_insert() {
        let mut m: SetCache<u64, u64> = SetCache::new(64 * 1024, 512);
        assert!(m.slots.is_empty() && m.heads.is_empty());
        assert_eq!(m.get(&1), None);
        m.clear();
        assert!(m.slots.is_empty());
        assert_eq!(m.bytes(), m.table_bytes(), "counted all the same");
        assert!(m.insert(1, 7, 0));
        assert_eq!((m.slots.len(), m.heads.len()), (512, 128));
        assert_eq!(m.get(&1), Some((&7, 0)));
    }

    #[test]
    fn a_full_set_replaces_its_entry_of_least_rank() {
        // One set: every key goes to it.
        let mut m: SetCache<u64, u32> = SetCache::new(4096, WAYS);
        for i in 0..WAYS as u64 {
            assert!(m.insert(i, i as u32, 10 + i));
        }
        assert_eq!(m.len(), WAYS);
        // Full: the least rank (key 0's) goes.
        assert!(m.insert(100, 100, 50));
        assert_eq!(m.get(&0), None);
        assert_eq!(m.get(&100), Some((&100, 50)));
        assert_eq!(m.len(), WAYS);
        // Replacing an entry keeps its place and is not counted twice, even
        // with the least rank.
        for r in 0..100 {
            assert!(m.insert(101, 7, r));
        }
        assert_eq!(m.get(&1), None, "the least rank when 101 came");
        assert_eq!((m.len(), m.get(&101)), (WAYS, Some((&7, 99))));
        assert!([2, 3, 100].iter().all(|k| m.get(k).is_some()));
    }

    #[test]
    fn keys_spread_over_the_sets() {
        let mut m: SetCache<u64, u64> = SetCache::new(64 * 1024, 512);
        for k in 0..512u64 {
            m.insert(k << 8, k, k);
        }
        // Multiples of 256 fill most slots (random keys fill 80 %).
        assert!(m.len() > 384, "{}", m.len());
        assert!(m.get(&(511 << 8)).is_some(), "the last one is kept");
    }

    #[test]
    fn try_insert_never_drops_and_update_recounts() {
        let mut m: BoundedMap<u64, Box<[u8]>> = BoundedMap::new(8192, 7);
        for i in 0..7 {
            assert!(m.try_insert(i, vec![1u8; 10].into()));
        }
        assert!(!m.try_insert(7, Box::default()), "full");
        assert!(!m.try_insert(1, Box::default()), "already there");
        assert_eq!(m.len(), 7);
        let before = m.bytes();
        assert!(m.update(&1, |v| *v = vec![1u8; 200].into()));
        assert_eq!(m.bytes(), before - 32 + 208);
        assert!(!m.update(&99, |_| {}));
        let taken: Vec<u64> = m.drain().map(|(k, _)| k).collect();
        assert_eq!(taken.len(), 7);
        assert!(m.is_empty());
        // upsert: one lookup for both; a full map changes its entries only,
        // and its table never grows.
        let table = m.bytes();
        for i in 0..7 {
            assert!(m.upsert(i, |_| unreachable!(), || vec![1u8; 10].into()));
        }
        assert!(m.upsert(3, |v| *v = vec![2u8; 10].into(), || unreachable!()));
        assert_eq!(m.get(&3).map(|v| v[0]), Some(2));
        assert!(!m.upsert(8, |_| unreachable!(), Box::default), "full");
        assert_eq!(m.len(), 7);
        assert_eq!(m.bytes(), table + 7 * 32);
        let taken: Vec<u64> = m.drain().map(|(k, _)| k).collect();
        assert_eq!(taken.len(), 7);
        assert!(m.is_empty());
        assert_eq!(m.bytes(), table_bytes::<u64, Box<[u8]>>(7));
    }

    #[test]
    fn the_table_is_counted_as_allocated() {
        // 3584 entries: exactly 4096 slots.
        assert_eq!(table_bytes::<u64, u64>(3584), alloc_size(4096 * 17 + 16));
        let m: BoundedMap<u64, u64> = BoundedMap::new(1 << 20, 3584);
        assert_eq!(m.map.capacity(), 3584);
        assert_eq!(m.bytes(), table_bytes::<u64, u64>(3584));
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_table_larger_than_its_budget_is_a_bug() {
        let _: BoundedMap<u64, u64> = BoundedMap::new(1024, 3584);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_set_cache_table_larger_than_its_budget_is_a_bug() {
        let _: SetCache<u64, u64> = SetCache::new(1024, 512);
    }

    #[test]
    #[should_panic(expected = "not 4 times a power of two")]
    fn a_set_cache_of_another_size_is_a_bug() {
        let _: SetCache<u64, u64> = SetCache::new(1 << 20, 448);
    }

    #[test]
    fn scratch_gives_back_what_a_huge_use_took() {
        let mut s = Scratch::new(64, 1024);
        s.extend_from_slice(&[7u8; 1000]);
        let cap = s.capacity();
        s.reset();
        assert!(s.is_empty());
        assert_eq!(s.capacity(), cap, "kept: at most `keep`");
        s.extend_from_slice(&vec![7u8; 1 << 20]);
        s.reset();
        assert!(s.is_empty());
        assert_eq!(s.capacity(), 64);
    }

    #[test]
    fn a_ring_reads_back_until_written_over_oldest_first() {
        let mut r = ByteRing::new(64);
        let a = r.push(&[b"ab", b"cd"]).unwrap();
        let b = r.push(&[b"efgh"]).unwrap();
        assert_eq!(r.get(a), Some(&b"abcd"[..]));
        assert_eq!(r.get(b), Some(&b"efgh"[..]));
        assert_eq!(r.push(&[&[0u8; 9]]), None, "over an eighth");
        // 56 more bytes fill the buffer: `a` is still whole.
        let fill: Vec<Span> = (0..7).map(|_| r.push(&[&[7u8; 8]]).unwrap()).collect();
        assert_eq!(r.get(a), Some(&b"abcd"[..]));
        // The next string goes over `a`, then over `b`.
        let c = r.push(&[b"wxyz"]).unwrap();
        assert_eq!(r.get(a), None);
        assert_eq!(r.get(b), Some(&b"efgh"[..]));
        r.push(&[b"1"]).unwrap();
        assert_eq!(r.get(b), None);
        assert_eq!(r.get(c), Some(&b"wxyz"[..]));
        assert!(fill.iter().all(|&s| r.get(s) == Some(&[7u8; 8][..])));
        // A string that does not fit before the end starts over at 0 (over
        // the first string), whole.
        let mut r = ByteRing::new(64);
        let x = r.push(&[&[1u8; 8]]).unwrap();
        for _ in 0..6 {
            r.push(&[&[2u8; 8]]).unwrap();
        }
        let y = r.push(&[&[3u8; 5]]).unwrap();
        let z = r.push(&[&[4u8; 4]]).unwrap();
        assert_eq!(r.get(z), Some(&[4u8; 4][..]));
        assert_eq!(r.get(x), None);
        assert_eq!(r.get(y), Some(&[3u8; 5][..]));
        r.clear();
        assert_eq!(r.get(z), None);
        assert_eq!(r.bytes(), alloc_size(64));
        assert!(r.buf.capacity() >= 64 && r.buf.len() <= 64);
    }
}
