//! Caches of values that are valid until a given instant, bounded in
//! entries and in bytes ([`SetCache`]): the rules by which the engine keeps
//! decisions ([`TimedCache`]) and rendered answers ([`TimedBytes`], whose
//! strings are in a [`ByteRing`], written over oldest first). An expired
//! value is never returned; a new value takes the place, among the few its
//! key may use, of one expired (or written over), else of the one that
//! expires first.

use std::hash::Hash;
use std::time::Instant;

use crate::bounded::{ByteRing, HeapSize, SetCache, Span};

/// A value and until when it may be used.
pub struct Timed<V> {
    pub value: V,
    pub until: Instant,
}

impl<V: HeapSize> HeapSize for Timed<V> {
    fn heap_size(&self) -> usize {
        self.value.heap_size()
    }
}

pub struct TimedCache<K, V> {
    map: SetCache<K, Timed<V>>,
}

impl<K: Hash + Eq + HeapSize, V: HeapSize> TimedCache<K, V> {
    /// At most `max_entries` values and `budget` bytes (see [`SetCache`]).
    pub fn new(budget: usize, max_entries: usize) -> Self {
        TimedCache {
            map: SetCache::new(budget, max_entries),
        }
    }

    /// The value for `k` if it is still valid at `now`, and until when.
    pub fn get(&self, k: &K, now: Instant) -> Option<(&V, Instant)> {
        self.map
            .get(k)
            .filter(|t| t.until > now)
            .map(|t| (&t.value, t.until))
    }

    /// Keeps `value` for `k` until `until`. Returns false if it was not
    /// kept (too large for the budget).
    pub fn insert(&mut self, k: K, value: V, until: Instant, now: Instant) -> bool {
        self.map
            .insert(k, Timed { value, until }, |t| (t.until > now, t.until))
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes taken, table included.
    pub fn bytes(&self) -> usize {
        self.map.bytes()
    }
}

/// Byte strings valid until an instant, each with a small value of its own
/// (`M`, which owns no heap), bounded in entries and in bytes: the table of
/// `max_entries` entries, and the rest of the budget for a [`ByteRing`] that
/// holds the strings. A string is returned until it expires or is written
/// over.
pub struct TimedBytes<K, M> {
    map: SetCache<K, Timed<Stored<M>>>,
    ring: ByteRing,
}

/// A value and where its string is.
struct Stored<M> {
    value: M,
    span: Span,
}

impl<M> HeapSize for Stored<M> {
    /// The string is in the ring, counted once for all.
    fn heap_size(&self) -> usize {
        0
    }
}

impl<K: Hash + Eq + HeapSize, M> TimedBytes<K, M> {
    /// At most `max_entries` strings and `budget` bytes in all.
    pub fn new(budget: usize, max_entries: usize) -> Self {
        let map = SetCache::new(budget, max_entries);
        // The largest buffer whose allocation fits in what is left.
        let ring = (budget - map.table_bytes()) & !15;
        TimedBytes {
            map,
            ring: ByteRing::new(ring.saturating_sub(16)),
        }
    }

    /// The value and string for `k` if still valid at `now`.
    pub fn get(&self, k: &K, now: Instant) -> Option<(&M, &[u8])> {
        let t = self.map.get(k).filter(|t| t.until > now)?;
        Some((&t.value.value, self.ring.get(t.value.span)?))
    }

    /// Keeps `value`, and the concatenation of `parts` as its string, for
    /// `k` until `until`. Returns false if it was not kept (the string is
    /// over an eighth of the ring).
    pub fn insert(
        &mut self,
        k: K,
        value: M,
        parts: &[&[u8]],
        until: Instant,
        now: Instant,
    ) -> bool {
        let Some(span) = self.ring.push(parts) else {
            return false;
        };
        let ring = &self.ring;
        self.map.insert(
            k,
            Timed {
                value: Stored { value, span },
                until,
            },
            |t| (t.until > now && ring.is_live(t.value.span), t.until),
        )
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.ring.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes taken: the table and the ring.
    pub fn bytes(&self) -> usize {
        self.map.bytes() + self.ring.bytes()
    }

    /// The ring's length: what the strings kept at once add up to, at most.
    pub fn ring_capacity(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_value_is_returned_until_it_expires() {
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(64 * 1024, 512);
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(100);
        assert!(c.insert(1, b"one".to_vec().into(), until, t0));
        assert_eq!(
            c.get(&1, t0).map(|(v, u)| (&**v, u)),
            Some((&b"one"[..], until))
        );
        assert!(c.get(&1, until).is_none(), "not at its expiry instant");
        assert!(c.get(&2, t0).is_none());
    }

    #[test]
    fn a_new_value_takes_the_place_of_an_expired_one_then_of_the_first_to_expire() {
        // Four values: one set, so every key competes for the same places.
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(4096, 4);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        for (k, ms) in [(1, 10), (2, 5000), (3, 20), (4, 3000)] {
            assert!(c.insert(k, vec![0u8; 8].into(), at(ms), t0));
        }
        assert_eq!(c.len(), 4);
        // At 15 ms, 1 has expired: it goes, though 3 expires sooner than 2.
        assert!(c.insert(5, vec![1u8; 8].into(), at(6000), at(15)));
        assert!(c.get(&1, at(15)).is_none());
        assert!([2, 3, 4, 5].iter().all(|k| c.get(k, at(15)).is_some()));
        // Nothing expired: the first to expire (3) goes.
        assert!(c.insert(6, vec![1u8; 8].into(), at(6000), at(15)));
        assert!(c.get(&3, at(15)).is_none());
        assert!([2, 4, 5, 6].iter().all(|k| c.get(k, at(15)).is_some()));
        assert_eq!(c.len(), 4);
        assert!(c.bytes() <= 4096);
    }

    #[test]
    fn a_value_larger_than_an_eighth_of_the_budget_is_not_kept() {
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(64 * 1024, 512);
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(1);
        assert!(c.insert(1, vec![0u8; 100].into(), until, t0));
        assert!(!c.insert(2, vec![0u8; 16 * 1024].into(), until, t0));
        assert!(c.get(&2, t0).is_none());
        assert!(c.get(&1, t0).is_some(), "the others stay");
    }

    #[test]
    fn strings_are_returned_until_they_expire_or_are_written_over() {
        let mut c: TimedBytes<u32, u8> = TimedBytes::new(16 * 1024, 64);
        assert!(c.bytes() <= 16 * 1024);
        let ring = c.ring_capacity();
        assert!(ring > 12 * 1024, "{ring}");
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(100);
        assert!(c.insert(1, 7, &[b"one", b"!"], until, t0));
        assert_eq!(c.get(&1, t0), Some((&7, &b"one!"[..])));
        assert!(c.get(&1, until).is_none(), "not at its expiry instant");
        // Strings of an eighth of the ring: the ninth one goes over the
        // first string.
        let big = vec![0u8; ring / 8];
        for k in 2..10 {
            assert!(c.insert(k, 0, &[&big], until, t0));
        }
        assert!(c.get(&1, t0).is_none());
        assert!(!c.insert(99, 0, &[&big, b"x"], until, t0), "too long");
        assert!(c.get(&99, t0).is_none());
        assert!(c.bytes() <= 16 * 1024);
        c.clear();
        assert!(c.is_empty() && c.get(&9, t0).is_none());
    }

    #[test]
    fn a_string_written_over_gives_its_place_first() {
        // Four entries: one set.
        let mut c: TimedBytes<u32, u8> = TimedBytes::new(4096, 4);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let big = vec![0u8; c.ring_capacity() / 8];
        assert!(c.insert(0, 0, &[b"zero"], at(10_000), t0));
        // Key 9, written again and again, goes round the ring once: over
        // key 0's string, though key 0 keeps its place.
        for _ in 0..8 {
            assert!(c.insert(9, 9, &[&big], at(10_000), t0));
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&0, t0).is_none());
        assert!(c.insert(1, 1, &[b"one"], at(1000), t0));
        assert!(c.insert(2, 2, &[b"two"], at(2000), t0));
        // Full: key 0 (written over) goes first, then key 1 (first to expire).
        assert!(c.insert(3, 3, &[b"three"], at(10_000), t0));
        assert_eq!(c.get(&1, t0), Some((&1, &b"one"[..])));
        assert!(c.insert(4, 4, &[b"four"], at(10_000), t0));
        assert!(c.get(&1, t0).is_none());
        for (k, v) in [(9, &big[..]), (2, b"two"), (3, b"three"), (4, b"four")] {
            assert_eq!(c.get(&k, t0).map(|(_, b)| b), Some(v), "{k}");
        }
    }
}
