//! Memory that lives across questions, bounded in bytes: a hash map with a
//! byte budget (the coprocess's caches) and a reusable buffer that gives its
//! allocation back after a use that grew it (the answer buffer, memcached's
//! read buffer). Pure; no I/O.
//!
//! Sizes are what the allocator really takes: [`alloc_size`] models glibc's
//! malloc (an 8-byte header, 16-byte rounding, 32 bytes at least), so a
//! budget holds for resident memory, not only for lengths.

use std::hash::Hash;
use std::ops::{Deref, DerefMut};

use rustc_hash::FxHashMap;

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
no_heap!(u8, u32, u64, usize, crate::net::Prefix);

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

/// A hash map bounded in entries and in bytes, for caches that live across
/// questions.
///
/// The table is allocated once, for `max_entries`, and never grows; its size
/// counts in `budget`, and what is left of the budget bounds the heap bytes
/// the entries own ([`HeapSize`]: key strings, answer bytes, vectors). An
/// insert that would pass either bound first drops the stale entries, then
/// everything (the caches it serves are short-lived: dropping all is cheap
/// and keeps no bookkeeping per entry). An entry that alone would take more
/// than an eighth of the budget is not kept, so one huge value cannot flush
/// the others.
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

    /// Inserts (or replaces) an entry. When it does not fit, the entries for
    /// which `stale` holds are dropped first, then all of them. Returns
    /// false, and keeps nothing for `k`, if the entry alone is too big.
    pub fn insert(&mut self, k: K, v: V, stale: impl FnMut(&V) -> bool) -> bool {
        let cost = Self::cost(&k, &v);
        if let Some(old) = self.map.remove(&k) {
            self.heap -= Self::cost(&k, &old);
        }
        if cost > self.heap_budget / 8 {
            return false;
        }
        if !self.fits(cost) {
            self.retain(stale);
            if !self.fits(cost) {
                self.clear();
            }
        }
        self.heap += cost;
        self.map.insert(k, v);
        true
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

    /// Drops the entries for which `stale` holds.
    pub fn retain(&mut self, mut stale: impl FnMut(&V) -> bool) {
        let heap = &mut self.heap;
        self.map.retain(|k, v| {
            let keep = !stale(v);
            if !keep {
                *heap -= Self::cost(k, v);
            }
            keep
        });
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
    fn stays_within_its_budget_whatever_the_entry_sizes() {
        let mut m: BoundedMap<Box<str>, Box<[u8]>> = BoundedMap::new(64 * 1024, 112);
        let table = m.bytes();
        assert!(table > 112 * 32 && table < 64 * 1024, "{table}");
        for i in 0..5000 {
            // From 1 byte to 2 KiB, and now and then one too big to keep.
            let len = 1 + (i * 7919) % 2048;
            let len = if i % 97 == 0 { 100_000 } else { len };
            let kept = m.insert(name(i, 8), vec![0u8; len].into(), |_| false);
            assert_eq!(kept, len < 100_000);
            assert!(m.bytes() <= m.budget(), "{} > {}", m.bytes(), m.budget());
            assert!(m.len() <= 112);
        }
        // Keys are counted too: 1 MB keys are refused, 5 KiB ones fit few.
        assert!(!m.insert(name(1, 1 << 20), Box::default(), |_| false));
        for i in 0..100 {
            m.insert(name(i, 5000), Box::default(), |_| false);
            assert!(m.bytes() <= m.budget());
        }
        assert!(m.len() < 13, "{}", m.len());
    }

    #[test]
    fn drops_stale_entries_first_then_everything() {
        let mut m: BoundedMap<u64, u32> = BoundedMap::new(4096, 7);
        for i in 0..7 {
            assert!(m.insert(i, i as u32, |_| false));
        }
        // Full: the odd values are stale and go; the even ones stay.
        assert!(m.insert(100, 100, |v| v % 2 == 1));
        assert_eq!(m.len(), 5);
        assert_eq!(m.get(&2), Some(&2));
        assert_eq!(m.get(&3), None);
        m.insert(101, 101, |_| false);
        m.insert(102, 102, |_| false);
        // Full again and nothing stale: everything goes.
        assert!(m.insert(103, 103, |_| false));
        assert_eq!(m.len(), 1);
        assert_eq!(m.get(&103), Some(&103));
        // Replacing an entry does not count it twice.
        for _ in 0..100 {
            m.insert(103, 7, |_| false);
        }
        assert_eq!((m.len(), m.get(&103)), (1, Some(&7)));
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
}
